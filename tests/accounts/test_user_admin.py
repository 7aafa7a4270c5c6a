"""Roles and admin user management: /api/users, role changes, password resets, deletion."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from tests.accounts.support import assert_error, bearer, http, login, random_ip
from tests.conftest import UserClient

MakeUser = Callable[..., UserClient]
USER_FIELDS = {"id", "username", "role", "is_admin", "nickname", "created_at", "last_login_at", "totp_enabled"}


def create(actor: UserClient, role: str = "user", **extra: Any) -> Any:
    body = {"username": "m" + secrets.token_hex(5), "password": "created-pw-1", "role": role, **extra}
    return actor.post("/api/users", json=body)


def _find(actor: UserClient, username: str) -> list[dict[str, Any]]:
    resp = actor.get("/api/users", params={"q": username})
    assert resp.status_code == 200, resp.text
    return [u for u in resp.json()["users"] if u["username"] == username]


def created_id(actor: UserClient, role: str = "user") -> int:
    resp = create(actor, role)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


# -- listing and creating ------------------------------------------------------------------------
def test_admins_list_users(admin: UserClient, member: UserClient) -> None:
    resp = admin.get("/api/users")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"users", "total", "limit", "offset"}
    assert body["limit"] == 50 and body["offset"] == 0 and body["total"] >= len(body["users"]) >= 3
    for u in body["users"]:
        assert set(u) == USER_FIELDS
        assert "password" not in str(u) and "hash" not in str(u)
    assert body["users"][0]["role"] == "superadmin"  # oldest first: the bootstrap account
    (found,) = _find(admin, member.username)
    assert found["id"] == member.id and found["username"] == member.username
    assert found["role"] == "user" and found["is_admin"] is False and found["totp_enabled"] is False
    assert found["last_login_at"] is not None
    assert _find(admin, admin.username)[0]["is_admin"] is True


def test_user_list_paging_and_search(admin: UserClient, member: UserClient) -> None:
    page = admin.get("/api/users", params={"limit": 1, "offset": 1}).json()
    assert len(page["users"]) == 1 and page["limit"] == 1 and page["offset"] == 1
    found = admin.get("/api/users", params={"q": member.username.upper()}).json()
    assert [u["id"] for u in found["users"]] == [member.id] and found["total"] == 1
    # Search terms are literal: "_" and "%" are not wildcards.
    for literal in ("_", "%"):
        resp = admin.get("/api/users", params={"q": literal})
        assert resp.status_code == 200, resp.text
        assert all(literal in u["username"] for u in resp.json()["users"]), resp.json()
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"offset": 2**63}, {"q": "q" * 65}):
        (field,) = params
        assert_error(admin.get("/api/users", params=params), 400, field=field)


def test_only_admins_manage_users(base_url: str, member: UserClient, moderator: UserClient) -> None:
    for caller in (member, moderator):
        assert_error(caller.get("/api/users"), 403, "Requires the admin role")
        assert_error(create(caller), 403, "Requires the admin role")
        assert_error(caller.put(f"/api/users/{member.id}/role", json={"role": "user"}), 403)
        assert_error(caller.post(f"/api/users/{member.id}/reset-password"), 403)
        assert_error(caller.delete(f"/api/users/{member.id}"), 403)
    assert_error(http.get(base_url + "/api/users"), 401, "Authentication required")


def test_admin_creates_users_below_their_role(base_url: str, admin: UserClient) -> None:
    for role in ("user", "moderator"):
        resp = create(admin, role)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert set(body) == USER_FIELDS
        assert body["role"] == role and body["is_admin"] is False and body["last_login_at"] is None
    for role in ("admin", "superadmin"):
        assert_error(create(admin, role), 403, "You can only assign roles below your own")


def test_superadmin_creates_admins_but_no_second_superadmin(root: UserClient) -> None:
    resp = create(root, "admin")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["role"] == "admin" and body["is_admin"] is True
    assert _find(root, body["username"])[0]["role"] == "admin"
    assert_error(create(root, "superadmin"), 403, "You can only assign roles below your own")


def test_create_user_validation(admin: UserClient, member: UserClient) -> None:
    assert_error(create(admin, username=member.username.upper()), 409, "Username already taken", field="username")
    assert_error(create(admin, username="a b"), 400, field="username")
    assert_error(create(admin, password="short"), 400, field="password")
    assert_error(create(admin, role="owner"), 400, field="role")
    assert_error(create(admin, role=1), 400, field="role")
    resp = create(admin)
    assert resp.status_code == 201 and resp.json()["role"] == "user"  # the default role


# -- roles ---------------------------------------------------------------------------------------
def test_nobody_changes_their_own_role(admin: UserClient, root: UserClient) -> None:
    assert_error(admin.put(f"/api/users/{admin.id}/role", json={"role": "user"}), 403)
    assert_error(root.put(f"/api/users/{root.id}/role", json={"role": "admin"}), 403)
    assert admin.get("/api/me").json()["role"] == "admin"
    assert root.get("/api/me").json()["role"] == "superadmin"


def test_admin_cannot_touch_an_equal_or_higher_role(admin: UserClient, root: UserClient) -> None:
    other = create(root, "admin").json()
    other_admin = other["id"]
    assert_error(
        admin.put(f"/api/users/{other_admin}/role", json={"role": "user"}),
        403,
        "You cannot manage a user with an equal or higher role",
    )
    assert_error(admin.put(f"/api/users/{root.id}/role", json={"role": "user"}), 403)
    assert_error(admin.post(f"/api/users/{other_admin}/reset-password"), 403)
    assert_error(admin.post(f"/api/users/{root.id}/reset-password"), 403)
    assert _find(root, other["username"])[0]["role"] == "admin"
    assert root.get("/api/me").json()["role"] == "superadmin"


def test_admin_promotes_a_user_to_moderator_but_not_to_admin(admin: UserClient) -> None:
    target = created_id(admin)
    resp = admin.put(f"/api/users/{target}/role", json={"role": "moderator"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == target and resp.json()["role"] == "moderator" and resp.json()["is_admin"] is False
    assert_error(admin.put(f"/api/users/{target}/role", json={"role": "admin"}), 403)
    resp = admin.put(f"/api/users/{target}/role", json={"role": "user"})
    assert resp.status_code == 200 and resp.json()["role"] == "user"


def test_a_role_change_applies_to_existing_tokens_at_once(
    base_url: str, make_user: MakeUser, root: UserClient
) -> None:
    user = make_user()
    key = user.post("/api/api-keys", json={"name": "full"}).json()["api_key"]
    assert_error(user.get("/api/users"), 403)
    assert_error(http.get(base_url + "/api/users", headers=bearer(key)), 403)

    resp = root.put(f"/api/users/{user.id}/role", json={"role": "admin"})
    assert resp.status_code == 200 and resp.json()["is_admin"] is True
    assert user.get("/api/users").status_code == 200  # same token, new role
    assert http.get(base_url + "/api/users", headers=bearer(key)).status_code == 200
    assert user.get("/api/me").json()["is_admin"] is True

    assert root.put(f"/api/users/{user.id}/role", json={"role": "user"}).status_code == 200
    assert_error(user.get("/api/users"), 403, "Requires the admin role")
    assert_error(http.get(base_url + "/api/users", headers=bearer(key)), 403)
    assert user.get("/api/me").json()["role"] == "user"


@pytest.mark.parametrize("body", [{"role": "god"}, {"role": ""}, {"role": None}, {}, {"role": "admin", "x": 1}])
def test_invalid_role_bodies_are_400s(root: UserClient, member: UserClient, body: dict[str, Any]) -> None:
    field = "x" if "x" in body else "role"
    assert_error(root.put(f"/api/users/{member.id}/role", json=body), 400, field=field)


def test_unknown_and_impossible_user_ids(root: UserClient) -> None:
    missing = 2**31 - 1
    assert_error(root.put(f"/api/users/{missing}/role", json={"role": "user"}), 404, "User not found")
    assert_error(root.post(f"/api/users/{missing}/reset-password"), 404, "User not found")
    assert_error(root.delete(f"/api/users/{missing}"), 404, "User not found")
    for impossible in ("0", "-5", str(2**31), str(2**63), "abc"):
        assert_error(root.put(f"/api/users/{impossible}/role", json={"role": "user"}), 400, field="user_id")
        assert_error(root.post(f"/api/users/{impossible}/reset-password"), 400, field="user_id")
        assert_error(root.delete(f"/api/users/{impossible}"), 400, field="user_id")


# -- password resets -----------------------------------------------------------------------------
def test_reset_password_generates_a_temporary_one_and_ends_sessions(
    base_url: str, make_user: MakeUser, admin: UserClient
) -> None:
    user = make_user()
    key = user.post("/api/api-keys", json={"name": "k"}).json()["api_key"]
    resp = admin.post(f"/api/users/{user.id}/reset-password")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"success", "temporary_password"} and body["success"] is True
    temporary = body["temporary_password"]
    assert isinstance(temporary, str) and len(temporary) >= 12

    assert_error(user.get("/api/me"), 401, "Token revoked")
    assert_error(login(base_url, user.username, user.password, ip=random_ip()), 401)
    fresh = login(base_url, user.username, temporary)
    assert fresh.status_code == 200, fresh.text
    # API keys are separate credentials and survive a password reset.
    assert http.get(base_url + "/api/me", headers=bearer(key)).status_code == 200


def test_reset_password_to_a_given_one(base_url: str, make_user: MakeUser, root: UserClient) -> None:
    user = make_user("admin")
    assert_error(root.post(f"/api/users/{user.id}/reset-password", json={"new_password": "short"}), 400,
                 field="new_password")
    resp = root.post(f"/api/users/{user.id}/reset-password", json={"new_password": "chosen-by-root-1"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"success": True, "temporary_password": None}
    assert_error(user.get("/api/me"), 401, "Token revoked")
    assert login(base_url, user.username, "chosen-by-root-1").status_code == 200


# -- deletion ------------------------------------------------------------------------------------
def test_only_the_superadmin_deletes_users(admin: UserClient, member: UserClient, root: UserClient) -> None:
    target = created_id(root)
    assert_error(admin.delete(f"/api/users/{target}"), 403, "Requires the superadmin role")
    assert_error(root.delete(f"/api/users/{root.id}"), 403, "You cannot change your own account here")
    assert root.get("/api/me").status_code == 200


def test_a_deleted_user_is_gone_with_their_credentials(
    base_url: str, make_user: MakeUser, root: UserClient
) -> None:
    user = make_user()
    key = user.post("/api/api-keys", json={"name": "k"}).json()["api_key"]
    assert user.get("/api/me").status_code == 200

    resp = root.delete(f"/api/users/{user.id}")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"success": True}
    assert_error(user.get("/api/me"), 401)
    assert_error(http.get(base_url + "/api/me", headers=bearer(key)), 401)
    assert_error(login(base_url, user.username, user.password, ip=random_ip()), 401, "Invalid username or password")
    assert _find(root, user.username) == []
    assert_error(root.delete(f"/api/users/{user.id}"), 404, "User not found")


def test_a_deleted_users_id_is_never_reused(root: UserClient, moderator: UserClient) -> None:
    gone = created_id(root)  # the newest account
    assert root.delete(f"/api/users/{gone}").status_code == 200
    successor = created_id(root)
    assert successor > gone
    # Otherwise the audit trail of the deleted account would read as the new one's.
    resp = moderator.get("/api/admin/audit-log", params={"target_id": str(successor)})
    assert [e["action"] for e in resp.json()["entries"]] == ["user_created"]
