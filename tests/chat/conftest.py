"""Fixtures for the chat tests: WebSocket clients, fresh channels, error checks.

Every test talks to a real portal (the session ``portal`` unless a module needs special
settings) and creates its own channels and users, so tests do not see each other's traffic.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.chat.wsclient import ChatClient, connect
from tests.conftest import UserClient
from tests.portal_server import PortalServer

JoinAll = Callable[..., list[ChatClient]]
"""``join_all(name, *users)``: a socket per user, each joined to channel ``name``."""
Room = Callable[..., tuple[dict[str, Any], list[ChatClient]]]
"""``room(*users, **channel_fields)``: a fresh channel and a joined socket per user."""


def channel_name(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def assert_api_error(resp: httpx.Response, status: int, contains: str | None = None) -> dict[str, Any]:
    """The portal's error shape: ``{"error": str, "status": N}`` with the HTTP status."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    body: dict[str, Any] = resp.json()
    assert body["status"] == status, body
    assert isinstance(body["error"], str) and body["error"], body
    if contains is not None:
        assert contains.lower() in body["error"].lower(), body
    return body


def create_channel(user: UserClient, name: str | None = None, **fields: Any) -> dict[str, Any]:
    name = name or channel_name()
    resp = user.post("/api/chat/channels", json={"name": name, **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    assert body["name"] == name
    return body


def new_user(portal: PortalServer, root: UserClient, role: str = "user") -> UserClient:
    """Like ``make_user``, for fixtures wider than one test."""
    username, password = "s" + secrets.token_hex(5), "pw-" + secrets.token_hex(8)
    resp = root.post("/api/users", json={"username": username, "password": password, "role": role})
    assert resp.status_code == 201, resp.text
    token = httpx.post(portal.base_url + "/api/token", json={"username": username, "password": password}).json()
    http = httpx.Client(base_url=portal.base_url, headers={"Authorization": f"Bearer {token['token']}"}, timeout=10)
    return UserClient(int(resp.json()["id"]), username, password, role, token["token"], http)


@pytest.fixture(scope="session")
def shared_users(portal: PortalServer, root: UserClient) -> Iterator[dict[str, UserClient]]:
    """One admin, one moderator and one user shared by every test, to keep the suite fast.

    Only for calls that change nothing about them (permission checks, listing, watching a
    fresh channel): tests that block, sanction, rename or rate-limit someone make their own.
    """
    users = {role: new_user(portal, root, role) for role in ("admin", "moderator", "user")}
    yield users
    for user in users.values():
        user.http.close()


@pytest.fixture
def admin(shared_users: dict[str, UserClient]) -> UserClient:
    return shared_users["admin"]


@pytest.fixture
def moderator(shared_users: dict[str, UserClient]) -> UserClient:
    return shared_users["moderator"]


@pytest.fixture
def bystander(shared_users: dict[str, UserClient]) -> UserClient:
    return shared_users["user"]


@pytest.fixture
def ws(portal: PortalServer) -> Iterator[Callable[..., ChatClient]]:
    """Open ``/ws/chat`` as a user (closed after the test)."""
    opened: list[ChatClient] = []

    def open_socket(user: UserClient, **kw: Any) -> ChatClient:
        client = connect(portal.base_url, user.token, **kw)
        opened.append(client)
        return client

    yield open_socket
    for client in opened:
        client.close()


@pytest.fixture
def channel(root: UserClient) -> Callable[..., dict[str, Any]]:
    """Create a fresh channel (by the superadmin unless ``creator`` is given)."""

    def make(creator: UserClient | None = None, **fields: Any) -> dict[str, Any]:
        return create_channel(creator or root, **fields)

    return make


@pytest.fixture
def join_all(ws: Callable[..., ChatClient]) -> JoinAll:
    """Open a socket per user (in order), then join each to the channel ``name``."""

    def open_and_join(name: str, *users: UserClient) -> list[ChatClient]:
        clients = [ws(user) for user in users]
        for client in clients:
            client.join(name)
        return clients

    return open_and_join


@pytest.fixture
def room(channel: Callable[..., dict[str, Any]], join_all: JoinAll) -> Room:
    """A fresh channel (``channel_fields`` as for ``channel``) with a joined socket per user, in order."""

    def make(*users: UserClient, **channel_fields: Any) -> tuple[dict[str, Any], list[ChatClient]]:
        created = channel(**channel_fields)
        return created, join_all(created["name"], *users)

    return make


# -- polls that expire while the rest of the suite runs ----------------------------------------------
EXPIRY_TEST = "test_poll_expires_on_its_own"


class ExpiringPolls:
    """Two one-minute polls on a server whose expiry job runs every second.

    Poll durations are whole minutes, so the polls are created when the chat tests start and
    checked by :data:`EXPIRY_TEST` later; the wait overlaps the rest of the suite.
    """

    def __init__(self, server: PortalServer) -> None:
        self.server = server
        token = httpx.post(
            server.base_url + "/api/token", json={"username": server.admin_user, "password": server.admin_password}
        ).json()["token"]
        self.root = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.creator_token = self._user_token()
        watcher_token = self._user_token()
        self.quiet_channel = create_channel_on(self.root, channel_name("quiet"))
        self.watched_channel = create_channel_on(self.root, channel_name("watched"))
        with connect(server.base_url, self.creator_token) as creator:
            self.quiet_poll = self._create_poll(creator, self.quiet_channel)
            self.watched_poll = self._create_poll(creator, self.watched_channel)
            creator.send_json({"type": "vote_poll", "poll_id": self.quiet_poll["id"], "option_index": 1})
            creator.recv_until("poll_updated", poll_id=self.quiet_poll["id"])
        # nobody stays in the quiet channel; a watcher stays in the other one
        self.watcher = connect(server.base_url, watcher_token)
        self.watcher.join(self.watched_channel)

    def _user_token(self) -> str:
        username, password = "p" + secrets.token_hex(5), "pw-" + secrets.token_hex(8)
        made = self.root.post("/api/users", json={"username": username, "password": password, "role": "user"})
        assert made.status_code == 201, made.text
        resp = httpx.post(self.server.base_url + "/api/token", json={"username": username, "password": password})
        return str(resp.json()["token"])

    @staticmethod
    def _create_poll(client: ChatClient, name: str) -> dict[str, Any]:
        client.join(name)
        client.send_json(
            {"type": "create_poll", "channel": name, "question": "Lunch?", "options": ["yes", "no"], "duration": 1}
        )
        poll: dict[str, Any] = client.recv_until("poll_created")["poll"]
        assert poll["closes_at"] is not None and poll["closed"] is False
        return poll

    def close(self) -> None:
        self.watcher.close()
        self.root.close()


def create_channel_on(http: httpx.Client, name: str) -> str:
    resp = http.post("/api/chat/channels", json={"name": name})
    assert resp.status_code == 201, resp.text
    return name


@pytest.fixture(scope="session", autouse=True)
def expiring_polls(request: pytest.FixtureRequest) -> Iterator[ExpiringPolls | None]:
    if not any(item.name == EXPIRY_TEST for item in request.session.items):
        yield None
        return
    server = PortalServer(env={"PORTAL_POLL_CHECK_INTERVAL_SECONDS": "1"}).start()
    polls = None
    try:
        polls = ExpiringPolls(server)
        yield polls
    finally:
        if polls is not None:
            polls.close()
        server.stop()
