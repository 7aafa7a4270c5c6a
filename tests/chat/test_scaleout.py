"""Chat across two portal processes sharing PostgreSQL and Redis (always, whatever the backend
of the rest of the run): users on different processes are in one chat."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.chat.conftest import channel_name
from tests.chat.wsclient import ChatClient, connect
from tests.portal_server import PortalServer, SharedBackend
from tests.timing import fresh_window


@dataclass
class Account:
    id: int
    username: str
    token: str


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PortalServer, PortalServer]]:
    shared = SharedBackend("postgres")
    a = PortalServer(shared).start()
    try:
        b = PortalServer(shared).start()
    except Exception:
        a.stop()
        shared.close()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
        shared.close()


def _token(server: PortalServer, username: str, password: str) -> str:
    resp = httpx.post(server.base_url + "/api/token", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


@pytest.fixture(scope="module")
def root_token(pair: tuple[PortalServer, PortalServer]) -> str:
    a, _ = pair
    return _token(a, a.admin_user, a.admin_password)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _account(server: PortalServer, root_token: str) -> Account:
    username, password = "x" + secrets.token_hex(5), "pw-" + secrets.token_hex(8)
    made = httpx.post(
        server.base_url + "/api/users",
        json={"username": username, "password": password, "role": "user"},
        headers=_bearer(root_token),
    )
    assert made.status_code == 201, made.text
    return Account(int(made.json()["id"]), username, _token(server, username, password))


def _channel(server: PortalServer, root_token: str) -> str:
    name = channel_name("scale")
    resp = httpx.post(server.base_url + "/api/chat/channels", json={"name": name}, headers=_bearer(root_token))
    assert resp.status_code == 201, resp.text
    return name


def _online(server: PortalServer, token: str) -> int:
    resp = httpx.get(server.base_url + "/api/stats/public", headers=_bearer(token))
    assert resp.status_code == 200, resp.text
    return int(resp.json()["online_users"])


def test_users_on_two_processes_share_one_chat(pair: tuple[PortalServer, PortalServer], root_token: str) -> None:
    a, b = pair
    name = _channel(a, root_token)
    alice, bob = _account(a, root_token), _account(b, root_token)
    on_a = connect(a.base_url, alice.token)
    on_b = connect(b.base_url, bob.token)
    try:
        on_a.join(name)
        frames = on_b.join(name)
        # presence: bob's join lists alice (connected to the other process) and alice hears bob arrive
        assert sorted(u["user_id"] for u in frames["users"]["users"]) == sorted([alice.id, bob.id])
        joined = on_a.recv_until("user_joined", username=bob.username)
        assert (joined["user_id"], joined["channel"]) == (bob.id, name)
        # messages both ways
        sent = on_a.say(name, "hello from A")
        from_a = on_b.recv_until("message", message="hello from A")
        assert (from_a["id"], from_a["user_id"], from_a["username"]) == (sent["id"], alice.id, alice.username)
        on_b.say(name, "hello from B")
        assert on_a.recv_until("message", message="hello from B")["user_id"] == bob.id
        # typing
        on_b.send_json({"type": "typing", "channel": name})
        typing = on_a.recv_until("typing")
        assert (typing["user_id"], typing["username"], typing["channel"]) == (bob.id, bob.username, name)
        # reactions
        on_b.send_json({"type": "react", "message_id": sent["id"], "emoji": "🎉"})
        reaction = on_a.recv_until("reaction_update")
        assert (reaction["message_id"], reaction["user_id"], reaction["emoji"], reaction["action"]) == (
            sent["id"],
            bob.id,
            "🎉",
            "add",
        )
        # both processes count both users online
        for server in (a, b):
            assert _online(server, alice.token) == 2
        # leaving on B is seen on A
        on_b.close()
        left = on_a.recv_until("user_left", username=bob.username)
        assert (left["user_id"], left["channel"]) == (bob.id, name)
        deadline = time.monotonic() + 5
        while _online(a, alice.token) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _online(a, alice.token) == 1
    finally:
        on_a.close()
        on_b.close()


def test_block_on_one_process_filters_the_socket_on_the_other(
    pair: tuple[PortalServer, PortalServer], root_token: str
) -> None:
    a, b = pair
    name = _channel(a, root_token)
    me, pest = _account(a, root_token), _account(a, root_token)
    with connect(a.base_url, me.token) as mine, connect(b.base_url, pest.token) as theirs:
        mine.join(name)
        theirs.join(name)
        blocked = httpx.post(f"{b.base_url}/api/blocks/{pest.id}", headers=_bearer(me.token))  # REST on B
        assert blocked.json() == {"success": True}
        mine.ping()
        theirs.say(name, "blocked across processes")
        mine.assert_no_frame("message", message="blocked across processes")
        httpx.delete(f"{a.base_url}/api/blocks/{pest.id}", headers=_bearer(me.token)).raise_for_status()
        mine.ping()
        theirs.say(name, "unblocked")
        assert mine.recv_until("message", message="unblocked")["user_id"] == pest.id


def test_limits_hold_across_processes(pair: tuple[PortalServer, PortalServer], root_token: str) -> None:
    a, b = pair
    name = _channel(a, root_token)
    user = _account(a, root_token)
    sockets: list[ChatClient] = []
    try:
        for i in range(10):
            sockets.append(connect((a if i % 2 else b).base_url, user.token))
        with connect(a.base_url, user.token, wait_connected=False) as eleventh:
            assert eleventh.recv_json()["type"] == "error"
            assert eleventh.close_code() == 4429
        # the message rate limit is one budget for both processes
        on_a, on_b = sockets[1], sockets[0]
        on_a.join(name)
        on_b.join(name)
        fresh_window(5, 3)
        for i in range(5):
            (on_a if i % 2 else on_b).send_json({"type": "message", "channel": name, "message": f"m{i}"})
        on_a.recv_until("message", message="m4")
        on_b.send_json({"type": "message", "channel": name, "message": "sixth"})
        assert on_b.recv_error()["message"] == "Slow down! You're sending messages too fast."
    finally:
        for client in sockets:
            client.close()


def test_channel_rename_on_one_process_reaches_sockets_on_the_other(
    pair: tuple[PortalServer, PortalServer], root_token: str
) -> None:
    a, b = pair
    name = _channel(a, root_token)
    user = _account(a, root_token)
    channels = httpx.get(a.base_url + "/api/chat/channels", headers=_bearer(root_token)).json()["channels"]
    cid = next(c["id"] for c in channels if c["name"] == name)
    with connect(a.base_url, user.token) as client:
        client.join(name)
        new_name = channel_name("renamed")
        resp = httpx.put(f"{b.base_url}/api/chat/channels/{cid}", json={"name": new_name}, headers=_bearer(root_token))
        assert resp.status_code == 200, resp.text
        renamed = client.recv_until("channel_renamed")
        assert (renamed["old_name"], renamed["new_name"]) == (name, new_name)
        assert client.say(new_name, "renamed elsewhere")["channel"] == new_name
