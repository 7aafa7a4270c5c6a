"""API keys: creation, listing, the three ways to present one, revoke, delete, expiry, scopes."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.support import assert_error, bearer, create_user, http
from tests.conftest import UserClient

MakeUser = Callable[..., UserClient]


@pytest.fixture(scope="module")
def owner(base_url: str, root: UserClient) -> Iterator[UserClient]:
    """One key owner for the module; each test works on keys it creates itself."""
    user = create_user(base_url, root)
    yield user
    user.http.close()


def create_key(user: UserClient, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "key-" + secrets.token_hex(3))
    resp = user.post("/api/api-keys", json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def listed(user: UserClient) -> list[dict[str, Any]]:
    resp = user.get("/api/api-keys")
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"api_keys"}
    keys: list[dict[str, Any]] = resp.json()["api_keys"]
    return keys


def me_with(base_url: str, **kw: Any) -> Any:
    return http.get(base_url + "/api/me", **kw)


def test_create_returns_the_full_key_once(owner: UserClient) -> None:
    created = create_key(owner, name="My Integration")
    assert set(created) == {"id", "name", "api_key", "key_prefix", "scopes", "created_at", "expires_at"}
    assert created["name"] == "My Integration"
    assert created["api_key"].startswith("portal_") and len(created["api_key"]) >= 40
    assert created["key_prefix"].startswith("portal_")
    assert created["api_key"].startswith(created["key_prefix"])
    assert len(created["key_prefix"]) < len(created["api_key"]) - 20
    assert created["scopes"] == "*"
    assert created["expires_at"] is None
    assert isinstance(created["id"], int)
    # Two keys never share a secret.
    assert create_key(owner)["api_key"] != created["api_key"]


def test_the_list_shows_the_prefix_never_the_key(owner: UserClient) -> None:
    created = create_key(owner)
    keys = listed(owner)
    (row,) = [k for k in keys if k["id"] == created["id"]]
    assert set(row) == {
        "id", "name", "key_prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked", "revoked_at"
    }
    assert row["key_prefix"] == created["key_prefix"]
    assert row["revoked"] is False and row["revoked_at"] is None
    assert row["last_used_at"] is None
    text = owner.get("/api/api-keys").text
    assert created["api_key"] not in text
    assert created["api_key"][len(created["key_prefix"]) :] not in text
    assert "hash" not in text


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "query"])
def test_a_key_authenticates_three_ways(base_url: str, owner: UserClient, how: str) -> None:
    key = create_key(owner)["api_key"]
    if how == "bearer":
        resp = me_with(base_url, headers=bearer(key))
    elif how == "x-api-key":
        resp = me_with(base_url, headers={"X-API-Key": key})
    else:
        resp = me_with(base_url, params={"token": key})
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == owner.id
    assert resp.json()["username"] == owner.username
    assert resp.json()["scopes"] == "*"


def test_last_used_at_is_set_by_use(base_url: str, owner: UserClient) -> None:
    created = create_key(owner)
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert me_with(base_url, headers={"X-API-Key": created["api_key"]}).status_code == 200
    (row,) = [k for k in listed(owner) if k["id"] == created["id"]]
    assert row["last_used_at"] is not None
    assert before <= datetime.fromisoformat(row["last_used_at"]) <= datetime.now(UTC) + timedelta(seconds=5)


def test_a_revoked_key_stops_at_once_and_stays_listed(base_url: str, owner: UserClient) -> None:
    created = create_key(owner)
    key = created["api_key"]
    assert me_with(base_url, headers=bearer(key)).status_code == 200  # resolved and cached first

    resp = owner.post(f"/api/api-keys/{created['id']}/revoke")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"] == created["id"] and body["revoked"] is True and body["revoked_at"] is not None
    assert "api_key" not in body

    for kw in ({"headers": bearer(key)}, {"headers": {"X-API-Key": key}}, {"params": {"token": key}}):
        assert_error(me_with(base_url, **kw), 401, "API key revoked")
    (row,) = [k for k in listed(owner) if k["id"] == created["id"]]
    assert row["revoked"] is True and row["revoked_at"] == body["revoked_at"]

    # Revoking twice changes nothing.
    again = owner.post(f"/api/api-keys/{created['id']}/revoke")
    assert again.status_code == 200 and again.json()["revoked_at"] == body["revoked_at"]


def test_a_deleted_key_is_gone(base_url: str, owner: UserClient) -> None:
    created = create_key(owner)
    assert me_with(base_url, headers=bearer(created["api_key"])).status_code == 200

    resp = owner.delete(f"/api/api-keys/{created['id']}")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"success": True}
    assert created["id"] not in [k["id"] for k in listed(owner)]
    assert_error(me_with(base_url, headers=bearer(created["api_key"])), 401, "Invalid API key")
    assert_error(owner.delete(f"/api/api-keys/{created['id']}"), 404, "API key not found")
    assert_error(owner.post(f"/api/api-keys/{created['id']}/revoke"), 404, "API key not found")


def test_another_users_key_is_not_found(base_url: str, owner: UserClient, member: UserClient) -> None:
    created = create_key(owner)
    assert_error(member.post(f"/api/api-keys/{created['id']}/revoke"), 404, "API key not found")
    assert_error(member.delete(f"/api/api-keys/{created['id']}"), 404, "API key not found")
    assert created["id"] not in [k["id"] for k in listed(member)]
    # Untouched: it still works for its owner.
    assert me_with(base_url, headers=bearer(created["api_key"])).json()["id"] == owner.id


def test_key_ids_in_paths_are_validated(owner: UserClient) -> None:
    assert_error(owner.post("/api/api-keys/abc/revoke"), 400, field="key_id")
    assert_error(owner.delete("/api/api-keys/1.5"), 400, field="key_id")
    assert_error(owner.delete("/api/api-keys/999999999"), 404, "API key not found")


@pytest.mark.parametrize("key_id", [0, -1, 2**31, 2**63, 10**30])
def test_ids_no_row_can_have_are_400s_not_server_errors(owner: UserClient, key_id: int) -> None:
    assert_error(owner.delete(f"/api/api-keys/{key_id}"), 400, field="key_id")
    assert_error(owner.post(f"/api/api-keys/{key_id}/revoke"), 400, field="key_id")


def test_expiry_in_days(owner: UserClient) -> None:
    created = create_key(owner, expires_in_days=30)
    expires = datetime.fromisoformat(created["expires_at"])
    expected = datetime.now(UTC) + timedelta(days=30)
    assert abs((expires - expected).total_seconds()) < 60
    created = create_key(owner, expires_in_days=None)
    assert created["expires_at"] is None


@pytest.mark.parametrize("days", [0, -1, "5", 1.5, True, 3651])
def test_invalid_expiry_is_a_400(owner: UserClient, days: object) -> None:
    resp = owner.post("/api/api-keys", json={"name": "bad", "expires_in_days": days})
    assert_error(resp, 400, field="expires_in_days")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "scopes": ["profile:read"]}, "scopes"),
        ({"name": "ok", "scopes": ""}, "scopes"),
        ({"name": "ok", "scopes": ","}, "scopes"),
        ({"name": "ok", "scopes": "profile read"}, "scopes"),
        ({"name": "ok", "scopes": "profile:delete"}, "scopes"),
        ({"name": "ok", "scopes": "profile:read,Keys!"}, "scopes"),
        ({"name": "ok", "scopes": "s" * 501}, "scopes"),
        ({"name": "ok", "user_id": 1}, "user_id"),
    ],
)
def test_invalid_key_requests_are_400s_naming_the_field(owner: UserClient, body: dict[str, Any], field: str) -> None:
    assert_error(owner.post("/api/api-keys", json=body), 400, field=field)


def test_scopes_are_normalised(owner: UserClient) -> None:
    created = create_key(owner, scopes=" Profile:Read , keys,profile:read ")
    assert set(created["scopes"].split(",")) == {"profile:read", "keys"}
    assert create_key(owner, scopes="keys:read,*")["scopes"] == "*"


def test_a_profile_read_key_reads_the_profile_and_nothing_else(base_url: str, owner: UserClient) -> None:
    key = create_key(owner, scopes="profile:read")["api_key"]
    me = me_with(base_url, headers=bearer(key))
    assert me.status_code == 200, me.text
    assert me.json()["scopes"] == "profile:read"

    resp = http.get(base_url + "/api/api-keys", headers=bearer(key))
    assert_error(resp, 403, "API key lacks the 'keys:read' scope")
    resp = http.put(base_url + "/api/me/nickname", headers=bearer(key), json={"nickname": "Scoped"})
    assert_error(resp, 403, "API key lacks the 'profile:write' scope")
    resp = http.get(base_url + "/api/tokens", headers=bearer(key))
    assert_error(resp, 403, contains="tokens:read")
    resp = http.get(base_url + "/api/activity", headers=bearer(key))
    assert_error(resp, 403, contains="activity:read")
    # The refused write did not happen.
    assert owner.get("/api/me").json()["nickname"] is None


def test_an_area_scope_covers_read_and_write(base_url: str, owner: UserClient) -> None:
    key = create_key(owner, scopes="keys")["api_key"]
    resp = http.get(base_url + "/api/api-keys", headers=bearer(key))
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["api_keys"]) >= 1
    assert_error(me_with(base_url, headers=bearer(key)), 403, "API key lacks the 'profile:read' scope")

    # It may mint keys within what it holds, never beyond.
    narrower = http.post(base_url + "/api/api-keys", headers=bearer(key), json={"name": "child", "scopes": "keys:read"})
    assert narrower.status_code == 201, narrower.text
    assert narrower.json()["scopes"] == "keys:read"
    for broader in ("*", "profile:read", "keys,profile", "users:read"):
        resp = http.post(base_url + "/api/api-keys", headers=bearer(key), json={"name": "x", "scopes": broader})
        assert_error(resp, 403, "An API key cannot grant scopes it does not hold")
    # The default scope is "*", which is broader too.
    resp = http.post(base_url + "/api/api-keys", headers=bearer(key), json={"name": "x"})
    assert_error(resp, 403, "An API key cannot grant scopes it does not hold")


def test_a_read_only_key_cannot_create_or_revoke(base_url: str, owner: UserClient) -> None:
    read_only = create_key(owner, scopes="keys:read")
    victim = create_key(owner)
    headers = bearer(read_only["api_key"])
    assert_error(http.post(base_url + "/api/api-keys", headers=headers, json={"name": "x", "scopes": "keys:read"}), 403)
    assert_error(http.post(base_url + f"/api/api-keys/{victim['id']}/revoke", headers=headers), 403)
    assert_error(http.delete(base_url + f"/api/api-keys/{victim['id']}", headers=headers), 403)
    assert me_with(base_url, headers=bearer(victim["api_key"])).status_code == 200


def test_a_full_key_keeps_the_role_limits_of_its_user(base_url: str, owner: UserClient) -> None:
    key = create_key(owner)["api_key"]
    assert_error(http.get(base_url + "/api/users", headers=bearer(key)), 403, "Requires the admin role")


def test_an_admins_scoped_key_cannot_use_admin_routes_outside_its_scopes(base_url: str, admin: UserClient) -> None:
    narrow = create_key(admin, scopes="profile:read")
    resp = http.get(base_url + "/api/users", headers=bearer(narrow["api_key"]))
    assert_error(resp, 403, "API key lacks the 'users:read' scope")
    users = create_key(admin, scopes="users:read")
    users_key = users["api_key"]
    resp = http.get(base_url + "/api/users", headers=bearer(users_key))
    assert resp.status_code == 200, resp.text
    assert any(u["id"] == admin.id for u in resp.json()["users"])
    resp = http.post(
        base_url + "/api/users",
        headers=bearer(users_key),
        json={"username": "x" + secrets.token_hex(4), "password": "long-enough-1"},
    )
    assert_error(resp, 403, "API key lacks the 'users:write' scope")
    for created in (narrow, users):  # leave the shared admin as it was
        assert admin.delete(f"/api/api-keys/{created['id']}").status_code == 200


def test_a_key_cannot_be_used_as_a_session_cookie(base_url: str, owner: UserClient) -> None:
    key = create_key(owner)["api_key"]
    resp = http.get(base_url + "/api/me", headers={"Cookie": f"portal_session={key}"})
    assert_error(resp, 401, "Invalid session")
