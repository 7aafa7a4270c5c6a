"""The JSON terminal protocol shared by the ssh, telnet and local PTY relays.

Client frames: ``{"type": "input", "data": ...}``, ``{"type": "resize", "cols", "rows"}`` and
``{"type": "ping"}``; server frames: ``{"type": "output", "data": ...}``, ``{"type": "pong"}`` and
``{"type": "error", "message": ...}``. A bad frame is answered with an error frame and the session
goes on. Each relay supplies a :class:`TerminalBackend`; :func:`run_terminal` pumps both ways with
back-pressure: backend output is read only as fast as the WebSocket takes it, and the next client
frame is read only once the backend accepted the previous input.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from portal.core.ws import HandlerTable
from portal.remote.relays.session import CLOSE_BACKEND_FAILED, RelayContext

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024  # the largest output frame, in backend bytes
PAUSE_AT = 4 * READ_SIZE  # buffered backend output at which the backend is paused
RESUME_BELOW = READ_SIZE
MAX_FRAME_CHARS = 256 * 1024  # a large paste fits; anything bigger is refused with an error frame
MAX_SIZE = 1000  # columns or rows
DEFAULT_COLS, DEFAULT_ROWS = 80, 24
CLOSE_GRACE = 5.0

# the C escaper that writes \uXXXX for non-ASCII: about 1.5x faster than the one keeping UTF-8
_encode_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


class BackendFailed(Exception):
    """The backend broke mid-session (not a clean end): the browser gets the message and 1011."""


class TerminalBackend(Protocol):
    """One terminal session on the far side (an SSH channel, a telnet stream, a local PTY)."""

    async def read(self) -> bytes:
        """Up to :data:`READ_SIZE` bytes of output, whatever is available; ``b""`` once it ended."""
        ...

    async def write(self, data: bytes) -> None:
        """Send keyboard input; returns once the backend accepted it (back-pressure)."""
        ...

    def resize(self, cols: int, rows: int) -> None: ...

    async def close(self) -> None:
        """End the session (the browser left): the backend must not outlive it."""
        ...


class OutputBuffer:
    """Backend output waiting for the WebSocket, bounded: past :data:`PAUSE_AT` bytes the backend
    is paused (``pause``), and resumed (``resume``) once the reader has taken most of it.
    Everything buffered is returned in reads of at most :data:`READ_SIZE` bytes, so a burst of
    small backend chunks becomes one frame."""

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._buf = bytearray()
        self._ready = asyncio.Event()
        self._ended = False
        self._paused = False
        self._pause = pause
        self._resume = resume

    def feed(self, data: bytes) -> None:
        self._buf += data
        self._ready.set()
        if not self._paused and len(self._buf) >= PAUSE_AT:
            self._paused = True
            self._pause()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    @property
    def ended(self) -> bool:
        return self._ended

    async def read(self) -> bytes:
        while not self._buf:
            if self._ended:
                return b""
            self._ready.clear()
            await self._ready.wait()
        buf = self._buf
        if len(buf) <= READ_SIZE:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:READ_SIZE])
            del buf[:READ_SIZE]
        if self._paused and len(buf) < RESUME_BELOW and not self._ended:
            self._paused = False
            self._resume()
        return data


# -- client frames ---------------------------------------------------------------------------------
class InputFrame(BaseModel):
    data: str = Field(max_length=MAX_FRAME_CHARS)


class ResizeFrame(BaseModel):
    cols: int = Field(ge=1, le=MAX_SIZE, strict=True)
    rows: int = Field(ge=1, le=MAX_SIZE, strict=True)


class PingFrame(BaseModel):
    pass


@dataclass
class _Session:
    ctx: RelayContext
    backend: TerminalBackend
    replies: list[dict[str, Any]] = field(default_factory=list)


FRAMES: HandlerTable[_Session] = HandlerTable(max_frame_chars=MAX_FRAME_CHARS)


@FRAMES.handler("input", InputFrame)
async def _input(session: _Session, frame: InputFrame) -> None:
    data = frame.data.encode("utf-8", "replace")  # a lone surrogate from JSON becomes "?"
    session.ctx.bytes_in += len(data)
    await session.backend.write(data)


@FRAMES.handler("resize", ResizeFrame)
async def _resize(session: _Session, frame: ResizeFrame) -> None:
    session.backend.resize(frame.cols, frame.rows)


@FRAMES.handler("ping", PingFrame)
async def _ping(session: _Session, frame: PingFrame) -> None:
    session.replies.append({"type": "pong"})


# -- the session -----------------------------------------------------------------------------------
def output_frame(text: str) -> str:
    """``{"type":"output","data":...}`` without building a dict: the one frame sent per chunk."""
    return '{"type":"output","data":' + _encode_string(text) + "}"


async def fail(ctx: RelayContext, message: str, code: int = CLOSE_BACKEND_FAILED) -> None:
    """Tell the browser why in an error frame, then close (1011 by default: the backend failed)."""
    ctx.close_reason = message
    with contextlib.suppress(Exception):
        await ctx.websocket.send_text(json.dumps({"type": "error", "message": message}))
        await ctx.websocket.close(code, message[:120])


async def _pump_output(ctx: RelayContext, backend: TerminalBackend) -> None:
    """Backend -> browser. Returns when the backend ended; raises when the browser is gone."""
    send = ctx.websocket.send_text
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # keeps split characters whole
    while True:
        try:
            data = await backend.read()
        except OSError as exc:
            raise BackendFailed(str(exc) or type(exc).__name__) from exc
        if not data:
            text = decoder.decode(b"", final=True)
            if text:
                await send(output_frame(text))
            return
        ctx.bytes_out += len(data)
        text = decoder.decode(data)
        if text:
            await send(output_frame(text))


async def _pump_input(ctx: RelayContext, backend: TerminalBackend) -> None:
    """Browser -> backend, one frame at a time. Returns when the browser left."""
    ws = ctx.websocket
    session = _Session(ctx, backend)
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            session.replies.append({"type": "error", "message": "Send JSON text frames, not binary ones"})
        else:
            await FRAMES.dispatch(session, text, session.replies.append)
        while session.replies:
            await ws.send_text(json.dumps(session.replies.pop(0)))


async def run_terminal(ctx: RelayContext, backend: TerminalBackend) -> None:
    """Relay until either side ends, then end the other: the backend is closed when the browser
    leaves, and the WebSocket closed (1000, "session ended") when the shell exits."""
    output = asyncio.create_task(_pump_output(ctx, backend), name="terminal-output")
    inbound = asyncio.create_task(_pump_input(ctx, backend), name="terminal-input")
    try:
        done, _ = await asyncio.wait({output, inbound}, return_when=asyncio.FIRST_COMPLETED)
        if output in done and output.exception() is None:
            ctx.close_reason = "session ended"
            inbound.cancel()
            with contextlib.suppress(Exception):
                await ctx.websocket.close(1000, "session ended")
        elif inbound in done and inbound.exception() is None:
            ctx.close_reason = "browser closed"
        else:
            failed = output if output in done else inbound
            error = failed.exception()
            if isinstance(error, BackendFailed):
                await fail(ctx, f"The terminal backend failed: {error}")
            else:  # the browser vanished mid-send (or a bug): nothing left to tell it
                log.debug("terminal relay stopped by %r", error)
                ctx.close_reason = "browser gone"
    finally:
        for task in (output, inbound):
            task.cancel()
        for task in (output, inbound):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(backend.close(), CLOSE_GRACE)
