"""The JWT registry: GET /api/tokens, POST /api/token/revoke, and tokens that must not work."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.accounts.support import assert_error, bearer, get_me, http, login
from tests.conftest import UserClient
from tests.portal_server import PortalServer

MakeUser = Callable[..., UserClient]


def _tokens(base_url: str, token: str) -> list[dict[str, object]]:
    resp = http.get(base_url + "/api/tokens", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"tokens"}
    tokens: list[dict[str, object]] = resp.json()["tokens"]
    return tokens


def test_tokens_lists_the_callers_sessions_and_marks_the_current_one(base_url: str, make_user: MakeUser) -> None:
    user = make_user()
    second = login(base_url, user.username, user.password).json()

    tokens = _tokens(base_url, user.token)
    assert len(tokens) == 2
    by_id = {t["token_id"]: t for t in tokens}
    assert second["token_id"] in by_id
    for t in tokens:
        assert set(t) == {"token_id", "kind", "created_at", "last_used_at", "expires_at", "current"}
        assert t["kind"] == "api"
        assert datetime.fromisoformat(str(t["expires_at"])) > datetime.now(UTC)
    assert by_id[second["token_id"]]["current"] is False
    (current,) = [t for t in tokens if t["current"]]
    assert current["last_used_at"] is not None  # it is being used right now
    assert by_id[second["token_id"]]["last_used_at"] is None  # never presented yet

    # The other token sees the same two, with "current" the other way round.
    seen_by_second = {t["token_id"]: t["current"] for t in _tokens(base_url, second["token"])}
    assert seen_by_second[second["token_id"]] is True
    assert seen_by_second[current["token_id"]] is False
    # The token itself is not in the listing, only its id.
    assert user.token not in str(tokens) and second["token"] not in str(tokens)


def test_revoking_a_token_ends_it_at_once(base_url: str, make_user: MakeUser) -> None:
    user = make_user()
    second = login(base_url, user.username, user.password).json()
    assert get_me(base_url, second["token"]).status_code == 200  # resolved (and cached) before revocation

    resp = user.post("/api/token/revoke", json={"token_id": second["token_id"]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"success": True}

    assert_error(get_me(base_url, second["token"]), 401, "Token revoked")
    assert second["token_id"] not in [t["token_id"] for t in _tokens(base_url, user.token)]
    # Revoking it again: it is no longer an active token of the caller.
    assert_error(user.post("/api/token/revoke", json={"token_id": second["token_id"]}), 404, "Token not found")

    # A session can end itself.
    current = next(t for t in _tokens(base_url, user.token) if t["current"])
    assert user.post("/api/token/revoke", json={"token_id": current["token_id"]}).status_code == 200
    assert_error(user.get("/api/me"), 401, "Token revoked")


def test_another_users_token_cannot_be_revoked(base_url: str, member: UserClient, root: UserClient) -> None:
    foreign = next(t for t in _tokens(base_url, member.token) if t["current"])
    # Not even by the superadmin: the registry is per user.
    assert_error(root.post("/api/token/revoke", json={"token_id": foreign["token_id"]}), 404, "Token not found")
    assert_error(root.post("/api/token/revoke", json={"token_id": "no-such-token"}), 404, "Token not found")
    assert get_me(base_url, member.token).status_code == 200


@pytest.mark.parametrize("body", [{}, {"token_id": 5}, {"token_id": ""}, {"token_id": "x" * 65}, {"token_id": None}])
def test_revoke_validates_its_body(member: UserClient, body: dict[str, object]) -> None:
    assert_error(member.post("/api/token/revoke", json=body), 400, field="token_id")


def test_token_routes_need_authentication(base_url: str) -> None:
    assert_error(http.get(base_url + "/api/tokens"), 401, "Authentication required")
    assert_error(http.post(base_url + "/api/token/revoke", json={"token_id": "x"}), 401, "Authentication required")


# -- tokens that must not work -----------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _portal_jwt_key(portal: PortalServer) -> bytes:
    """The server's signing key, derived as DESIGN.md says: HKDF-SHA256 of the master key, per purpose.

    Only used to mint a correctly signed but expired token; everything else is forged without it.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"portal:jwt-signing")
    return hkdf.derive(portal.shared.secret_key.encode())


@pytest.mark.parametrize(
    "credential",
    ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "portal_not-a-real-key", "Bearer"],
)
def test_garbage_credentials_are_401(base_url: str, credential: str) -> None:
    resp = http.get(base_url + "/api/me", headers=bearer(credential))
    body = assert_error(resp, 401)
    assert body["error"] in {"Invalid token", "Invalid API key"}


def test_a_token_signed_with_another_key_is_refused(base_url: str, member: UserClient) -> None:
    claims = _claims(member.token)
    forged = jwt.encode(claims, b"not-the-portal-key-not-the-portal-key", algorithm="HS256")
    assert_error(get_me(base_url, forged), 401, "Invalid token")


def test_a_tampered_token_is_refused(base_url: str, member: UserClient, root: UserClient) -> None:
    header, payload, signature = member.token.split(".")
    claims = {**_claims(member.token), "sub": str(root.id)}
    tampered = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert_error(get_me(base_url, tampered), 401, "Invalid token")
    # A flipped signature bit is refused too.
    sig = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    sig[0] ^= 0x01
    assert_error(get_me(base_url, ".".join([header, payload, _b64(bytes(sig))])), 401, "Invalid token")
    assert get_me(base_url, member.token).status_code == 200  # the genuine token is untouched


def test_an_unsigned_token_is_refused(base_url: str, member: UserClient) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{header}.{member.token.split('.')[1]}."
    assert_error(get_me(base_url, unsigned), 401, "Invalid token")


def test_an_expired_token_is_refused(base_url: str, portal: PortalServer, member: UserClient) -> None:
    claims = {**_claims(member.token), "iat": int(time.time()) - 7200, "exp": int(time.time()) - 60}
    expired = jwt.encode(claims, _portal_jwt_key(portal), algorithm="HS256")
    assert_error(get_me(base_url, expired), 401, "Token expired")
    # The same claims unexpired and correctly signed do work, so the refusal above is the expiry.
    fresh = jwt.encode({**claims, "exp": int(time.time()) + 600}, _portal_jwt_key(portal), algorithm="HS256")
    assert get_me(base_url, fresh).status_code == 200


def test_a_signed_token_that_was_never_issued_is_refused(
    base_url: str, portal: PortalServer, member: UserClient
) -> None:
    claims = {**_claims(member.token), "jti": "never-issued-token-id"}
    unregistered = jwt.encode(claims, _portal_jwt_key(portal), algorithm="HS256")
    assert_error(get_me(base_url, unregistered), 401, "Invalid token")
