"""Shared fixtures: one real portal per test session, users of every role, HTTP clients."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.portal_server import PortalServer

pytest_plugins = ["tests.peers.fixtures"]


@dataclass
class UserClient:
    """An authenticated API client for one user (Bearer JWT)."""

    id: int
    username: str
    password: str
    role: str
    token: str
    http: httpx.Client

    def get(self, url: str, **kw: object) -> httpx.Response:
        return self.http.get(url, **kw)  # type: ignore[arg-type]

    def post(self, url: str, **kw: object) -> httpx.Response:
        return self.http.post(url, **kw)  # type: ignore[arg-type]

    def put(self, url: str, **kw: object) -> httpx.Response:
        return self.http.put(url, **kw)  # type: ignore[arg-type]

    def delete(self, url: str, **kw: object) -> httpx.Response:
        return self.http.delete(url, **kw)  # type: ignore[arg-type]


def login(base_url: str, username: str, password: str, totp_code: str | None = None) -> httpx.Response:
    body = {"username": username, "password": password}
    if totp_code is not None:
        body["totp_code"] = totp_code
    return httpx.post(base_url + "/api/token", json=body, timeout=10)


def client_for(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture(scope="session")
def portal() -> Iterator[PortalServer]:
    server = PortalServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def base_url(portal: PortalServer) -> str:
    return portal.base_url


@pytest.fixture(scope="session")
def root(portal: PortalServer) -> Iterator[UserClient]:
    """The bootstrap superadmin."""
    resp = login(portal.base_url, portal.admin_user, portal.admin_password)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    http = client_for(portal.base_url, data["token"])
    yield UserClient(data["user"]["id"], portal.admin_user, portal.admin_password, "superadmin", data["token"], http)
    http.close()


@pytest.fixture
def make_user(portal: PortalServer, root: UserClient) -> Iterator[Callable[..., UserClient]]:
    """Create a fresh user with a role (created by the superadmin) and log it in."""
    made: list[UserClient] = []

    def make(role: str = "user", password: str | None = None) -> UserClient:
        username = "u" + secrets.token_hex(5)
        password = password or "pw-" + secrets.token_hex(8)
        resp = root.post("/api/users", json={"username": username, "password": password, "role": role})
        assert resp.status_code == 201, resp.text
        user_id = resp.json()["id"]
        token_resp = login(portal.base_url, username, password)
        assert token_resp.status_code == 200, token_resp.text
        token = token_resp.json()["token"]
        user = UserClient(user_id, username, password, role, token, client_for(portal.base_url, token))
        made.append(user)
        return user

    yield make
    for user in made:
        user.http.close()
