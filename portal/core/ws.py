"""WebSocket plumbing shared by every real-time endpoint.

- :class:`Outbox`: a bounded outgoing queue per socket, so a slow client never blocks whoever is
  broadcasting; a client that falls ``max_pending`` frames behind is closed with 1013 (try again
  later). Under ``portal serve`` frames are written straight to the socket (see
  :mod:`portal.core.ws_protocol`): no task per socket, and one encoding per event for all its
  recipients (:meth:`Outbox.send_frame`). Elsewhere one writer task per socket sends through ASGI.
- :class:`HandlerTable`: client frames are JSON objects with a ``type``; each type has a Pydantic
  schema and a handler. Bad frames (invalid JSON, unknown type, invalid fields, oversize) are
  answered with ``{"type": "error", ...}`` and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket, WebSocketState

from portal.core.errors import ApiError, validation_message
from portal.core.ws_protocol import DIRECT_EXTENSION, DirectWriter, WriterClosed, frame_payload, text_frame

CLOSE_TOO_SLOW = 1013
CLOSE_POLICY = 1008
CLOSE_TOO_MANY = 4429


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


class Outbox:
    """A bounded outgoing queue: written straight to the socket when the server offers the
    ``portal.ws.direct`` extension, else drained by one writer task through ASGI.

    Direct path: a frame is written at once when nothing is queued and the transport accepts
    writes; otherwise it waits in the queue, drained when the transport resumes writing. A close
    clears the queue and sends the close frame through ASGI from one task, after every frame
    already written. Once the connection is closing or lost, frames are dropped; frames the
    client sent before it closed are still read (uvicorn then reports the disconnect).
    """

    def __init__(self, websocket: WebSocket, max_pending: int = 1000) -> None:
        self.websocket = websocket
        self.max_pending = max_pending
        # str (text) or bytes (a whole frame from text_frame); the direct path queues frames only
        self._queue: deque[str | bytes] = deque()
        self._closing: tuple[int, str] | None = None
        self._stopped = False  # nothing more is sent: a close was requested, the peer is gone or stop()
        self._task: asyncio.Task[None] | None = None
        extensions = websocket.scope.get("extensions") or {}
        direct = extensions.get(DIRECT_EXTENSION)
        self._direct: DirectWriter | None = direct if isinstance(direct, DirectWriter) else None
        self._wakeup: asyncio.Event | None = None
        if self._direct is not None:
            self._direct.on_resume(self._drain)
        else:
            self._wakeup = asyncio.Event()

    @property
    def direct(self) -> bool:
        """Frames go straight to the socket (no writer task)."""
        return self._direct is not None

    def start(self) -> None:
        if self._direct is None:
            self._task = asyncio.create_task(self._write(), name="ws-writer")

    @property
    def closed(self) -> bool:
        return self._closing is not None

    def send_frame(self, frame: bytes) -> bool:
        """Send a whole text frame (:func:`text_frame`, may be shared by many sockets); False when
        the client is too slow (the connection is then being closed) or gone."""
        if self._stopped:
            return False
        direct = self._direct
        if direct is not None and not self._queue:
            try:
                if direct.write(frame):
                    return True
            except WriterClosed:
                self._gone()
                return False
        return self._enqueue(frame)

    def send_text(self, text: str) -> bool:
        """Send a text frame; False when the client is too slow (the connection is then being
        closed) or gone."""
        if self._direct is not None:
            return self.send_frame(text_frame(text.encode()))
        if self._stopped:
            return False
        return self._enqueue(text)

    def send(self, obj: Any) -> bool:
        return self.send_text(dumps(obj))

    def _enqueue(self, item: str | bytes) -> bool:
        if len(self._queue) >= self.max_pending:
            self.close(CLOSE_TOO_SLOW, "client too slow: outgoing queue full")
            return False
        self._queue.append(item)
        if self._wakeup is not None:
            self._wakeup.set()
        return True

    def close(self, code: int, reason: str = "") -> None:
        if self._closing is None:
            self._closing = (code, reason)
            self._stopped = True
            self._queue.clear()
            if self._direct is not None:
                self._direct.on_resume(None)
                self._task = asyncio.create_task(self._close(), name="ws-close")
            elif self._wakeup is not None:
                self._wakeup.set()

    def _gone(self) -> None:
        """Direct path: the connection is closing or lost; uvicorn reports the disconnect to the
        reader, which may first finish the frames the client sent before closing."""
        self._stopped = True
        self._queue.clear()
        if self._direct is not None:
            self._direct.on_resume(None)

    def _drain(self) -> None:
        """Direct path: the transport resumed writing; write what waited, until paused again."""
        direct, queue = self._direct, self._queue
        if direct is None:
            return
        try:
            while queue and not self._stopped:
                frame = queue[0]
                if not direct.write(frame if isinstance(frame, bytes) else text_frame(frame.encode())):
                    return
                queue.popleft()
        except WriterClosed:
            self._gone()

    async def _close(self) -> None:
        """Direct path: the close frame, through ASGI (uvicorn runs the closing handshake)."""
        ws = self.websocket
        try:
            if self._closing is not None and ws.application_state == WebSocketState.CONNECTED:
                await ws.close(*self._closing)
        except Exception:  # the peer went away meanwhile: the reader loop notices and cleans up
            return

    async def _write(self) -> None:
        ws = self.websocket
        wakeup = self._wakeup
        assert wakeup is not None
        try:
            while True:
                await wakeup.wait()
                wakeup.clear()
                while self._queue and self._closing is None:
                    item = self._queue.popleft()
                    await ws.send_text(item if isinstance(item, str) else frame_payload(item).decode())
                if self._closing is not None:
                    if ws.application_state == WebSocketState.CONNECTED:
                        await ws.close(*self._closing)
                    return
        except Exception:  # the peer went away mid-send: the reader loop notices and cleans up
            self._closing = self._closing or (1006, "send failed")
            self._stopped = True

    async def stop(self, grace: float = 1.0) -> None:
        """Stop sending; a close already requested gets ``grace`` seconds to reach the client."""
        self._stopped = True
        if self._direct is not None:
            self._direct.on_resume(None)
            self._queue.clear()
        if self._task and not self._task.done() and self._closing is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
        if self._task and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


Ctx = TypeVar("Ctx")
Payload = TypeVar("Payload", bound=BaseModel)


@dataclass(frozen=True)
class _Entry(Generic[Ctx]):
    schema: type[BaseModel]
    fn: Callable[[Ctx, Any], Awaitable[None]]


class FrameError(Exception):
    """A client frame was refused; the message goes back as ``{"type": "error"}``."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class HandlerTable(Generic[Ctx]):
    def __init__(self, max_frame_chars: int = 64 * 1024) -> None:
        self._entries: dict[str, _Entry[Ctx]] = {}
        self.max_frame_chars = max_frame_chars

    def handler(
        self, type_: str, schema: type[Payload]
    ) -> Callable[[Callable[[Ctx, Payload], Awaitable[None]]], Callable[[Ctx, Payload], Awaitable[None]]]:
        def register(fn: Callable[[Ctx, Payload], Awaitable[None]]) -> Callable[[Ctx, Payload], Awaitable[None]]:
            if type_ in self._entries:
                raise ValueError(f"duplicate handler for {type_!r}")
            self._entries[type_] = _Entry(schema, fn)
            return fn

        return register

    @property
    def types(self) -> list[str]:
        return sorted(self._entries)

    def parse(self, raw: str) -> tuple[_Entry[Ctx], BaseModel, str]:
        if len(raw) > self.max_frame_chars:
            raise FrameError(f"Frame too large (at most {self.max_frame_chars} characters)")
        try:
            data = json.loads(raw)
        except ValueError:
            raise FrameError("Invalid JSON") from None
        if not isinstance(data, dict):
            raise FrameError("A frame must be a JSON object with a 'type'")
        type_ = data.get("type")
        entry = self._entries.get(type_) if isinstance(type_, str) else None
        if entry is None:
            raise FrameError(f"Unknown message type: {type_!r}"[:120])
        fields = {k: v for k, v in data.items() if k != "type"}
        try:
            payload = entry.schema.model_validate(fields)
        except ValidationError as exc:
            message, details = validation_message([dict(e) for e in exc.errors()])
            raise FrameError(message, field=details[0]["field"] if details else None) from None
        return entry, payload, str(type_)

    async def dispatch(self, ctx: Ctx, raw: str, reply: Callable[[dict[str, Any]], object]) -> None:
        """Run the handler for one frame; refusals become error frames, never disconnects."""
        try:
            entry, payload, type_ = self.parse(raw)
        except FrameError as err:
            reply({"type": "error", "message": err.message, **err.extra})
            return
        try:
            await entry.fn(ctx, payload)
        except FrameError as err:
            reply({"type": "error", "message": err.message, "request_type": type_, **err.extra})
        except ApiError as err:
            reply({**err.extra, "type": "error", "message": err.message, "request_type": type_, "status": err.status})


class WsSlots:
    """At most ``limit`` concurrent WebSockets per user, counted across all portal processes."""

    KEY = "ws"

    def __init__(self, presence: Any, limit: int) -> None:
        self.presence = presence
        self.limit = limit

    async def acquire(self, user_id: int) -> bool:
        await self.presence.add(self.KEY, user_id)
        if await self.presence.count(self.KEY, user_id) > self.limit:
            await self.presence.remove(self.KEY, user_id)
            return False
        return True

    async def release(self, user_id: int) -> None:
        await self.presence.remove(self.KEY, user_id)
