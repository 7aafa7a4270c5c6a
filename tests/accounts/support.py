"""Helpers shared by the accounts, activity and core HTTP tests (all traffic goes to the real server)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from tests.conftest import UserClient
from tests.totp_ref import totp

TOTP_STEP = 30

# One pooled client for one-off calls: a new httpx client per request costs more than the request.
http = httpx.Client(timeout=10)


def random_ip() -> str:
    """A fresh client address for X-Forwarded-For (the test server trusts it from 127.0.0.1).

    Registration (one account per IP per day) and failed-login throttling (per IP) are keyed on
    it, so every test that registers or fails a login presents its own address.
    """
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def assert_error(
    resp: httpx.Response,
    status: int,
    message: str | None = None,
    *,
    contains: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    """The response is the portal's error model: JSON ``{"error": str, "status": N, ...}``."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status, body
    assert isinstance(body["error"], str) and body["error"].strip(), body
    if message is not None:
        assert body["error"] == message, body
    if contains is not None:
        assert contains.lower() in body["error"].lower(), body
    if field is not None:
        assert body.get("field") == field, body
    return body


def login(
    base_url: str,
    username: str,
    password: str,
    *,
    ip: str | None = None,
    totp_code: str | None = None,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"username": username, "password": password, **extra}
    if totp_code is not None:
        body["totp_code"] = totp_code
    headers = {"X-Forwarded-For": ip} if ip else {}
    return http.post(base_url + "/api/token", json=body, headers=headers)


def token_for(base_url: str, username: str, password: str, *, ip: str | None = None) -> str:
    resp = login(base_url, username, password, ip=ip)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get_me(base_url: str, token: str) -> httpx.Response:
    return http.get(base_url + "/api/me", headers=bearer(token))


# -- TOTP ---------------------------------------------------------------------------------------
def settled_step(margin: float = 3.0) -> int:
    """The current TOTP step, waiting for the next one when fewer than ``margin`` seconds remain.

    The server accepts the previous, current and next step; a test that computes codes for
    known steps stays deterministic as long as no step boundary passes in the middle of it.
    """
    left = TOTP_STEP - time.time() % TOTP_STEP
    if left < margin:
        time.sleep(left + 0.05)
    return int(time.time() // TOTP_STEP)


def code_at(secret: str, step: int) -> str:
    return totp(secret, at=step * TOTP_STEP + 1)


def wrong_code(secret: str, step: int) -> str:
    """A six-digit code that matches none of the steps the server accepts around ``step``."""
    valid = {code_at(secret, s) for s in range(step - 2, step + 3)}
    candidate = 0
    while f"{candidate:06d}" in valid:
        candidate += 1
    return f"{candidate:06d}"


# -- users --------------------------------------------------------------------------------------
def create_user(base_url: str, root: UserClient, role: str = "user") -> UserClient:
    """Like the ``make_user`` fixture, for users that outlive one test."""
    username = "s" + secrets.token_hex(5)
    password = "pw-" + secrets.token_hex(8)
    resp = root.post("/api/users", json={"username": username, "password": password, "role": role})
    assert resp.status_code == 201, resp.text
    token = token_for(base_url, username, password)
    http = httpx.Client(base_url=base_url, headers=bearer(token), timeout=10)
    return UserClient(resp.json()["id"], username, password, role, token, http)


_SHARED: dict[tuple[str, str], UserClient] = {}


def shared_user(base_url: str, root: UserClient, role: str) -> UserClient:
    """One user per role for the whole session (argon2 makes every account cost a quarter second).

    Shared users are read-only: no test changes their profile, role, password, 2FA or tokens, or
    leaves a failed login of theirs uncleared. Tests that change a user make their own.
    """
    key = (base_url, role)
    if key not in _SHARED:
        _SHARED[key] = create_user(base_url, root, role)
    return _SHARED[key]


@pytest.fixture
def member(base_url: str, root: UserClient) -> UserClient:
    return shared_user(base_url, root, "user")


@pytest.fixture
def moderator(base_url: str, root: UserClient) -> UserClient:
    return shared_user(base_url, root, "moderator")


@pytest.fixture
def admin(base_url: str, root: UserClient) -> UserClient:
    return shared_user(base_url, root, "admin")
