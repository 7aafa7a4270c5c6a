"""The peers work as the portal's tests expect them to (no portal involved, so any backend runs them)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncssh
import pytest

from tests import aio
from tests.peers.echo import EchoServer, firehose_pattern
from tests.peers.fixtures import FIREHOSE_BYTES
from tests.peers.rfb import SECURITY_NONE, SECURITY_VNC, RfbClient, RfbError
from tests.peers.sshd import ClientKey, SshServer
from tests.peers.vnc import VncServer

pytestmark = pytest.mark.peers


@asynccontextmanager
async def connect(server: SshServer, **options: Any) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """A client that trusts exactly the server's current host key and uses no local keys or agent."""
    defaults: dict[str, Any] = {
        "username": server.username,
        "known_hosts": asyncssh.import_known_hosts(server.known_hosts_line),
        "client_keys": None,
        "agent_path": None,
    }
    async with asyncssh.connect(server.host, server.port, **(defaults | options)) as conn:
        yield conn


def server_fingerprint(conn: asyncssh.SSHClientConnection) -> str:
    key = conn.get_server_host_key()
    assert key is not None
    return key.get_fingerprint("sha256")


def test_sshd_password_login_runs_a_command_in_a_pty(ssh_server: SshServer) -> None:
    async def main() -> tuple[str, str]:
        async with connect(ssh_server, password=ssh_server.password) as conn:
            fingerprint = server_fingerprint(conn)
            command = 'echo hi; tty; echo "$LANG"'
            result = await conn.run(command, term_type="xterm", term_size=(80, 24), check=True, timeout=10)
            return fingerprint, str(result.stdout)

    fingerprint, output = aio.run(main())
    assert fingerprint == ssh_server.host_key_fingerprint
    lines = output.splitlines()
    assert lines[0] == "hi"
    assert lines[1].startswith("/dev/pts/")
    assert lines[2] == "C.UTF-8"
    assert "\r\n" in output  # the PTY's line discipline translated the newline


def test_sshd_refuses_a_wrong_password(ssh_server: SshServer) -> None:
    async def main() -> None:
        async with connect(ssh_server, password=ssh_server.password + "x"):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        aio.run(main())


def test_sshd_key_login_after_authorize(ssh_server: SshServer, ssh_client_key: ClientKey) -> None:
    key = asyncssh.import_private_key(ssh_client_key.private_openssh)

    async def login() -> str:
        async with connect(ssh_server, client_keys=[key], preferred_auth="publickey") as conn:
            return str((await conn.run("whoami", check=True, timeout=10)).stdout).strip()

    with pytest.raises(asyncssh.PermissionDenied):
        aio.run(login())
    ssh_server.authorize(ssh_client_key.public_line)
    assert aio.run(login()) == ssh_server.username
    assert ssh_client_key.fingerprint in ssh_server.log()  # sshd logged which key it accepted


def test_sftp_lists_reads_and_writes_the_home(ssh_server: SshServer) -> None:
    ssh_server.write_file("docs/readme.txt", "from the test\n")

    async def main() -> tuple[list[str], bytes]:
        async with connect(ssh_server, password=ssh_server.password) as conn, conn.start_sftp_client() as sftp:
            names = await sftp.listdir(str(ssh_server.home))
            async with sftp.open(str(ssh_server.scratch / "docs/readme.txt"), "rb") as f:
                content = await f.read()
            async with sftp.open(str(ssh_server.scratch / "uploaded.bin"), "wb") as f:
                await f.write(b"\x00\x01 uploaded")
            assert isinstance(content, bytes)
            return list(names), content

    names, content = aio.run(main())
    assert ssh_server.scratch.name in names
    assert content == b"from the test\n"
    uploaded = ssh_server.scratch / "uploaded.bin"
    assert uploaded.read_bytes() == b"\x00\x01 uploaded"
    assert uploaded.stat().st_uid == ssh_server.home.stat().st_uid  # written as the login user


def test_sshd_forwards_tcp_to_a_loopback_port(ssh_server: SshServer, echo_server: EchoServer) -> None:
    async def main() -> bytes:
        async with connect(ssh_server, password=ssh_server.password) as conn:
            reader, writer = await conn.open_connection(echo_server.host, echo_server.port)
            writer.write(b"through the tunnel")
            data = await reader.readexactly(len(b"through the tunnel"))
            writer.close()
            return bytes(data)

    assert aio.run(main()) == b"through the tunnel"


def test_rotate_host_key_changes_the_key_and_refuses_the_old_one(make_ssh_server: Callable[..., SshServer]) -> None:
    server = make_ssh_server()
    old_known_hosts, old_fingerprint, port = server.known_hosts_line, server.host_key_fingerprint, server.port
    new_fingerprint = server.rotate_host_key()
    assert new_fingerprint == server.host_key_fingerprint != old_fingerprint
    assert server.port == port

    async def login(known_hosts: str) -> str:
        trusted = asyncssh.import_known_hosts(known_hosts)
        async with connect(server, password=server.password, known_hosts=trusted) as conn:
            return server_fingerprint(conn)

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        aio.run(login(old_known_hosts))
    assert aio.run(login(server.known_hosts_line)) == new_fingerprint


def test_vnc_without_password_shows_the_painted_screen(vnc_server: VncServer) -> None:
    with RfbClient.connect(vnc_server.host, vnc_server.port) as rfb:
        assert rfb.server_version.startswith("RFB 003.00")
        assert SECURITY_NONE in rfb.security_types
        assert rfb.server_init is not None
        assert (rfb.server_init.width, rfb.server_init.height) == (vnc_server.width, vnc_server.height) == (800, 600)
        assert vnc_server.expected_color == (255, 0, 0)
        assert rfb.pixel(400, 300) == vnc_server.expected_color
        corners = rfb.read_rect(0, 0, 4, 4)
        assert {pixel for row in corners for pixel in row} == {vnc_server.expected_color}


def test_vnc_with_password_needs_it(vnc_server_with_password: VncServer) -> None:
    server = vnc_server_with_password
    assert server.password and len(server.password) <= 8
    with pytest.raises(RfbError):
        RfbClient.connect(server.host, server.port, password="wrong")
    with pytest.raises(RfbError):
        RfbClient.connect(server.host, server.port)
    with RfbClient.connect(server.host, server.port, password=server.password) as rfb:
        assert rfb.security_types == [SECURITY_VNC]
        assert rfb.pixel(10, 10) == server.expected_color


def test_vnc_color_and_size_are_options(make_vnc_server: Callable[..., VncServer]) -> None:
    server = make_vnc_server(width=320, height=200, color="#00ff80")
    assert server.display.startswith(":")
    with RfbClient.connect(server.host, server.port) as rfb:
        assert rfb.server_init is not None
        assert (rfb.server_init.width, rfb.server_init.height) == (320, 200)
        assert rfb.pixel(319, 199) == (0, 255, 128)


def test_echo_server_echoes_for_concurrent_clients(echo_server: EchoServer) -> None:
    clients = [socket.create_connection(echo_server.address, timeout=5) for _ in range(5)]
    try:
        for i, client in enumerate(clients):
            client.sendall(b"ping %d" % i)
        for i, client in enumerate(clients):
            expected = b"ping %d" % i
            data = b""
            while len(data) < len(expected):
                data += client.recv(64)
            assert data == expected
    finally:
        for client in clients:
            client.close()


def _read_all(sock: socket.socket) -> int:
    received = 0
    while chunk := sock.recv(1 << 20):
        assert chunk == firehose_pattern(len(chunk), received)
        received += len(chunk)
    return received


def test_firehose_sends_its_pattern(firehose_server: EchoServer) -> None:
    with socket.create_connection(firehose_server.address, timeout=10) as sock:
        assert _read_all(sock) == FIREHOSE_BYTES


def test_firehose_waits_for_a_slow_reader(make_echo_server: Callable[..., EchoServer]) -> None:
    total = 64 * 1024 * 1024
    server = make_echo_server(firehose_bytes=total)
    with socket.create_connection(server.address, timeout=10) as sock:
        time.sleep(0.5)
        assert server.bytes_out < total  # kernel buffers are full: the sender is blocked
        assert not server.finished.is_set()
        assert _read_all(sock) == total
    assert server.finished.wait(5)


def test_echo_server_stops_with_clients_connected() -> None:
    server = EchoServer().start()
    client = socket.create_connection(server.address, timeout=5)
    try:
        deadline = time.monotonic() + 5
        while server.active == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.active == 1
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
        assert client.recv(16) == b""
        with pytest.raises(OSError):
            socket.create_connection(server.address, timeout=1).close()
    finally:
        client.close()
