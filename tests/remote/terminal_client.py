"""A synchronous client of the JSON terminal protocol (ssh, telnet and local terminal relays)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.chat.wsclient import open_json_ws, ws_url

Frame = dict[str, Any]


class TerminalClient:
    """One relay WebSocket: keeps the terminal output seen so far in ``output``."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._chunks: list[str] = []
        self.frames: list[Frame] = []  # every non-output frame, in order
        self.closed: tuple[int | None, str] | None = None

    # -- sending ---------------------------------------------------------------------------------
    def send_json(self, obj: Frame) -> None:
        self.conn.send(json.dumps(obj))

    def send_raw(self, data: str | bytes) -> None:
        self.conn.send(data)

    def type(self, text: str) -> None:
        self.send_json({"type": "input", "data": text})

    def resize(self, cols: int, rows: int) -> None:
        self.send_json({"type": "resize", "cols": cols, "rows": rows})

    # -- receiving -------------------------------------------------------------------------------
    @property
    def output(self) -> str:
        """All the terminal output so far."""
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    def _receive(self, timeout: float) -> Frame | None:
        """The next frame (output is appended to ``output``); None on timeout or once closed."""
        if self.closed is not None:
            return None
        try:
            raw = self.conn.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self.closed = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            return None
        assert isinstance(raw, str), f"binary frame from a terminal relay: {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
        if frame["type"] == "output":
            assert isinstance(frame["data"], str) and set(frame) == {"type", "data"}, frame
            self._chunks.append(frame["data"])
        else:
            self.frames.append(frame)
        return frame

    def wait_output(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """Read until ``pattern`` (a regex, matching under 4 KiB) matches the output after offset
        ``since``. Only new output is searched, so megabytes of output stay cheap."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        window = self.output[since:]
        while True:
            match = regex.search(window)
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or self.closed is not None:
                raise AssertionError(
                    f"no {pattern!r} in the output within {timeout}s (closed={self.closed}); "
                    f"output tail: {self.output[-600:]!r}; frames: {self.frames[-5:]}"
                )
            window = window[-4096:]
            frame = self._receive(min(left, 1.0))
            if frame is not None and frame["type"] == "output":
                window += frame["data"]

    def run(self, command: str, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Type ``command`` and Enter, then wait for ``pattern`` in what follows."""
        start = len(self.output)
        self.type(command + "\r")
        return self.wait_output(pattern, timeout, since=start)

    def wait_frame(self, type_: str, timeout: float = 10.0) -> Frame:
        deadline = time.monotonic() + timeout
        seen = len(self.frames)
        while True:
            for frame in self.frames[seen:]:
                if frame["type"] == type_:
                    self.frames.remove(frame)
                    return frame
            seen = len(self.frames)
            left = deadline - time.monotonic()
            if left <= 0 or self.closed is not None:
                raise AssertionError(f"no {type_!r} frame within {timeout}s (closed={self.closed}): {self.frames}")
            self._receive(min(left, 1.0))

    def ping(self, timeout: float = 10.0) -> None:
        self.send_json({"type": "ping"})
        assert self.wait_frame("pong", timeout) == {"type": "pong"}

    def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        """Read (keeping output and frames) until the server closes; the close code and reason."""
        deadline = time.monotonic() + timeout
        while self.closed is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not closed within {timeout}s; output tail {self.output[-300:]!r}")
            self._receive(min(left, 1.0))
        return self.closed

    def error_and_close(self, timeout: float = 15.0) -> tuple[str, int | None]:
        """A refused session: the error frame's message and the close code."""
        code, _ = self.wait_closed(timeout)
        errors = [f for f in self.frames if f["type"] == "error"]
        assert errors, f"closed with {code} without an error frame: {self.frames}"
        message = errors[0]["message"]
        assert isinstance(message, str) and message
        return message, code

    def close(self) -> None:
        with contextlib.suppress(ConnectionClosed):  # the server may have closed first
            self.conn.close()

    def __enter__(self) -> TerminalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_terminal(
    base_url: str,
    path: str,
    token: str | None,
    *,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
) -> TerminalClient:
    extra = dict(headers or {})
    if token is not None:
        extra["Authorization"] = f"Bearer {token}"
    return TerminalClient(open_json_ws(ws_url(base_url, path), extra, origin))
