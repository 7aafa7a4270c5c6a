"""Cookie sessions (web login, CSRF, Origin) and secrets at rest in the database file."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.accounts.support import assert_error, bearer, create_user, http, random_ip, settled_step
from tests.conftest import UserClient
from tests.portal_server import PortalServer, backend
from tests.totp_ref import totp

MakeUser = Callable[..., UserClient]
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def web_user(base_url: str, root: UserClient) -> Iterator[UserClient]:
    user = create_user(base_url, root)
    yield user
    user.http.close()


@pytest.fixture
def browser(base_url: str, web_user: UserClient) -> Iterator[tuple[httpx.Client, UserClient, httpx.Response]]:
    """A user signed in through the web form, and a client that holds only that session's cookies."""
    user = web_user
    client = httpx.Client(base_url=base_url, timeout=10)
    resp = client.post("/login", json={"username": user.username, "password": user.password})
    assert resp.status_code == 200, resp.text
    try:
        yield client, user, resp
    finally:
        client.close()


def test_web_login_sets_a_session_cookie_and_a_csrf_cookie(
    browser: tuple[httpx.Client, UserClient, httpx.Response],
) -> None:
    client, _user, resp = browser
    body = resp.json()
    assert body["success"] is True and body["redirect"] == "/dashboard"
    assert "token" not in body  # the JWT travels only in the HttpOnly cookie
    cookies = {c.split("=", 1)[0]: c for c in resp.headers.get_list("set-cookie")}
    session, csrf = cookies["portal_session"].lower(), cookies["portal_csrf"].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    assert "httponly" not in csrf  # page scripts read it to echo it
    assert client.cookies["portal_csrf"] and client.cookies["portal_session"]
    assert client.cookies["portal_csrf"] != client.cookies["portal_session"]


def test_cookie_sessions_read_freely_and_write_only_with_the_csrf_token(
    browser: tuple[httpx.Client, UserClient, httpx.Response],
) -> None:
    client, user, _ = browser
    me = client.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user.id
    start = me.json()["nickname"]

    assert_error(client.put("/api/me/nickname", json={"nickname": "Csrf One"}), 403, "Missing or invalid CSRF token")
    wrong = {"X-CSRF-Token": "0" * len(client.cookies["portal_csrf"])}
    assert_error(client.put("/api/me/nickname", json={"nickname": "Csrf One"}, headers=wrong), 403)
    assert client.get("/api/me").json()["nickname"] == start  # neither refused write happened

    token = {"X-CSRF-Token": client.cookies["portal_csrf"]}
    resp = client.put("/api/me/nickname", json={"nickname": "Csrf One"}, headers=token)
    assert resp.status_code == 200, resp.text
    assert resp.json()["nickname"] == "Csrf One"

    # Another site's page cannot use the session, even holding the right token.
    resp = client.put("/api/me/nickname", json={"nickname": "Evil"}, headers={**token, "Origin": EVIL})
    assert_error(resp, 403, "Cross-origin request refused")
    resp = client.put("/api/me/nickname", json={"nickname": "Evil"}, headers={**token, "Origin": "null"})
    assert_error(resp, 403)
    # The portal's own origin is fine.
    own = str(client.base_url).rstrip("/")
    resp = client.put("/api/me/nickname", json={"nickname": "Csrf Two"}, headers={**token, "Origin": own})
    assert resp.status_code == 200, resp.text
    assert client.get("/api/me").json()["nickname"] == "Csrf Two"


def test_the_csrf_token_belongs_to_its_session(base_url: str, web_user: UserClient) -> None:
    user = web_user
    first, second = httpx.Client(base_url=base_url), httpx.Client(base_url=base_url)
    try:
        for client in (first, second):
            assert client.post("/login", json={"username": user.username, "password": user.password}).status_code == 200
        assert first.cookies["portal_csrf"] != second.cookies["portal_csrf"]
        resp = first.put(
            "/api/me/status", json={"status": "away"}, headers={"X-CSRF-Token": second.cookies["portal_csrf"]}
        )
        assert_error(resp, 403, "Missing or invalid CSRF token")
    finally:
        first.close()
        second.close()


def test_bearer_calls_need_no_csrf_token(member: UserClient) -> None:
    resp = member.put("/api/me/status", json={"status": "online"}, headers={"Origin": EVIL})
    assert resp.status_code == 200, resp.text


def test_login_form_refuses_foreign_origins(base_url: str, member: UserClient) -> None:
    resp = http.post(
        base_url + "/login",
        json={"username": member.username, "password": member.password},
        headers={"Origin": EVIL, "X-Forwarded-For": random_ip()},
    )
    assert_error(resp, 403, "Cross-origin login refused")
    assert "set-cookie" not in resp.headers


def test_web_login_errors_are_json(base_url: str) -> None:
    resp = http.post(base_url + "/login", json={"username": "ghost-" + secrets.token_hex(3), "password": "x"},
                     headers={"X-Forwarded-For": random_ip()})
    assert_error(resp, 401, "Invalid username or password")
    assert_error(http.post(base_url + "/login", json={"username": "x"}), 400, field="password")


def test_session_and_api_tokens_are_not_interchangeable(
    base_url: str, browser: tuple[httpx.Client, UserClient, httpx.Response]
) -> None:
    client, user, _ = browser
    session_token = client.cookies["portal_session"]
    assert_error(http.get(base_url + "/api/me", headers=bearer(session_token)), 401, "Invalid token")
    assert_error(http.get(base_url + "/api/me", params={"token": session_token}), 401, "Invalid token")
    # And an API login's JWT is no session cookie.
    resp = http.get(base_url + "/api/me", headers={"Cookie": f"portal_session={user.token}"})
    assert_error(resp, 401, "Invalid token")


def test_logout_ends_the_cookie_session(
    base_url: str, browser: tuple[httpx.Client, UserClient, httpx.Response]
) -> None:
    client, _user, _ = browser
    session_token = client.cookies["portal_session"]
    resp = client.post("/logout", follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login"
    probe = http.get(base_url + "/api/me", headers={"Cookie": f"portal_session={session_token}"})
    assert_error(probe, 401, "Token revoked")


# -- secrets at rest ------------------------------------------------------------------------------
def _database_bytes(portal: PortalServer) -> bytes:
    data_dir = Path(portal.shared.data_dir)
    files = [data_dir / "portal.db", data_dir / "portal.db-wal"]
    assert files[0].exists(), list(data_dir.iterdir())
    return b"".join(f.read_bytes() for f in files if f.exists())


sqlite_only = pytest.mark.skipif(backend() != "sqlite", reason="reads the SQLite database file")


@sqlite_only
def test_totp_secrets_and_backup_codes_are_not_stored_in_plain_text(
    portal: PortalServer, make_user: MakeUser
) -> None:
    user = make_user()
    secret = user.post("/api/user/2fa/setup").json()["secret"]
    step = settled_step()
    resp = user.post("/api/user/2fa/verify", json={"code": totp(secret, at=(step - 1) * 30 + 1)})
    assert resp.status_code == 200, resp.text
    codes = resp.json()["backup_codes"]

    data = _database_bytes(portal)
    assert user.username.encode() in data  # the probe does see what is written
    assert secret.encode() not in data and secret.lower().encode() not in data
    for code in codes:
        assert code.encode() not in data and code.replace("-", "").encode() not in data


@sqlite_only
def test_api_keys_and_tokens_are_not_stored_in_plain_text(portal: PortalServer, make_user: MakeUser) -> None:
    user = make_user()
    created = user.post("/api/api-keys", json={"name": "at-rest"}).json()
    key = created["api_key"]
    assert user.get("/api/api-keys").status_code == 200

    data = _database_bytes(portal)
    assert created["key_prefix"].encode() in data  # the prefix is kept for display
    assert key.encode() not in data
    assert key[len(created["key_prefix"]) :].encode() not in data
    assert user.token.encode() not in data  # JWTs are registered by id only
    assert user.token.split(".")[2].encode() not in data


@sqlite_only
def test_passwords_are_argon2id_hashes(portal: PortalServer, member: UserClient, root: UserClient) -> None:
    data = _database_bytes(portal)
    assert b"$argon2id$" in data
    assert member.password.encode() not in data and root.password.encode() not in data
