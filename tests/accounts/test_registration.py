"""Invite codes and POST /api/register (one account per IP address per 24 hours)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.accounts.support import assert_error, get_me, http, login, random_ip
from tests.conftest import UserClient

PASSWORD = "registered-pw-1"


def register(base_url: str, ip: str, **body: Any) -> httpx.Response:
    return http.post(base_url + "/api/register", json=body, headers={"X-Forwarded-For": ip})


def new_name() -> str:
    return "r" + secrets.token_hex(5)


def exists(admin: UserClient, username: str) -> bool:
    resp = admin.get("/api/users", params={"q": username})
    assert resp.status_code == 200, resp.text
    return any(u["username"] == username for u in resp.json()["users"])


@pytest.fixture
def invite(admin: UserClient) -> str:
    resp = admin.get("/api/invite-code")
    assert resp.status_code == 200, resp.text
    code: str = resp.json()["invite_code"]
    return code


def test_invite_code_shape(admin: UserClient, root: UserClient) -> None:
    resp = admin.get("/api/invite-code")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"invite_code", "expires_at"}
    assert isinstance(body["invite_code"], str) and len(body["invite_code"]) >= 6
    expires = datetime.fromisoformat(body["expires_at"])
    now = datetime.now(UTC)
    assert now < expires <= now + timedelta(hours=24)
    # The code of the day is the same for every admin.
    assert root.get("/api/invite-code").json() == body


def test_invite_code_is_for_admins_only(base_url: str, member: UserClient, moderator: UserClient) -> None:
    assert_error(member.get("/api/invite-code"), 403, "Requires the admin role")
    assert_error(moderator.get("/api/invite-code"), 403, "Requires the admin role")
    assert_error(http.get(base_url + "/api/invite-code"), 401, "Authentication required")


def test_register_with_the_invite_then_log_in(base_url: str, invite: str, admin: UserClient) -> None:
    name = new_name()
    resp = register(base_url, random_ip(), username=name, password=PASSWORD, invite_code=invite)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"id", "username", "message"}
    assert body["username"] == name and isinstance(body["id"], int)
    assert body["message"] == "Registration successful"

    token = login(base_url, name, PASSWORD)
    assert token.status_code == 200, token.text
    assert token.json()["user"] == {"id": body["id"], "username": name, "role": "user", "is_admin": False}
    me = get_me(base_url, token.json()["token"]).json()
    assert me["role"] == "user" and me["totp_enabled"] is False
    # The account shows up for admins, and the registration is in its activity.
    listed = admin.get("/api/users", params={"q": name}).json()["users"]
    assert [u["id"] for u in listed] == [body["id"]]
    actions = [e["action"] for e in admin.get("/api/activity", params={"limit": 50}).json()["activities"]
               if e["user_id"] == body["id"]]
    assert "registered" in actions


def test_the_invite_code_is_not_case_sensitive(base_url: str, invite: str) -> None:
    name = new_name()
    resp = register(base_url, random_ip(), username=name, password=PASSWORD, invite_code=invite.lower())
    assert resp.status_code == 201, resp.text
    assert resp.json()["username"] == name


def test_a_wrong_invite_code_is_refused(base_url: str, invite: str, admin: UserClient) -> None:
    wrong = "AAAA-AAAA" if invite != "AAAA-AAAA" else "BBBB-BBBB"
    ip = random_ip()
    name = new_name()
    for code in (wrong, invite[:-1], invite + "X", "x" * 32):
        resp = register(base_url, ip, username=name, password=PASSWORD, invite_code=code)
        assert_error(resp, 400, "Invalid or expired invite code", field="invite_code")
    # Nothing was created, and the refused attempts did not use up the address.
    assert exists(admin, name) is False
    assert register(base_url, ip, username=name, password=PASSWORD, invite_code=invite).status_code == 201
    assert exists(admin, name) is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "short7!"}, "password"),
        ({"password": "p" * 257}, "password"),
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "-leading"}, "username"),
        ({"username": "x" * 33}, "username"),
        ({"username": "bad/char"}, "username"),
        ({"username": 12345}, "username"),
        ({"invite_code": ""}, "invite_code"),
        ({"invite_code": None}, "invite_code"),
        ({"role": "admin"}, "role"),
    ],
)
def test_invalid_registrations_are_400s_naming_the_field(
    base_url: str, invite: str, body: dict[str, Any], field: str
) -> None:
    full = {"username": new_name(), "password": PASSWORD, "invite_code": invite, **body}
    assert_error(register(base_url, random_ip(), **full), 400, field=field)


def test_a_missing_field_is_named(base_url: str, invite: str) -> None:
    resp = register(base_url, random_ip(), username=new_name(), invite_code=invite)
    assert_error(resp, 400, field="password")


def test_a_taken_username_is_a_409_whatever_its_case(base_url: str, invite: str, member: UserClient) -> None:
    for name in (member.username, member.username.upper()):
        resp = register(base_url, random_ip(), username=name, password=PASSWORD, invite_code=invite)
        assert_error(resp, 409, "Username already taken", field="username")
    # The existing account is untouched.
    assert get_me(base_url, member.token).status_code == 200


def test_one_account_per_ip_per_day(base_url: str, invite: str, admin: UserClient) -> None:
    ip = random_ip()
    first = register(base_url, ip, username=new_name(), password=PASSWORD, invite_code=invite)
    assert first.status_code == 201, first.text

    second_name = new_name()
    resp = register(base_url, ip, username=second_name, password=PASSWORD, invite_code=invite)
    body = assert_error(resp, 429)
    assert "24 hours" in body["error"]
    assert 24 * 3600 - 120 <= body["retry_after"] <= 24 * 3600
    assert resp.headers["Retry-After"] == str(body["retry_after"])
    assert exists(admin, second_name) is False

    # Another address may register.
    other = register(base_url, random_ip(), username=second_name, password=PASSWORD, invite_code=invite)
    assert other.status_code == 201, other.text
