"""The telnet relay against a small telnet server run by the test: option negotiation, output
without IAC sequences, NAWS on resize, input, and the ends of a session."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import UserClient
from tests.peers.base import LOOPBACK, free_port
from tests.remote.terminal_client import TerminalClient

MakeUser = Callable[..., UserClient]
IAC, DONT, DO, WONT, WILL, SB, SE, NOP = 255, 254, 253, 252, 251, 250, 240, 241
ECHO, SGA, TTYPE, NAWS, LINEMODE = 1, 3, 24, 31, 34
BANNER = b"Welcome to orp-telnet\r\n"


def iac(*codes: int) -> bytes:
    return bytes((IAC, *codes))


class TelnetPeer:
    """A telnet-ish server on 127.0.0.1 in a thread of its own. On connect it asks for the
    terminal type and the window size, offers to echo and to suppress go-ahead, and greets; then
    it answers each line with ``you said: <line>``. It keeps everything each client sent."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[bytearray] = []  # raw bytes per client, negotiation included
        self.closed: list[bool] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="telnet-peer", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TelnetPeer:
        self._thread.start()
        self._server = self.call(asyncio.start_server(self._client, LOOPBACK, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in self.writers:
                writer.close()

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.received)
        self.received.append(bytearray())
        self.closed.append(False)
        self.writers.append(writer)
        writer.write(iac(DO, TTYPE) + iac(WILL, ECHO) + iac(WILL, SGA) + iac(DO, NAWS) + iac(DO, LINEMODE) + BANNER)
        line = bytearray()
        try:
            while chunk := await reader.read(4096):
                self.received[index] += chunk
                for byte in _strip_commands(chunk):
                    if byte in (0, 10):
                        continue  # CR NUL / CR LF: the line ended at the CR
                    if byte == 13:
                        writer.write(b"you said: " + bytes(line) + b"\r\n")
                        if line == b"bye":
                            writer.close()
                            return
                        line.clear()
                    else:
                        line.append(byte)
        finally:
            self.closed[index] = True

    def send(self, index: int, data: bytes) -> None:
        async def write() -> None:
            self.writers[index].write(data)
            await self.writers[index].drain()

        self.call(write())

    def wait_received(self, index: int, data: bytes, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while data not in self.received[index]:
            assert time.monotonic() < deadline, f"{data!r} not received; got {bytes(self.received[index])!r}"
            time.sleep(0.02)


def _strip_commands(chunk: bytes) -> bytes:
    """Good enough for this peer: the client's commands arrive whole, never split."""
    out, i = bytearray(), 0
    while i < len(chunk):
        if chunk[i] != IAC:
            out.append(chunk[i])
            i += 1
        elif chunk[i + 1] == SB:
            i = chunk.index(bytes((IAC, SE)), i) + 2
        else:
            i += 3 if chunk[i + 1] in (DO, DONT, WILL, WONT) else 2
    return bytes(out)


@pytest.fixture
def telnet_peer() -> Iterator[TelnetPeer]:
    peer = TelnetPeer().start()
    yield peer
    peer.stop()


def telnet_connection(user: UserClient, port: int) -> str:
    body = {"name": "telnet-" + secrets.token_hex(3), "type": "telnet", "host": LOOPBACK, "port": port}
    resp = user.post("/api/connections", json=body)
    assert resp.status_code == 201, resp.text
    connection_id: str = resp.json()["id"]
    return connection_id


def test_negotiation_banner_and_a_line(
    telnet_peer: TelnetPeer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{telnet_connection(user, telnet_peer.port)}")
    term.wait_output("Welcome to orp-telnet\r\n")
    assert term.output == BANNER.decode()  # no IAC sequence leaked into the terminal
    # refused: terminal type and linemode; accepted: echo and SGA from the server, NAWS from us
    for answer in (iac(WONT, TTYPE), iac(WONT, LINEMODE), iac(DO, ECHO), iac(DO, SGA), iac(WILL, NAWS)):
        telnet_peer.wait_received(0, answer)
    telnet_peer.wait_received(0, iac(SB, NAWS, 0, 80, 0, 24, IAC, SE))  # the default size
    term.run("hello there", r"you said: hello there\r\n")
    telnet_peer.wait_received(0, b"hello there\r\x00")  # a bare CR goes out as CR NUL (RFC 854)
    assert bytes(telnet_peer.received[0]).count(iac(DO, ECHO)) == 1  # answers only change of state


def test_resize_sends_naws(
    telnet_peer: TelnetPeer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{telnet_connection(user, telnet_peer.port)}")
    term.wait_output("Welcome")
    term.resize(132, 43)
    telnet_peer.wait_received(0, iac(SB, NAWS, 0, 132, 0, 43, IAC, SE))
    term.resize(255, 1)  # 255 is doubled inside a subnegotiation
    telnet_peer.wait_received(0, iac(SB, NAWS, 0, IAC, IAC, 0, 1, IAC, SE))


def test_commands_split_across_reads_are_stripped(
    telnet_peer: TelnetPeer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{telnet_connection(user, telnet_peer.port)}")
    term.wait_output("Welcome")
    telnet_peer.send(0, b"ab" + bytes((IAC,)))
    time.sleep(0.2)
    telnet_peer.send(0, bytes((WILL, 5)) + b"cd" + iac(NOP) + iac(SB, TTYPE, 1) + b"junk" + iac(SE) + b"ef\r")
    time.sleep(0.2)
    telnet_peer.send(0, b"\x00gh\r\n" + "café ✓\r\n".encode())
    term.wait_output("café ✓\r\n")
    assert term.output == BANNER.decode() + "abcdef\rgh\r\ncafé ✓\r\n"
    telnet_peer.wait_received(0, iac(DONT, 5))


def test_ping_and_bad_frames(
    telnet_peer: TelnetPeer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{telnet_connection(user, telnet_peer.port)}")
    term.wait_output("Welcome")
    term.ping()
    term.send_raw("{oops")
    assert term.wait_frame("error")["message"] == "Invalid JSON"
    term.send_json({"type": "resize", "cols": 2000, "rows": 10})
    assert "cols" in term.wait_frame("error")["message"]
    term.run("still here", r"you said: still here\r\n")


def test_server_closing_ends_the_session(
    telnet_peer: TelnetPeer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    term = terminals(user, f"/ws/user-connection/{telnet_connection(user, telnet_peer.port)}")
    term.wait_output("Welcome")
    term.type("bye\r")
    assert term.wait_closed() == (1000, "session ended")
    assert term.output.endswith("you said: bye\r\n")


def test_browser_leaving_closes_the_tcp_connection(
    root: UserClient, telnet_peer: TelnetPeer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    user = make_user()
    conn = telnet_connection(user, telnet_peer.port)
    term = terminals(user, f"/ws/user-connection/{conn}")
    term.run("x", r"you said: x\r\n")
    term.close()
    deadline = time.monotonic() + 10
    while not telnet_peer.closed[0]:
        assert time.monotonic() < deadline, "the portal kept the telnet connection open"
        time.sleep(0.05)
    while True:
        resp = root.get("/api/admin/relay-sessions", params={"user_id": user.id, "kind": "telnet"})
        sessions = resp.json()["sessions"]
        if sessions and not sessions[0]["active"]:
            break
        assert time.monotonic() < deadline, sessions
        time.sleep(0.1)
    assert sessions[0]["connection_id"] == conn
    assert sessions[0]["bytes_in"] == len("x\r")
    assert sessions[0]["bytes_out"] == len(BANNER) + len("you said: x\r\n")  # terminal bytes, not negotiation
    assert sessions[0]["close_reason"] == "browser closed"


def test_unreachable_telnet_server(make_user: MakeUser, terminals: Callable[..., TerminalClient]) -> None:
    user = make_user()
    port = free_port()
    message, code = terminals(user, f"/ws/user-connection/{telnet_connection(user, port)}").error_and_close()
    assert code == 1011
    assert message == f"Could not connect to {LOOPBACK}:{port}: Connection refused"


def test_another_users_telnet_connection_is_refused(
    telnet_peer: TelnetPeer, make_user: MakeUser, terminals: Callable[..., TerminalClient]
) -> None:
    owner, other = make_user(), make_user()
    conn = telnet_connection(owner, telnet_peer.port)
    assert terminals(other, f"/ws/user-connection/{conn}").wait_closed()[0] == 4404
    assert telnet_peer.received == []  # the portal never connected
