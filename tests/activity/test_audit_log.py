"""GET /api/admin/audit-log: moderator and up, with who did what to whom, and its filters."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.support import assert_error, http
from tests.conftest import UserClient

ENTRY_FIELDS = {
    "id", "actor_id", "actor_username", "action", "target_type", "target_id", "target_label", "details", "created_at"
}


def audit(viewer: UserClient, **params: Any) -> list[dict[str, Any]]:
    resp = viewer.get("/api/admin/audit-log", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"entries", "limit", "offset"}
    for entry in body["entries"]:
        assert set(entry) == ENTRY_FIELDS
    entries: list[dict[str, Any]] = body["entries"]
    return entries


def test_audit_log_is_for_moderators_and_up(base_url: str, member: UserClient, moderator: UserClient) -> None:
    assert_error(member.get("/api/admin/audit-log"), 403, "Requires the moderator role")
    assert_error(http.get(base_url + "/api/admin/audit-log"), 401, "Authentication required")
    resp = moderator.get("/api/admin/audit-log")
    assert resp.status_code == 200, resp.text
    assert resp.json()["limit"] == 50 and resp.json()["offset"] == 0


def new_user(creator: UserClient) -> dict[str, Any]:
    """An account that never needs to sign in (one password hash instead of two)."""
    resp = creator.post("/api/users", json={"username": "a" + secrets.token_hex(5), "password": "audited-pw-1"})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def test_role_changes_and_deletions_are_audited(admin: UserClient, root: UserClient, moderator: UserClient) -> None:
    # The deleted account is not the newest one: SQLite would hand a newest row's id to the next
    # account (see test_a_deleted_users_id_is_never_reused), and later tests filter by target id.
    deleted = new_user(root)
    promoted = new_user(admin)
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    assert admin.put(f"/api/users/{promoted['id']}/role", json={"role": "moderator"}).status_code == 200
    assert root.delete(f"/api/users/{deleted['id']}").status_code == 200

    (changed,) = audit(moderator, action="role_changed", target_id=str(promoted["id"]))
    assert changed["actor_id"] == admin.id and changed["actor_username"] == admin.username
    assert changed["target_type"] == "user" and changed["target_id"] == str(promoted["id"])
    assert changed["target_label"] == promoted["username"]
    assert changed["details"] == {"old_role": "user", "new_role": "moderator"}
    assert datetime.fromisoformat(changed["created_at"]) >= datetime.fromisoformat(since)

    (removed,) = audit(moderator, action="user_deleted", target_id=str(deleted["id"]))
    assert removed["actor_id"] == root.id and removed["actor_username"] == root.username
    # The entry outlives the account and still names it.
    assert removed["target_label"] == deleted["username"] and removed["details"] == {"role": "user"}

    # Creating the accounts was audited too, each by whoever did it.
    (created,) = audit(moderator, action="user_created", target_id=str(promoted["id"]))
    assert created["actor_id"] == admin.id and created["details"] == {"role": "user"}


def test_audit_filters(admin: UserClient, moderator: UserClient) -> None:
    target = new_user(admin)["id"]
    assert admin.put(f"/api/users/{target}/role", json={"role": "moderator"}).status_code == 200
    assert admin.put(f"/api/users/{target}/role", json={"role": "user"}).status_code == 200
    assert admin.post(f"/api/users/{target}/reset-password").status_code == 200

    by_target = audit(moderator, target_id=str(target))
    assert {e["action"] for e in by_target} == {"user_created", "role_changed", "password_reset"}
    assert all(e["target_id"] == str(target) for e in by_target)
    ids = [e["id"] for e in by_target]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert by_target[0]["action"] == "password_reset"

    by_actor = audit(moderator, actor_id=admin.id, limit=200)
    assert by_actor and all(e["actor_id"] == admin.id for e in by_actor)
    assert {e["id"] for e in by_target if e["actor_id"] == admin.id} <= {e["id"] for e in by_actor}

    by_action = audit(moderator, action="role_changed", target_id=str(target))
    assert [e["details"]["new_role"] for e in by_action] == ["user", "moderator"]
    assert audit(moderator, action="no_such_action") == []
    assert audit(moderator, target_type="user", target_id=str(target)) == by_target

    # Time window and paging.
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert audit(moderator, target_id=str(target), since=future) == []
    assert audit(moderator, target_id=str(target), until="2000-01-01T00:00:00Z") == []
    assert audit(moderator, target_id=str(target), limit=1, offset=1) == [by_target[1]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"actor_id": "me"}, "actor_id"),
        ({"actor_id": 2**31}, "actor_id"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_audit_filters_are_validated(moderator: UserClient, params: dict[str, Any], field: str) -> None:
    assert_error(moderator.get("/api/admin/audit-log", params=params), 400, field=field)
