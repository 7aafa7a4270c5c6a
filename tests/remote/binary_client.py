"""Helpers for the binary relays (TCP tunnels, VNC): open a relay WebSocket, read exact byte counts,
wait for the close, and adapt a WebSocket to the byte-stream transport the RFB test client wants."""

from __future__ import annotations

import secrets
import socket
import time
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin, Subprotocol

from tests.chat.wsclient import ws_url


def open_relay(
    base_url: str,
    path: str,
    token: str | None,
    *,
    origin: str | None = "",
    subprotocols: tuple[str, ...] = ("binary",),
    sock: socket.socket | None = None,
    max_queue: int = 16,
) -> ClientConnection:
    """A relay WebSocket authenticated by bearer ``token``; ``origin=""`` means the portal's own."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return ws_connect(
        ws_url(base_url, path),
        sock=sock,
        additional_headers=headers,
        origin=Origin(base_url if origin == "" else origin) if origin is not None else None,
        subprotocols=[Subprotocol(s) for s in subprotocols] or None,
        compression=None,
        proxy=None,
        open_timeout=10,
        close_timeout=5,
        max_size=None,
        max_queue=max_queue,
        legacy=True,  # used without a with block by some tests (websockets 17)
    )


def recv_exactly(ws: ClientConnection, size: int, timeout: float = 10.0) -> bytes:
    """Binary messages until ``size`` bytes arrived (fails on text, on more, on close, on timeout)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < size:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(data)} of {size} bytes within {timeout}s"
        try:
            message = ws.recv(timeout=left)
        except TimeoutError:
            raise AssertionError(f"only {len(data)} of {size} bytes within {timeout}s") from None
        assert isinstance(message, bytes), f"text frame from a binary relay: {message!r}"
        data += message
    assert len(data) == size, f"{len(data) - size} bytes more than the {size} expected"
    return bytes(data)


def close_of(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str]:
    """Wait for the server to close; (code, reason). Data still arriving is skipped."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"connection not closed within {timeout}s"
        try:
            ws.recv(timeout=left)
        except TimeoutError:
            raise AssertionError(f"connection not closed within {timeout}s") from None
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")


def refused(base_url: str, path: str, token: str | None, **kw: Any) -> tuple[int | None, str]:
    """Open a relay that must be refused: the (code, reason) it was closed with, before any data."""
    with open_relay(base_url, path, token, **kw) as ws:
        return close_of(ws)


class WebSocketTransport:
    """``sendall``/``recv`` over a relay WebSocket, for :class:`tests.peers.rfb.RfbClient`."""

    def __init__(self, ws: ClientConnection, timeout: float = 10.0) -> None:
        self.ws = ws
        self.timeout = timeout
        self.buffer = b""

    def sendall(self, data: bytes, /) -> None:
        self.ws.send(data)

    def recv(self, size: int, /) -> bytes:
        if not self.buffer:
            try:
                message = self.ws.recv(timeout=self.timeout)
            except ConnectionClosed:
                return b""
            assert isinstance(message, bytes), f"text frame from a binary relay: {message!r}"
            self.buffer = message
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def close(self) -> None:
        self.ws.close()


def create_connection(
    http: httpx.Client, type_: str, host: str, port: int, config: dict[str, Any] | None = None
) -> str:
    resp = http.post(
        "/api/connections",
        json={"name": f"{type_} test", "type": type_, "host": host, "port": port, "config": config or {}},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def create_service(http: httpx.Client, plugin: str, host: str, port: int, config: dict[str, Any] | None = None) -> int:
    """An admin-defined service usable by every user (``http`` must be an admin's client)."""
    resp = http.post(
        "/api/services",
        json={
            "name": f"{plugin} {secrets.token_hex(4)}",
            "plugin": plugin,
            "host": host,
            "port": port,
            "config": config or {},
        },
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])
