"""VNC through the TCP relay, against x11vnc on Xvfb (``tests/peers/vnc.py``).

Without a stored password the RFB stream is relayed untouched (noVNC authenticates itself). With
one, the relay logs in to the VNC server and the browser sees a server offering only security type
None: the password never leaves the portal.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import UserClient
from tests.peers.rfb import SECURITY_NONE, SECURITY_VNC, RfbClient
from tests.peers.vnc import VncServer
from tests.portal_server import PortalServer
from tests.remote.binary_client import (
    WebSocketTransport,
    close_of,
    create_connection,
    create_service,
    open_relay,
    refused,
)


@pytest.fixture
def user(make_user: Callable[..., UserClient]) -> UserClient:
    return make_user("user")


def vnc_path(user: UserClient, server: VncServer, password: str | None = None) -> str:
    config = {"password": password} if password is not None else {}
    return f"/ws/user-connection/{create_connection(user.http, 'vnc', server.host, server.port, config)}"


def view(portal: PortalServer, path: str, token: str, password: str | None = None) -> RfbClient:
    """The RFB handshake through the relay, up to ServerInit; the caller closes the client."""
    ws = open_relay(portal.base_url, path, token)
    assert ws.subprotocol == "binary"
    client = RfbClient(WebSocketTransport(ws))
    try:
        client.handshake(password)
    except BaseException:
        client.close()
        raise
    return client


def test_without_a_password_the_stream_is_relayed_untouched(
    portal: PortalServer, user: UserClient, vnc_server: VncServer
) -> None:
    with view(portal, vnc_path(user, vnc_server), user.token) as client:
        assert client.server_version == "RFB 003.008"
        assert SECURITY_NONE in client.security_types
        assert client.server_init is not None
        assert (client.server_init.width, client.server_init.height) == (800, 600)
        assert client.pixel(400, 300) == vnc_server.expected_color


def test_without_a_stored_password_the_viewer_authenticates(
    portal: PortalServer, user: UserClient, vnc_server_with_password: VncServer
) -> None:
    server = vnc_server_with_password
    with view(portal, vnc_path(user, server), user.token, password=server.password) as client:
        assert client.security_types == [SECURITY_VNC]  # what x11vnc offers, relayed as is
        assert client.server_init is not None
        assert (client.server_init.width, client.server_init.height) == (800, 600)


def test_a_stored_password_is_used_by_the_relay(
    portal: PortalServer, user: UserClient, vnc_server_with_password: VncServer
) -> None:
    server = vnc_server_with_password
    assert server.password
    path = vnc_path(user, server, server.password)
    with view(portal, path, user.token) as client:
        assert client.server_version == "RFB 003.008"
        assert client.security_types == [SECURITY_NONE]
        assert client.server_init is not None
        assert (client.server_init.width, client.server_init.height) == (800, 600)
        assert client.server_init.name.startswith("vm:")  # x11vnc's ServerInit, relayed
        assert client.pixel(10, 10) == server.expected_color
    conn_id = path.rsplit("/", 1)[1]
    for url in (f"/api/connections/{conn_id}", f"/api/connections/{conn_id}/connect"):
        resp = user.get(url)
        assert resp.status_code == 200
        assert server.password not in resp.text
    assert user.get(f"/api/connections/{conn_id}").json()["config"]["has_password"] is True


@pytest.mark.parametrize("minor", [3, 7])
def test_older_viewers_are_greeted_in_their_version(
    portal: PortalServer, user: UserClient, vnc_server_with_password: VncServer, minor: int
) -> None:
    """A viewer answering RFB 3.3 or 3.7 to the relay's 3.8: security None in that version's form."""
    server = vnc_server_with_password
    with open_relay(portal.base_url, vnc_path(user, server, server.password), user.token) as ws:
        rfb = RfbClient(WebSocketTransport(ws))
        assert rfb.recv_exactly(12) == b"RFB 003.008\n"
        ws.send(b"RFB 003.%03d\n" % minor)
        if minor == 3:
            assert rfb.recv_exactly(4) == struct.pack(">I", SECURITY_NONE)
        else:
            assert rfb.recv_exactly(2) == bytes((1, SECURITY_NONE))
            ws.send(bytes((SECURITY_NONE,)))  # 3.7 has no SecurityResult after None
        ws.send(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", rfb.recv_exactly(4))
        assert (width, height) == (800, 600)


def test_a_viewer_choosing_another_security_type_is_refused(
    portal: PortalServer, user: UserClient, vnc_server_with_password: VncServer
) -> None:
    server = vnc_server_with_password
    with open_relay(portal.base_url, vnc_path(user, server, server.password), user.token) as ws:
        rfb = RfbClient(WebSocketTransport(ws))
        rfb.recv_exactly(12)
        ws.send(b"RFB 003.008\n")
        assert rfb.recv_exactly(2) == bytes((1, SECURITY_NONE))
        ws.send(bytes((SECURITY_VNC,)))
        code, reason = close_of(ws)
    assert code == 1003
    assert reason == "the viewer chose security type 2, not None"


def test_a_wrong_stored_password_closes_with_a_clear_reason(
    portal: PortalServer, user: UserClient, make_vnc_server: Callable[..., VncServer]
) -> None:
    server = make_vnc_server(password="right-pw")  # its own server: failed logins may slow x11vnc down
    code, reason = refused(portal.base_url, vnc_path(user, server, "wrong-pw"), user.token)
    assert code == 1011
    assert reason.startswith("VNC authentication failed: "), reason  # then x11vnc's own reason
    assert "password" in reason
    with view(portal, vnc_path(user, server, "right-pw"), user.token) as client:
        assert client.security_types == [SECURITY_NONE]


def test_vnc_service_route(
    portal: PortalServer, root: UserClient, user: UserClient, vnc_server_with_password: VncServer
) -> None:
    server = vnc_server_with_password
    service_id = create_service(root.http, "vnc", server.host, server.port, {"password": server.password})
    with view(portal, f"/ws/vnc/{service_id}", user.token) as client:
        assert client.security_types == [SECURITY_NONE]
        assert client.server_init is not None
        assert (client.server_init.width, client.server_init.height) == (800, 600)
    assert server.password not in user.get(f"/api/services/{service_id}").text
    # the tunnel route relays the same service raw: the viewer has to authenticate itself
    with open_relay(portal.base_url, f"/ws/tunnel/{service_id}", user.token) as ws:
        raw = RfbClient(WebSocketTransport(ws))
        raw.handshake(server.password)
        assert raw.security_types == [SECURITY_VNC]


def test_vnc_route_refuses_other_plugins(portal: PortalServer, root: UserClient, user: UserClient) -> None:
    ssh_id = create_service(root.http, "ssh", "127.0.0.1", 22, {"username": "nobody"})
    code, reason = refused(portal.base_url, f"/ws/vnc/{ssh_id}", user.token)
    assert code == 4400
    assert reason == f"Service {ssh_id} is not a vnc service"
    tunnel_id = create_service(root.http, "tcp_tunnel", "127.0.0.1", 5900)
    assert refused(portal.base_url, f"/ws/vnc/{tunnel_id}", user.token)[0] == 4400


@contextlib.contextmanager
def fake_server(greeting: bytes) -> Iterator[int]:
    """A TCP server that sends ``greeting`` to its one client and closes: not a VNC server."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(15)

    def serve() -> None:
        with contextlib.suppress(OSError):
            client, _ = listener.accept()
            with client:
                client.sendall(greeting)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


@pytest.mark.parametrize(
    ("greeting", "expected"),
    [
        (b"", "VNC server closed the connection during the handshake"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not an RFB 3.x peer: b'SSH-2.0-Open'"),
        (b"RFB 003.008\n\x00\x00\x00\x00\x05nope!", "VNC server refused the connection: nope!"),
        (b"RFB 003.008\n\x01\x13", "VNC server offers security types [19]; the portal speaks VNC authentication (2)"),
    ],
)
def test_a_backend_that_is_not_a_usable_vnc_server(
    portal: PortalServer, user: UserClient, greeting: bytes, expected: str
) -> None:
    with fake_server(greeting) as port:
        conn_id = create_connection(user.http, "vnc", "127.0.0.1", port, {"password": "secret"})
        code, reason = refused(portal.base_url, f"/ws/user-connection/{conn_id}", user.token)
    assert (code, reason) == (1011, expected)
