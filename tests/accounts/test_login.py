"""POST /api/token: the login contract, input validation, and failed-login throttling."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.accounts.support import assert_error, bearer, get_me, http, login, random_ip
from tests.conftest import UserClient

INVALID_LOGIN = "Invalid username or password"
MakeUser = Callable[..., UserClient]


def test_login_returns_a_registered_jwt_with_the_user(base_url: str, member: UserClient) -> None:
    resp = login(base_url, member.username, member.password)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"token", "token_id", "expires_at", "user"}
    assert body["user"] == {"id": member.id, "username": member.username, "role": "user", "is_admin": False}
    assert body["token"].count(".") == 2 and isinstance(body["token_id"], str) and body["token_id"]
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.tzinfo is not None
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24, minutes=1)
    me = get_me(base_url, body["token"])
    assert me.status_code == 200 and me.json()["id"] == member.id


def test_login_reports_role_and_is_admin(base_url: str, admin: UserClient) -> None:
    body = login(base_url, admin.username, admin.password).json()
    assert body["user"] == {"id": admin.id, "username": admin.username, "role": "admin", "is_admin": True}


def test_wrong_password_and_unknown_user_give_the_same_401(
    base_url: str, member: UserClient, root: UserClient
) -> None:
    ghost = "ghost" + secrets.token_hex(4)
    wrong = login(base_url, member.username, member.password.upper(), ip=random_ip())  # passwords are case-sensitive
    unknown = login(base_url, ghost, member.password, ip=random_ip())
    assert assert_error(wrong, 401) == assert_error(unknown, 401) == {"error": INVALID_LOGIN, "status": 401}
    assert "token" not in wrong.text
    # An attempt on an unknown name is still in the feed admins see, with no user behind it.
    entries = root.get("/api/activity", params={"limit": 50}).json()["activities"]
    mine = [e for e in entries if e["username"] == ghost]
    assert len(mine) == 1
    assert mine[0]["action"] == "login_failed" and mine[0]["user_id"] is None
    assert "unknown user" in mine[0]["details"]
    # The shared user's failure count is cleared again by a good login, here with the name upper-cased.
    resp = login(base_url, member.username.upper(), member.password)
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["username"] == member.username
    assert resp.json()["user"]["id"] == member.id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "whatever-123"}, "username"),
        ({"username": "someone"}, "password"),
        ({"username": 123, "password": "whatever-123"}, "username"),
        ({"username": "someone", "password": ["whatever-123"]}, "password"),
        ({"username": "someone", "password": "whatever-123", "totp_code": 123456}, "totp_code"),
        ({"username": "", "password": "whatever-123"}, "username"),
        ({"username": "someone", "password": ""}, "password"),
        ({"username": "x" * 65, "password": "whatever-123"}, "username"),
        ({"username": "someone", "password": "p" * 257}, "password"),
        ({"username": "someone", "password": "whatever-123", "totp_code": "1" * 33}, "totp_code"),
        ({"username": "someone", "password": "whatever-123", "admin": True}, "admin"),
    ],
)
def test_invalid_login_input_is_a_400_naming_the_field(base_url: str, body: dict[str, object], field: str) -> None:
    resp = http.post(base_url + "/api/token", json=body, headers={"X-Forwarded-For": random_ip()})
    err = assert_error(resp, 400, field=field)
    assert field in err["error"]
    assert err["details"][0]["field"] == field


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"root"', b"null"])
def test_non_object_json_body_is_a_400(base_url: str, raw: bytes) -> None:
    resp = http.post(
        base_url + "/api/token",
        content=raw,
        headers={"Content-Type": "application/json", "X-Forwarded-For": random_ip()},
    )
    assert_error(resp, 400, field="body")


def test_invalid_json_is_named_as_such(base_url: str) -> None:
    resp = http.post(
        base_url + "/api/token",
        content=b'{"username": "root", "password": ',
        headers={"Content-Type": "application/json", "X-Forwarded-For": random_ip()},
    )
    assert_error(resp, 400, contains="not valid JSON", field="body")


def test_failed_logins_lock_the_account_and_a_success_resets_the_count(
    base_url: str, make_user: MakeUser, member: UserClient
) -> None:
    user = make_user()
    assert_error(login(base_url, user.username, "wrong-x", ip=random_ip()), 401, INVALID_LOGIN)
    # Back to zero: without that, the fifth failure below would already be refused.
    assert login(base_url, user.username, user.password, ip=random_ip()).status_code == 200

    for attempt in range(5):
        # Each failure from another address, the username in another case: still one account.
        name = user.username.upper() if attempt % 2 else user.username
        assert_error(login(base_url, name, f"wrong-{attempt}", ip=random_ip()), 401, INVALID_LOGIN)

    ip = random_ip()
    locked = login(base_url, user.username, user.password, ip=ip)
    body = assert_error(locked, 429)
    assert "failed login" in body["error"].lower()
    assert isinstance(body["retry_after"], int) and 1 <= body["retry_after"] <= 15 * 60
    assert locked.headers["Retry-After"] == str(body["retry_after"])
    assert "X-RateLimit-Limit" in locked.headers
    assert "token" not in body

    # The lock is on that account only: another user signs in from the very same address.
    assert login(base_url, member.username, member.password, ip=ip).status_code == 200
    # Sessions issued before the lock keep working, and the feed shows what happened.
    resp = user.get("/api/activity", params={"limit": 50})
    assert resp.status_code == 200, resp.text
    entries = resp.json()["activities"]
    actions = [e["action"] for e in entries]
    # Newest first; the locked attempt is refused before the password is even checked.
    assert actions[:7] == ["login_failed"] * 5 + ["login", "login_failed"], actions
    assert actions.count("login") == 2  # make_user's login and the one in between
    failed = entries[0]
    assert failed["user_id"] == user.id and failed["username"] == user.username
    assert "wrong password" in failed["details"]
    assert "wrong-" not in str(entries)  # attempted passwords are never recorded


def test_failed_logins_from_one_ip_block_that_ip(base_url: str, member: UserClient) -> None:
    ip = random_ip()

    def fail(_: int) -> httpx.Response:
        # Distinct unknown usernames: no single account reaches its own limit.
        return login(base_url, "ghost" + secrets.token_hex(4), "wrong-password", ip=ip)

    with ThreadPoolExecutor(4) as pool:  # argon2 runs in the server's threads: use its cores
        for resp in pool.map(fail, range(20)):
            assert_error(resp, 401, INVALID_LOGIN)

    blocked = login(base_url, member.username, member.password, ip=ip)
    body = assert_error(blocked, 429)
    assert 1 <= body["retry_after"] <= 15 * 60
    assert blocked.headers["Retry-After"] == str(body["retry_after"])

    # The account itself is fine from anywhere else.
    assert login(base_url, member.username, member.password, ip=random_ip()).status_code == 200


def test_a_bearer_token_needs_the_bearer_scheme(base_url: str, member: UserClient) -> None:
    assert http.get(base_url + "/api/me", headers=bearer(member.token)).status_code == 200
    # The scheme is case-insensitive; another scheme is no credential at all.
    assert http.get(base_url + "/api/me", headers={"Authorization": f"bearer {member.token}"}).status_code == 200
    resp = http.get(base_url + "/api/me", headers={"Authorization": f"Basic {member.token}"})
    assert_error(resp, 401, "Authentication required")
