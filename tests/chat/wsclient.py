"""A small synchronous ``/ws/chat`` client for tests (``websockets.sync``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

Frame = dict[str, Any]


def ws_url(base_url: str, path: str = "/ws/chat") -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path


def open_json_ws(url: str, headers: dict[str, str], origin: str | None) -> ClientConnection:
    """A WebSocket for a JSON-frame client (the chat, the terminal relays); ``origin`` None sends none."""
    return ws_connect(
        url,
        additional_headers=headers,
        origin=Origin(origin) if origin is not None else None,
        proxy=None,
        open_timeout=10,
        close_timeout=5,
        max_size=4 * 1024 * 1024,
        legacy=True,
    )


class ChatClient:
    """One WebSocket connection speaking JSON frames."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    # -- sending -------------------------------------------------------------------------------
    def send_json(self, obj: Frame) -> None:
        self.conn.send(json.dumps(obj))

    def send_raw(self, data: str | bytes) -> None:
        self.conn.send(data)

    # -- receiving -----------------------------------------------------------------------------
    def recv_json(self, timeout: float = 5.0) -> Frame:
        """The next frame; fails on timeout or when the server closed the connection."""
        try:
            raw = self.conn.recv(timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"no frame within {timeout}s") from None
        except ConnectionClosed as exc:
            raise AssertionError(f"connection closed: {exc}") from None
        frame = json.loads(raw)
        assert isinstance(frame, dict), frame
        return frame

    def recv_until(
        self, type_: str, timeout: float = 5.0, where: Callable[[Frame], bool] | None = None, **fields: Any
    ) -> Frame:
        """Skip frames until one of ``type_`` (matching ``fields`` and ``where``) arrives."""
        deadline = time.monotonic() + timeout
        skipped: list[Frame] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_!r} frame matching {fields} within {timeout}s; skipped {skipped}")
            try:
                frame = self.recv_json(timeout=left)
            except AssertionError as exc:
                raise AssertionError(f"{exc} waiting for {type_!r} {fields}; skipped {skipped}") from None
            if frame.get("type") == type_ and all(frame.get(k) == v for k, v in fields.items()):
                if where is None or where(frame):
                    return frame
            skipped.append(frame)

    def recv_error(self, timeout: float = 5.0, **fields: Any) -> Frame:
        return self.recv_until("error", timeout, **fields)

    def assert_no_frame(
        self, type_: str, within: float = 0.5, where: Callable[[Frame], bool] | None = None, **fields: Any
    ) -> None:
        """No frame of ``type_`` (matching ``fields``) arrives within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                raw = self.conn.recv(timeout=left)
            except TimeoutError:
                return
            frame = json.loads(raw)
            matched = frame.get("type") == type_ and all(frame.get(k) == v for k, v in fields.items())
            assert not (matched and (where is None or where(frame))), f"unexpected frame: {frame}"

    def drain(self, within: float = 0.2) -> list[Frame]:
        frames: list[Frame] = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                frames.append(json.loads(self.conn.recv(timeout=left)))
            except TimeoutError:
                break
        return frames

    # -- protocol helpers ----------------------------------------------------------------------
    def ping(self, timeout: float = 5.0) -> None:
        """A round trip proving the connection is still usable."""
        self.send_json({"type": "ping"})
        assert self.recv_until("pong", timeout) == {"type": "pong"}

    def join(self, channel: str, timeout: float = 5.0) -> dict[str, Frame]:
        """Join and return the four frames a join answers with, by type."""
        self.send_json({"type": "join", "channel": channel})
        info = self.recv_until("channel_info", timeout)
        frames = {"channel_info": info}
        for kind in ("history", "pinned_messages", "users"):
            frames[kind] = self.recv_until(kind, timeout)
        return frames

    def say(self, channel: str, text: str, timeout: float = 5.0, **extra: Any) -> Frame:
        """Send a message and wait for its echo."""
        self.send_json({"type": "message", "channel": channel, "message": text, **extra})
        return self.recv_until("message", timeout, message=text)

    def close(self) -> None:
        self.conn.close()

    def close_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the connection and return the close code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.conn.recv(timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
        raise AssertionError(f"connection not closed within {timeout}s")

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    base_url: str,
    token: str | None = None,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    query_token: bool = False,
    path: str = "/ws/chat",
    wait_connected: bool = True,
) -> ChatClient:
    """Open ``path`` authenticated by bearer ``token`` (or ``?token=`` / a session cookie).

    With ``wait_connected`` the ``connected`` greeting is consumed and checked.
    """
    url = ws_url(base_url, path)
    extra = dict(headers or {})
    if token is not None:
        if query_token:
            url += f"?token={token}"
        else:
            extra["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        extra["Cookie"] = cookie
    client = ChatClient(open_json_ws(url, extra, origin))
    if wait_connected:
        hello = client.recv_json()
        assert hello["type"] == "connected", hello
    return client
