"""Scale-out mode: two portal processes sharing PostgreSQL and Redis behave as one portal.

These tests always use PostgreSQL + Redis (that is what the mode is), whatever the backend of the
rest of the run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.portal_server import PortalServer, SharedBackend
from tests.timing import fresh_window


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PortalServer, PortalServer]]:
    shared = SharedBackend("postgres")
    env = {"PORTAL_RATE_LIMIT_API": "1000/minute"}
    a = PortalServer(shared, env=env).start()
    b = PortalServer(shared, env=env).start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
        shared.close()


def _login(server: PortalServer, username: str, password: str) -> str:
    resp = httpx.post(server.base_url + "/api/token", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_user(server: PortalServer, root_token: str, role: str = "user") -> tuple[int, str, str]:
    username, password = "s" + secrets.token_hex(5), "pw-" + secrets.token_hex(8)
    resp = httpx.post(
        server.base_url + "/api/users",
        json={"username": username, "password": password, "role": role},
        headers=_bearer(root_token),
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"]), username, password


def test_only_one_superadmin_is_bootstrapped(pair: tuple[PortalServer, PortalServer]) -> None:
    a, b = pair
    token = _login(a, a.admin_user, a.admin_password)
    users = httpx.get(b.base_url + "/api/users", headers=_bearer(token)).json()
    assert [u["username"] for u in users["users"] if u["role"] == "superadmin"] == [a.admin_user]


def test_token_revoked_on_one_process_is_refused_by_the_other_at_once(pair: tuple[PortalServer, PortalServer]) -> None:
    a, b = pair
    root = _login(a, a.admin_user, a.admin_password)
    _, username, password = _new_user(a, root)
    token = _login(a, username, password)
    # B learns the token (and caches it) ...
    assert httpx.get(b.base_url + "/api/me", headers=_bearer(token)).json()["username"] == username
    token_id = httpx.get(a.base_url + "/api/tokens", headers=_bearer(token)).json()["tokens"][0]["token_id"]
    # ... A revokes it, and B refuses it on the very next request.
    revoke = httpx.post(a.base_url + "/api/token/revoke", json={"token_id": token_id}, headers=_bearer(token))
    assert revoke.json() == {"success": True}
    refused = httpx.get(b.base_url + "/api/me", headers=_bearer(token))
    assert refused.status_code == 401
    assert refused.json() == {"error": "Token revoked", "status": 401}


def test_role_change_on_one_process_applies_on_the_other(pair: tuple[PortalServer, PortalServer]) -> None:
    a, b = pair
    root = _login(a, a.admin_user, a.admin_password)
    user_id, username, password = _new_user(a, root)
    token = _login(b, username, password)
    assert httpx.get(b.base_url + "/api/users", headers=_bearer(token)).status_code == 403
    promoted = httpx.put(f"{a.base_url}/api/users/{user_id}/role", json={"role": "admin"}, headers=_bearer(root))
    assert promoted.json()["role"] == "admin"
    listed = httpx.get(b.base_url + "/api/users", headers=_bearer(token))
    assert listed.status_code == 200
    assert username in [u["username"] for u in listed.json()["users"]]
    assert httpx.get(b.base_url + "/api/me", headers=_bearer(token)).json()["is_admin"] is True


def test_api_key_revoked_on_one_process_is_refused_by_the_other(pair: tuple[PortalServer, PortalServer]) -> None:
    a, b = pair
    root = _login(a, a.admin_user, a.admin_password)
    created = httpx.post(a.base_url + "/api/api-keys", json={"name": "ci"}, headers=_bearer(root)).json()
    key = created["api_key"]
    assert httpx.get(b.base_url + "/api/me", headers={"X-API-Key": key}).json()["username"] == a.admin_user
    httpx.post(f"{b.base_url}/api/api-keys/{created['id']}/revoke", headers=_bearer(root)).raise_for_status()
    refused = httpx.get(a.base_url + "/api/me", headers={"X-API-Key": key})
    assert refused.status_code == 401
    assert refused.json()["error"] == "API key revoked"


def test_rate_limit_budget_is_shared_between_processes() -> None:
    shared = SharedBackend("postgres")
    env = {"PORTAL_RATE_LIMIT_API": "8/minute"}
    a = PortalServer(shared, env=env).start()
    b = PortalServer(shared, env=env).start()
    try:
        token = _login(a, a.admin_user, a.admin_password)
        fresh_window(60, 15)
        statuses = []
        for i in range(9):
            server = a if i % 2 == 0 else b
            statuses.append(httpx.get(server.base_url + "/api/me", headers=_bearer(token)).status_code)
        assert statuses == [200] * 8 + [429]
        assert httpx.get(b.base_url + "/api/me", headers=_bearer(token)).json()["status"] == 429
    finally:
        a.stop()
        b.stop()
        shared.close()


def test_registration_limit_per_ip_holds_across_processes(pair: tuple[PortalServer, PortalServer]) -> None:
    a, b = pair
    root = _login(a, a.admin_user, a.admin_password)
    code = httpx.get(a.base_url + "/api/invite-code", headers=_bearer(root)).json()["invite_code"]
    ip = {"X-Forwarded-For": f"10.99.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"}
    first = httpx.post(
        a.base_url + "/api/register",
        json={"username": "r" + secrets.token_hex(4), "password": "long-password", "invite_code": code},
        headers=ip,
    )
    assert first.status_code == 201, first.text
    second = httpx.post(
        b.base_url + "/api/register",
        json={"username": "r" + secrets.token_hex(4), "password": "long-password", "invite_code": code},
        headers=ip,
    )
    assert second.status_code == 429
    assert second.json()["error"] == "Only one account per IP address per 24 hours"
