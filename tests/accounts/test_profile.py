"""GET /api/me and the profile routes: password, status, nickname, avatar, anonymous mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.support import assert_error, create_user, get_me, http, login, random_ip
from tests.conftest import UserClient

MakeUser = Callable[..., UserClient]
ME_FIELDS = {
    "id", "username", "role", "is_admin", "scopes", "created_at", "totp_enabled", "nickname", "display_name",
    "status", "status_message", "avatar", "anonymous",
}


@pytest.fixture(scope="module")
def profiled(base_url: str, root: UserClient) -> Iterator[UserClient]:
    """A user whose profile this module changes; each test sets what it checks."""
    user = create_user(base_url, root)
    yield user
    user.http.close()


def put(user: UserClient, what: str, body: dict[str, Any]) -> Any:
    return user.put(f"/api/me/{what}", json=body)


def updated(user: UserClient, what: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = put(user, what, body)
    assert resp.status_code == 200, resp.text
    me: dict[str, Any] = resp.json()
    assert set(me) == ME_FIELDS
    # The answer is the new profile, and so is the next read through the same (cached) credential.
    assert user.get("/api/me").json() == me
    return me


def test_me_shape(member: UserClient) -> None:
    resp = member.get("/api/me")
    assert resp.status_code == 200, resp.text
    me = resp.json()
    assert set(me) == ME_FIELDS
    assert me["id"] == member.id and me["username"] == member.username
    assert me["role"] == "user" and me["is_admin"] is False
    assert me["scopes"] == "*" and me["totp_enabled"] is False
    assert me["nickname"] is None and me["display_name"] == member.username
    assert me["status"] == "online" and me["status_message"] is None
    assert me["avatar"] == {"color": None, "emoji": None, "initials": None}
    assert me["anonymous"] is False
    created = datetime.fromisoformat(me["created_at"])
    assert created.tzinfo is not None and created <= datetime.now(UTC) + timedelta(seconds=5)


def test_me_of_admins(admin: UserClient, root: UserClient) -> None:
    assert admin.get("/api/me").json()["is_admin"] is True
    me = root.get("/api/me").json()
    assert me["role"] == "superadmin" and me["is_admin"] is True


# -- password ------------------------------------------------------------------------------------
def test_change_password_keeps_this_session_and_ends_the_others(base_url: str, make_user: MakeUser) -> None:
    user = make_user()
    other = login(base_url, user.username, user.password).json()["token"]
    assert get_me(base_url, other).status_code == 200

    assert_error(
        user.post("/api/me/password", json={"current_password": "not-it-at-all", "new_password": "brand-new-pw-1"}),
        400,
        "Current password is incorrect",
        field="current_password",
    )
    assert_error(
        user.post("/api/me/password", json={"current_password": user.password, "new_password": "short"}),
        400,
        field="new_password",
    )
    assert_error(user.post("/api/me/password", json={"current_password": user.password}), 400, field="new_password")
    assert_error(
        user.post("/api/me/password", json={"current_password": user.password, "new_password": user.password}),
        400,
        field="new_password",
    )
    assert get_me(base_url, other).status_code == 200  # refused changes end nothing

    resp = user.post("/api/me/password", json={"current_password": user.password, "new_password": "brand-new-pw-1"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"success": True}

    assert user.get("/api/me").status_code == 200
    assert_error(get_me(base_url, other), 401, "Token revoked")
    assert_error(login(base_url, user.username, user.password, ip=random_ip()), 401, "Invalid username or password")
    assert login(base_url, user.username, "brand-new-pw-1").status_code == 200


# -- status --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["online", "away", "busy", "dnd", "offline"])
def test_status_values(profiled: UserClient, value: str) -> None:
    me = updated(profiled, "status", {"status": value, "status_message": f"feeling {value}"})
    assert me["status"] == value and me["status_message"] == f"feeling {value}"


def test_status_message_is_optional_and_trimmed(profiled: UserClient) -> None:
    assert updated(profiled, "status", {"status": "away", "status_message": "  lunch  "})["status_message"] == "lunch"
    assert updated(profiled, "status", {"status": "busy"})["status_message"] is None
    assert updated(profiled, "status", {"status": "away", "status_message": "   "})["status_message"] is None
    assert updated(profiled, "status", {"status": "away", "status_message": "m" * 100})["status_message"] == "m" * 100


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"status": "Online"}, "status"),
        ({}, "status"),
        ({"status": 1}, "status"),
        ({"status": "away", "status_message": "m" * 101}, "status_message"),
        ({"status": "away", "status_message": 5}, "status_message"),
    ],
)
def test_invalid_status_is_a_400(profiled: UserClient, body: dict[str, Any], field: str) -> None:
    before = profiled.get("/api/me").json()
    assert_error(put(profiled, "status", body), 400, field=field)
    assert profiled.get("/api/me").json() == before


# -- nickname and display name -------------------------------------------------------------------
@pytest.mark.parametrize("nickname", ["Al", "Cool Name-2", "n" * 32, "123"])
def test_valid_nicknames(profiled: UserClient, nickname: str) -> None:
    me = updated(profiled, "nickname", {"nickname": nickname})
    assert me["nickname"] == nickname and me["display_name"] == nickname


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_an_empty_nickname_clears_it(profiled: UserClient, empty: str | None) -> None:
    updated(profiled, "nickname", {"nickname": "Temporary"})
    me = updated(profiled, "nickname", {"nickname": empty})
    assert me["nickname"] is None and me["display_name"] == profiled.username


@pytest.mark.parametrize("nickname", ["A", "n" * 33, "bad!", "under_score", "émile", "tab\there", 42])
def test_invalid_nicknames_are_400s(profiled: UserClient, nickname: object) -> None:
    updated(profiled, "nickname", {"nickname": "Before"})
    assert_error(put(profiled, "nickname", {"nickname": nickname}), 400, field="nickname")
    assert profiled.get("/api/me").json()["nickname"] == "Before"


def test_a_nickname_may_not_be_another_users_username(profiled: UserClient, member: UserClient) -> None:
    for taken in (member.username, member.username.upper()):
        assert_error(put(profiled, "nickname", {"nickname": taken}), 409, field="nickname")
    # One's own username is fine.
    own = profiled.username.upper()
    assert updated(profiled, "nickname", {"nickname": own})["nickname"] == own


def test_display_name_is_anonymous_then_nickname_then_username(profiled: UserClient) -> None:
    updated(profiled, "nickname", {"nickname": ""})
    updated(profiled, "anonymous", {"anonymous": False})
    assert profiled.get("/api/me").json()["display_name"] == profiled.username
    assert updated(profiled, "nickname", {"nickname": "Shown Name"})["display_name"] == "Shown Name"
    me = updated(profiled, "anonymous", {"anonymous": True})
    assert me["anonymous"] is True and me["display_name"] == "Anonymous" and me["nickname"] == "Shown Name"
    me = updated(profiled, "anonymous", {"anonymous": False})
    assert me["anonymous"] is False and me["display_name"] == "Shown Name"


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None])
def test_anonymous_takes_only_booleans(profiled: UserClient, value: object) -> None:
    updated(profiled, "anonymous", {"anonymous": False})
    assert_error(put(profiled, "anonymous", {"anonymous": value}), 400, field="anonymous")
    assert_error(put(profiled, "anonymous", {}), 400, field="anonymous")
    assert profiled.get("/api/me").json()["anonymous"] is False


# -- avatar --------------------------------------------------------------------------------------
def test_avatar_set_and_clear(profiled: UserClient) -> None:
    me = updated(profiled, "avatar", {"color": "#1a2B3c", "emoji": "🎉", "initials": "ab"})
    assert me["avatar"] == {"color": "#1a2B3c", "emoji": "🎉", "initials": "AB"}
    me = updated(profiled, "avatar", {"color": "#000000", "emoji": "👍🏽", "initials": "Z"})
    assert me["avatar"] == {"color": "#000000", "emoji": "👍🏽", "initials": "Z"}
    me = updated(profiled, "avatar", {"color": None, "emoji": None, "initials": None})
    assert me["avatar"] == {"color": None, "emoji": None, "initials": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"color": "red"}, "color"),
        ({"color": "#12345"}, "color"),
        ({"color": "#1234567"}, "color"),
        ({"color": "#GGGGGG"}, "color"),
        ({"color": "123456"}, "color"),
        ({"emoji": "a"}, "emoji"),
        ({"emoji": ":)"}, "emoji"),
        ({"emoji": "🎉x"}, "emoji"),
        ({"emoji": "🎉" * 9}, "emoji"),
        ({"initials": "abc"}, "initials"),
        ({"initials": "!"}, "initials"),
        ({"initials": 7}, "initials"),
        ({"shape": "round"}, "shape"),
    ],
)
def test_invalid_avatars_are_400s(profiled: UserClient, body: dict[str, Any], field: str) -> None:
    updated(profiled, "avatar", {"color": "#abcdef", "emoji": None, "initials": "QQ"})
    assert_error(put(profiled, "avatar", body), 400, field=field)
    assert profiled.get("/api/me").json()["avatar"] == {"color": "#abcdef", "emoji": None, "initials": "QQ"}


def test_profile_writes_need_authentication(base_url: str) -> None:
    assert_error(http.get(base_url + "/api/me"), 401, "Authentication required")
    for what, body in (("status", {"status": "away"}), ("nickname", {"nickname": "x"}), ("anonymous", {})):
        assert_error(http.put(f"{base_url}/api/me/{what}", json=body), 401, "Authentication required")
    assert_error(
        http.post(base_url + "/api/me/password", json={"current_password": "a", "new_password": "b" * 8}), 401
    )
