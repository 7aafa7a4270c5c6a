"""GET /api/activity: who sees what, limits, and the entries account changes leave behind."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.support import assert_error, http, settled_step
from tests.conftest import UserClient
from tests.totp_ref import totp

MakeUser = Callable[..., UserClient]
ENTRY_FIELDS = {"id", "user_id", "username", "action", "details", "created_at"}


def feed(user: UserClient, limit: int = 50) -> list[dict[str, Any]]:
    resp = user.get("/api/activity", params={"limit": limit})
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"activities"}
    entries: list[dict[str, Any]] = resp.json()["activities"]
    return entries


def test_feed_shape_and_order(member: UserClient) -> None:
    entries = feed(member)
    assert entries, "the member's own login is in its feed"
    for e in entries:
        assert set(e) == ENTRY_FIELDS
        assert e["user_id"] == member.id and e["username"] == member.username
        assert datetime.fromisoformat(e["created_at"]) <= datetime.now(UTC) + timedelta(seconds=5)
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert "login" in [e["action"] for e in entries]


@pytest.mark.parametrize("limit", ["0", "51", "-1", "ten", "1.5"])
def test_limit_is_validated(member: UserClient, limit: str) -> None:
    assert_error(member.get("/api/activity", params={"limit": limit}), 400, field="limit")


def test_limit_bounds_and_default(root: UserClient) -> None:
    assert len(feed(root, 1)) == 1
    assert len(feed(root, 50)) <= 50
    resp = root.get("/api/activity")
    assert resp.status_code == 200 and len(resp.json()["activities"]) <= 20


def test_users_see_only_their_own_entries_admins_see_everyone(
    make_user: MakeUser, member: UserClient, moderator: UserClient, admin: UserClient
) -> None:
    actor = make_user()
    created = actor.post("/api/api-keys", json={"name": "visible"})
    assert created.status_code == 201, created.text

    assert all(e["user_id"] == actor.id for e in feed(actor))
    for other in (member, moderator):  # moderators are not admins here
        entries = feed(other)
        assert entries and all(e["user_id"] == other.id for e in entries)

    entries = feed(admin)
    assert any(e["user_id"] == actor.id and e["action"] == "api_key_created" for e in entries)
    assert len({e["user_id"] for e in entries}) > 1


def test_account_changes_are_recorded(make_user: MakeUser) -> None:
    user = make_user()
    key = user.post("/api/api-keys", json={"name": "tracked"}).json()
    assert user.post(f"/api/api-keys/{key['id']}/revoke").status_code == 200
    assert user.delete(f"/api/api-keys/{key['id']}").status_code == 200

    secret = user.post("/api/user/2fa/setup").json()["secret"]
    step = settled_step()
    assert user.post("/api/user/2fa/verify", json={"code": totp(secret, at=(step - 1) * 30 + 1)}).status_code == 200
    assert user.post("/api/user/2fa/disable", json={"code": totp(secret, at=step * 30 + 1)}).status_code == 200

    resp = user.post("/api/me/password", json={"current_password": user.password, "new_password": "changed-pw-1"})
    assert resp.status_code == 200, resp.text

    entries = feed(user)
    actions = [e["action"] for e in entries]
    expected = ["password_changed", "2fa_disabled", "2fa_enabled", "api_key_deleted", "api_key_revoked",
                "api_key_created"]
    assert actions[: len(expected)] == expected, actions
    details = {e["action"]: e["details"] for e in entries}
    assert "tracked" in details["api_key_created"] and "tracked" in details["api_key_deleted"]
    # No secret ends up in the feed.
    assert key["api_key"] not in str(entries) and secret not in str(entries) and "changed-pw-1" not in str(entries)


def test_admin_actions_are_in_the_admins_feed(root: UserClient) -> None:
    name = "t" + secrets.token_hex(5)
    target = root.post("/api/users", json={"username": name, "password": "target-pw-1"}).json()
    assert root.put(f"/api/users/{target['id']}/role", json={"role": "moderator"}).status_code == 200
    mine = [e for e in feed(root) if e["user_id"] == root.id]
    assert [e["action"] for e in mine[:2]] == ["role_changed", "user_created"]
    assert name in mine[0]["details"] and name in mine[1]["details"]


def test_activity_needs_authentication(base_url: str) -> None:
    assert_error(http.get(base_url + "/api/activity"), 401, "Authentication required")
