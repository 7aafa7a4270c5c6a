"""``GET /api/admin/relay-sessions``: every relayed WebSocket session is recorded with its user,
target, duration, bytes both ways and why it ended; admins only."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import UserClient
from tests.peers.base import free_port
from tests.peers.echo import EchoServer
from tests.portal_server import PortalServer
from tests.remote.binary_client import (
    close_of,
    create_connection,
    create_service,
    open_relay,
    recv_exactly,
    refused,
)

Row = dict[str, Any]


def sessions(admin: UserClient, **params: Any) -> dict[str, Any]:
    resp = admin.get("/api/admin/relay-sessions", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"sessions", "totals", "limit"}
    return body


def ended_sessions(admin: UserClient, count: int, timeout: float = 10.0, **params: Any) -> list[Row]:
    """The newest ``count`` sessions matching ``params``, once all of them have ended."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sessions(admin, **params)["sessions"]
        if len(rows) >= count and all(r["ended_at"] for r in rows[:count]):
            return list(rows[:count])
        assert time.monotonic() < deadline, f"{count} ended sessions not recorded within {timeout}s: {rows}"
        time.sleep(0.1)


@pytest.fixture
def user(make_user: Callable[..., UserClient]) -> UserClient:
    return make_user("user")


def test_a_tunnel_session_is_recorded_with_bytes_and_duration(
    portal: PortalServer, root: UserClient, user: UserClient, echo_server: EchoServer
) -> None:
    conn_id = create_connection(user.http, "tcp_tunnel", echo_server.host, echo_server.port)
    sent = [secrets.token_bytes(1000), secrets.token_bytes(50_000)]
    with open_relay(portal.base_url, f"/ws/user-connection/{conn_id}", user.token) as ws:
        for payload in sent:
            ws.send(payload)
            assert recv_exactly(ws, len(payload)) == payload
        live = sessions(root, user_id=user.id)
        assert [r["active"] for r in live["sessions"]] == [True]
        assert live["sessions"][0]["ended_at"] is None
        assert live["totals"]["active"] == 1
        time.sleep(0.6)
    (row,) = ended_sessions(root, 1, user_id=user.id)
    assert row["user_id"] == user.id
    assert row["username"] == user.username
    assert row["kind"] == "tcp_tunnel"
    assert row["target"] == f"127.0.0.1:{echo_server.port}"
    assert row["connection_id"] == conn_id
    assert row["service_id"] is None
    assert row["bytes_in"] == row["bytes_out"] == 51_000
    assert row["close_reason"] == "browser closed (1000)"
    assert row["active"] is False
    started, ended = datetime.fromisoformat(row["started_at"]), datetime.fromisoformat(row["ended_at"])
    assert started.tzinfo is not None
    assert 0.6 <= row["duration_seconds"] < 10
    assert abs((ended - started).total_seconds() - row["duration_seconds"]) < 0.01
    body = sessions(root, user_id=user.id)
    assert body["totals"] == {"sessions": 1, "active": 0, "bytes_in": 51_000, "bytes_out": 51_000}


def test_failed_and_service_sessions_are_recorded_too(
    portal: PortalServer, root: UserClient, user: UserClient, echo_server: EchoServer
) -> None:
    port = free_port()
    conn_id = create_connection(user.http, "tcp_tunnel", "127.0.0.1", port)
    assert refused(portal.base_url, f"/ws/user-connection/{conn_id}", user.token)[0] == 1011
    service_id = create_service(root.http, "tcp_tunnel", echo_server.host, echo_server.port)
    with open_relay(portal.base_url, f"/ws/tunnel/{service_id}", user.token) as ws:
        ws.send(b"abc")
        assert recv_exactly(ws, 3) == b"abc"
    newest, failed = ended_sessions(root, 2, user_id=user.id)
    assert newest["service_id"] == service_id
    assert newest["connection_id"] is None
    assert newest["target"] == f"127.0.0.1:{echo_server.port}"
    assert (newest["bytes_in"], newest["bytes_out"]) == (3, 3)
    assert failed["connection_id"] == conn_id
    assert (failed["bytes_in"], failed["bytes_out"]) == (0, 0)
    assert failed["close_reason"] == f"Cannot connect to 127.0.0.1:{port}: Connection refused"
    totals = sessions(root, user_id=user.id)["totals"]
    assert totals == {"sessions": 2, "active": 0, "bytes_in": 3, "bytes_out": 3}


def test_a_session_ended_by_the_backend(
    portal: PortalServer, root: UserClient, user: UserClient, make_echo_server: Callable[..., EchoServer]
) -> None:
    hose = make_echo_server(firehose_bytes=300_000)
    conn_id = create_connection(user.http, "tcp_tunnel", hose.host, hose.port)
    with open_relay(portal.base_url, f"/ws/user-connection/{conn_id}", user.token) as ws:
        recv_exactly(ws, 300_000)
        assert close_of(ws)[0] == 1000
    (row,) = ended_sessions(root, 1, user_id=user.id)
    assert (row["bytes_in"], row["bytes_out"]) == (0, 300_000)
    assert row["close_reason"] == "backend closed the connection"


def test_filters_and_limits(
    portal: PortalServer, root: UserClient, make_user: Callable[..., UserClient], echo_server: EchoServer
) -> None:
    first, second = make_user("user"), make_user("user")
    for who in (first, first, second):
        conn_id = create_connection(who.http, "tcp_tunnel", echo_server.host, echo_server.port)
        with open_relay(portal.base_url, f"/ws/user-connection/{conn_id}", who.token) as ws:
            ws.send(b"x")
            recv_exactly(ws, 1)
    rows = ended_sessions(root, 2, user_id=first.id)
    assert {r["user_id"] for r in rows} == {first.id}
    assert rows[0]["id"] > rows[1]["id"]  # newest first
    assert len(sessions(root, user_id=first.id)["sessions"]) == 2
    assert [r["id"] for r in sessions(root, user_id=first.id, limit=1)["sessions"]] == [rows[0]["id"]]
    assert sessions(root, user_id=first.id, limit=1)["totals"]["sessions"] == 2  # totals ignore the limit
    assert sessions(root, user_id=first.id, kind="tcp_tunnel")["totals"]["sessions"] == 2
    assert sessions(root, user_id=first.id, kind="vnc") == {
        "sessions": [],
        "totals": {"sessions": 0, "active": 0, "bytes_in": 0, "bytes_out": 0},
        "limit": 50,
    }
    everyone = sessions(root, limit=200)
    assert everyone["limit"] == 200
    assert len(everyone["sessions"]) <= 200
    assert everyone["totals"]["sessions"] >= 3
    for bad in ({"limit": 201}, {"limit": 0}, {"user_id": 0}, {"kind": ""}):
        resp = root.get("/api/admin/relay-sessions", params=bad)
        assert resp.status_code == 400, (bad, resp.text)


def test_admins_only(portal: PortalServer, make_user: Callable[..., UserClient]) -> None:
    for role in ("user", "moderator"):
        resp = make_user(role).get("/api/admin/relay-sessions")
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "Requires the admin role"
    assert httpx.get(portal.base_url + "/api/admin/relay-sessions", timeout=10).status_code == 401
    assert make_user("admin").get("/api/admin/relay-sessions").status_code == 200
