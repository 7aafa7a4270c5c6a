"""The TCP relay (tcp_tunnel, vnc, rdp, spice, data stores): binary frames to a real TCP peer.

Through ``/ws/user-connection/{id}`` and ``/ws/tunnel/{service_id}`` of a running portal, to the
echo and firehose peers of ``tests/peers/echo.py``: exact bytes both ways, the ``binary``
subprotocol, flow control in both directions (the portal neither buffers a fast backend for a
browser that does not read, nor loses anything when the browser resumes), closes propagated both
ways, and the refusals: wrong owner, Origin, credentials, unreachable or forbidden targets. The
last tests run a portal under uvicorn's stock WebSocket protocol, where the relay sends through
ASGI instead of the ``portal.ws.direct`` extension.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import psutil
import pytest
from websockets.sync.client import ClientConnection

from tests.conftest import UserClient, client_for, login
from tests.peers.base import free_port
from tests.peers.echo import EchoServer, firehose_pattern
from tests.portal_server import PortalServer
from tests.remote.binary_client import (
    close_of,
    create_connection,
    create_service,
    open_relay,
    recv_exactly,
    refused,
)

MiB = 1024 * 1024


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.05)


def wait_for_stall(count: Callable[[], int], what: str, quiet: float = 1.5, timeout: float = 30) -> int:
    """Poll a byte counter until it has not moved for ``quiet`` seconds; its value then."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"{what} never stalled ({count()} bytes)"
        if count() != last:
            last, since = count(), time.monotonic()
        time.sleep(0.1)
    return last


@pytest.fixture
def user(make_user: Callable[..., UserClient]) -> UserClient:
    return make_user("user")


def tunnel_to(user: UserClient, peer: EchoServer) -> str:
    return f"/ws/user-connection/{create_connection(user.http, 'tcp_tunnel', peer.host, peer.port)}"


# -- data --------------------------------------------------------------------------------------------
def test_bytes_round_trip_exactly(portal: PortalServer, user: UserClient, echo_server: EchoServer) -> None:
    path = tunnel_to(user, echo_server)
    with open_relay(portal.base_url, path, user.token) as ws:
        assert ws.subprotocol == "binary"
        for size in (1, 2, 125, 126, 127, 65535, 65536, 65537, 300_000, MiB):
            payload = secrets.token_bytes(size)
            ws.send(payload)
            assert recv_exactly(ws, size) == payload, f"{size} bytes came back different"
        # many small messages in flight at once come back as one ordered stream
        burst = [secrets.token_bytes(1 + i % 700) for i in range(300)]
        for message in burst:
            ws.send(message)
        assert recv_exactly(ws, sum(map(len, burst))) == b"".join(burst)


def test_binary_subprotocol_only_when_asked(portal: PortalServer, user: UserClient, echo_server: EchoServer) -> None:
    path = tunnel_to(user, echo_server)
    with open_relay(portal.base_url, path, user.token, subprotocols=()) as ws:
        assert ws.subprotocol is None
        ws.send(b"plain")
        assert recv_exactly(ws, 5) == b"plain"
    with open_relay(portal.base_url, path, user.token, subprotocols=("base64", "binary")) as ws:
        assert ws.subprotocol == "binary"


def test_text_frames_are_refused(portal: PortalServer, user: UserClient, echo_server: EchoServer) -> None:
    with open_relay(portal.base_url, tunnel_to(user, echo_server), user.token) as ws:
        ws.send("hello")
        code, reason = close_of(ws)
    assert code == 1003
    assert "binary" in reason.lower()


# -- closes ------------------------------------------------------------------------------------------
def test_backend_close_closes_the_websocket_with_1000(
    portal: PortalServer, user: UserClient, make_echo_server: Callable[..., EchoServer]
) -> None:
    hose = make_echo_server(firehose_bytes=100_000)
    with open_relay(portal.base_url, tunnel_to(user, hose), user.token) as ws:
        assert recv_exactly(ws, 100_000) == firehose_pattern(100_000)
        code, reason = close_of(ws)
    assert code == 1000
    assert reason == "backend closed the connection"


def test_browser_close_gives_the_backend_eof(
    portal: PortalServer, user: UserClient, make_echo_server: Callable[..., EchoServer]
) -> None:
    echo = make_echo_server()
    with open_relay(portal.base_url, tunnel_to(user, echo), user.token) as ws:
        ws.send(b"ping")
        assert recv_exactly(ws, 4) == b"ping"
        assert echo.active == 1
    wait_until(lambda: echo.active == 0, 10, "the echo server seeing EOF")
    assert echo.connections == 1
    assert echo.bytes_in == 4


# -- flow control ------------------------------------------------------------------------------------
@pytest.fixture
def slow_socket(portal: PortalServer) -> Iterator[socket.socket]:
    """A client socket with a small receive buffer, so the kernel does not hide the back-pressure."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", portal.port))
    yield sock
    sock.close()


def test_a_fast_backend_cannot_make_the_portal_buffer(
    portal: PortalServer,
    user: UserClient,
    make_echo_server: Callable[..., EchoServer],
    slow_socket: socket.socket,
) -> None:
    total = 1024 * MiB
    hose = make_echo_server(firehose_bytes=total)
    path = tunnel_to(user, hose)
    assert portal.proc is not None
    server = psutil.Process(portal.proc.pid)
    rss_before = server.memory_info().rss
    with open_relay(portal.base_url, path, user.token, sock=slow_socket, max_queue=1) as ws:
        # the browser reads nothing: the firehose must stall once the (bounded) buffers are full
        stalled_at = wait_for_stall(lambda: hose.bytes_out, "the firehose")
        grown = server.memory_info().rss - rss_before
        assert stalled_at < 64 * MiB, f"{stalled_at} of {total} bytes left the backend while nobody read"
        assert grown < 16 * MiB, f"the portal grew by {grown} bytes"
        # the browser starts reading: the stream resumes, in order and intact
        got = bytearray()
        while len(got) < stalled_at + 8 * MiB:
            message = ws.recv(timeout=10)
            assert isinstance(message, bytes)
            got += message
        assert got == firehose_pattern(len(got))
        assert hose.bytes_out > stalled_at
    wait_until(lambda: hose.active == 0, 10, "the firehose seeing the connection closed")


def test_a_slow_backend_stops_the_browser(portal: PortalServer, user: UserClient) -> None:
    """A backend that reads nothing: the relay stops reading the browser (whose sends then block)
    instead of buffering what it sends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    listener.settimeout(10)
    conn_id = create_connection(user.http, "tcp_tunnel", "127.0.0.1", listener.getsockname()[1])
    assert portal.proc is not None
    server = psutil.Process(portal.proc.pid)
    rss_before = server.memory_info().rss
    chunk = secrets.token_bytes(256 * 1024)
    sent = [0]

    def send_forever(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):  # ends when the connection is closed under it
            while sent[0] < 1024 * MiB:
                ws.send(chunk)
                sent[0] += len(chunk)

    try:
        with open_relay(portal.base_url, f"/ws/user-connection/{conn_id}", user.token) as ws:
            backend, _ = listener.accept()
            sender = threading.Thread(target=send_forever, args=(ws,), daemon=True)
            sender.start()
            last = wait_for_stall(lambda: sent[0], "the browser's sends")
            assert last < 64 * MiB, f"the relay accepted {last} bytes for a backend that reads nothing"
            grown = server.memory_info().rss - rss_before
            assert grown < 16 * MiB, f"the portal grew by {grown} bytes"
            # the backend starts reading: everything sent so far arrives, in order
            backend.settimeout(10)
            got = 0
            while got < last:
                data = backend.recv(1024 * 1024)
                assert data, "the relay closed the backend early"
                got += len(data)
            backend.close()
            assert close_of(ws)[0] == 1000
        sender.join(10)
        assert not sender.is_alive()
    finally:
        listener.close()


# -- services ----------------------------------------------------------------------------------------
def test_tunnel_to_an_admin_service(
    portal: PortalServer, root: UserClient, user: UserClient, echo_server: EchoServer
) -> None:
    service_id = create_service(root.http, "tcp_tunnel", echo_server.host, echo_server.port)
    for who in (user, root):
        with open_relay(portal.base_url, f"/ws/tunnel/{service_id}", who.token) as ws:
            assert ws.subprotocol == "binary"
            payload = secrets.token_bytes(70_000)
            ws.send(payload)
            assert recv_exactly(ws, len(payload)) == payload
    # a data store is relayed as TCP too, through the generic tunnel route
    redis_id = create_service(root.http, "redis", echo_server.host, echo_server.port)
    with open_relay(portal.base_url, f"/ws/tunnel/{redis_id}", user.token) as ws:
        ws.send(b"PING\r\n")
        assert recv_exactly(ws, 6) == b"PING\r\n"


def test_tunnel_route_refuses_services_that_are_not_tcp(
    portal: PortalServer, root: UserClient, user: UserClient
) -> None:
    ssh_id = create_service(root.http, "ssh", "127.0.0.1", 22, {"username": "nobody"})
    code, reason = refused(portal.base_url, f"/ws/tunnel/{ssh_id}", user.token)
    assert code == 4400
    assert "not a tunnel service" in reason


# -- refusals ----------------------------------------------------------------------------------------
def test_another_users_connection_is_not_found(
    portal: PortalServer, make_user: Callable[..., UserClient], make_echo_server: Callable[..., EchoServer]
) -> None:
    owner, other = make_user("user"), make_user("admin")
    echo = make_echo_server()
    path = tunnel_to(owner, echo)
    assert refused(portal.base_url, path, other.token) == (4404, "Connection not found")
    assert refused(portal.base_url, "/ws/user-connection/nope-nope-nope", owner.token) == (4404, "Connection not found")
    for huge in (2**31, 10**20):  # ids no service can have: refused, not a server error
        assert refused(portal.base_url, f"/ws/tunnel/{huge}", owner.token) == (4404, "Service not found")
        assert refused(portal.base_url, f"/ws/vnc/{huge}", owner.token) == (4404, "Service not found")
    assert echo.connections == 0  # nothing reached the backend
    with open_relay(portal.base_url, path, owner.token) as ws:  # the owner still gets through
        ws.send(b"ok")
        assert recv_exactly(ws, 2) == b"ok"


def test_wrong_origin_and_missing_credentials(portal: PortalServer, user: UserClient, echo_server: EchoServer) -> None:
    path = tunnel_to(user, echo_server)
    code, reason = refused(portal.base_url, path, user.token, origin="http://evil.example")
    assert code == 4403
    assert "origin" in reason
    code, _ = refused(portal.base_url, path, None)
    assert code == 4401
    code, _ = refused(portal.base_url, path, "not-a-token")
    assert code == 4401


def test_unreachable_backend_closes_with_1011_and_a_reason(portal: PortalServer, user: UserClient) -> None:
    port = free_port()  # nothing listens there
    conn_id = create_connection(user.http, "tcp_tunnel", "127.0.0.1", port)
    code, reason = refused(portal.base_url, f"/ws/user-connection/{conn_id}", user.token)
    assert code == 1011
    assert reason == f"Cannot connect to 127.0.0.1:{port}: Connection refused"


def test_metadata_and_link_local_targets_are_refused_always(
    portal: PortalServer, root: UserClient, user: UserClient
) -> None:
    for host in ("169.254.169.254", "169.254.10.20"):
        conn_id = create_connection(user.http, "tcp_tunnel", host, 80)
        code, reason = refused(portal.base_url, f"/ws/user-connection/{conn_id}", user.token)
        assert code == 1011
        assert "Destination not allowed" in reason, reason
        service_id = create_service(root.http, "tcp_tunnel", host, 80)  # admins are trusted, but not for these
        code, reason = refused(portal.base_url, f"/ws/tunnel/{service_id}", root.token)
        assert code == 1011
        assert "Destination not allowed" in reason, reason
    code, reason = refused(portal.base_url, f"/ws/user-connection/{conn_id}", user.token)
    assert "metadata" in reason or "link-local" in reason


@pytest.fixture(scope="module")
def strict_portal() -> Iterator[PortalServer]:
    """A portal with the production default: users' connections may not reach the portal host."""
    server = PortalServer(env={"PORTAL_REMOTE_ALLOW_LOOPBACK": "false"}).start()
    try:
        yield server
    finally:
        server.stop()


def test_loopback_targets_are_refused_for_users_unless_allowed(
    strict_portal: PortalServer, echo_server: EchoServer
) -> None:
    base = strict_portal.base_url
    root_token = login(base, strict_portal.admin_user, strict_portal.admin_password).json()["token"]
    with client_for(base, root_token) as root_http:
        name, password = "u" + secrets.token_hex(5), "pw-" + secrets.token_hex(8)
        assert root_http.post("/api/users", json={"username": name, "password": password}).status_code == 201
        token = login(base, name, password).json()["token"]
        with client_for(base, token) as user_http:
            for host in ("127.0.0.1", "localhost"):
                conn_id = create_connection(user_http, "tcp_tunnel", host, echo_server.port)
                code, reason = refused(base, f"/ws/user-connection/{conn_id}", token)
                assert code == 1011
                assert "loopback" in reason, reason
        # root's own connection is a user connection too; an admin-defined service is trusted
        conn_id = create_connection(root_http, "tcp_tunnel", "127.0.0.1", echo_server.port)
        assert refused(base, f"/ws/user-connection/{conn_id}", root_token)[0] == 1011
        service_id = create_service(root_http, "tcp_tunnel", "127.0.0.1", echo_server.port)
    with open_relay(base, f"/ws/tunnel/{service_id}", token) as ws:
        ws.send(b"trusted")
        assert recv_exactly(ws, 7) == b"trusted"


# -- under another ASGI WebSocket implementation -------------------------------------------------------
class StockUvicornPortal(PortalServer):
    """The portal under uvicorn's stock sans-I/O WebSocket protocol, without the ``portal.ws.direct``
    extension: the relay sends through ASGI from a writer task instead."""

    def start(self, timeout: float = 30.0) -> PortalServer:
        real_popen = subprocess.Popen
        py = shlex.quote(sys.executable)
        command = (
            f"{py} -m portal migrate && exec {py} -m uvicorn portal.asgi:app --host 127.0.0.1 --port {self.port}"
            " --ws websockets-sansio --ws-max-size 1048576 --log-level warning"
        )

        def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
            return real_popen(["/bin/sh", "-c", command], **kwargs)

        with mock.patch("tests.portal_server.subprocess.Popen", popen):
            return super().start(timeout)


@pytest.fixture(scope="module")
def stock_portal() -> Iterator[tuple[PortalServer, str]]:
    """(server, a user's token) for a portal under uvicorn's stock WebSocket protocol."""
    server = StockUvicornPortal().start()
    try:
        root_token = login(server.base_url, server.admin_user, server.admin_password).json()["token"]
        name, password = "u" + secrets.token_hex(5), "pw-" + secrets.token_hex(8)
        with client_for(server.base_url, root_token) as root_http:
            assert root_http.post("/api/users", json={"username": name, "password": password}).status_code == 201
        yield server, login(server.base_url, name, password).json()["token"]
    finally:
        server.stop()


def test_the_asgi_send_path_relays_exactly_and_closes(
    stock_portal: tuple[PortalServer, str], echo_server: EchoServer, make_echo_server: Callable[..., EchoServer]
) -> None:
    server, token = stock_portal
    with client_for(server.base_url, token) as http:
        echo_path = f"/ws/user-connection/{create_connection(http, 'tcp_tunnel', echo_server.host, echo_server.port)}"
        hose = make_echo_server(firehose_bytes=3 * MiB + 17)
        hose_path = f"/ws/user-connection/{create_connection(http, 'tcp_tunnel', hose.host, hose.port)}"
    with open_relay(server.base_url, echo_path, token) as ws:
        assert ws.subprotocol == "binary"
        for size in (1, 65536, MiB):
            payload = secrets.token_bytes(size)
            ws.send(payload)
            assert recv_exactly(ws, size) == payload
    with open_relay(server.base_url, hose_path, token) as ws:
        assert recv_exactly(ws, 3 * MiB + 17) == firehose_pattern(3 * MiB + 17)
        assert close_of(ws) == (1000, "backend closed the connection")


def test_the_asgi_send_path_applies_back_pressure(
    stock_portal: tuple[PortalServer, str], make_echo_server: Callable[..., EchoServer]
) -> None:
    server, token = stock_portal
    hose = make_echo_server(firehose_bytes=1024 * MiB)
    with client_for(server.base_url, token) as http:
        path = f"/ws/user-connection/{create_connection(http, 'tcp_tunnel', hose.host, hose.port)}"
    assert server.proc is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    with open_relay(server.base_url, path, token, sock=sock, max_queue=1) as ws:
        stalled_at = wait_for_stall(lambda: hose.bytes_out, "the firehose")
        assert stalled_at < 64 * MiB, f"{stalled_at} bytes left the backend while nobody read"
        got = bytearray()
        while len(got) < stalled_at + 4 * MiB:
            message = ws.recv(timeout=10)
            assert isinstance(message, bytes)
            got += message
        assert got == firehose_pattern(len(got))
    wait_until(lambda: hose.active == 0, 10, "the firehose seeing the connection closed")
