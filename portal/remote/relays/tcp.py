"""The TCP relay: binary WebSocket frames to and from a TCP backend (VNC, RDP, SPICE, TCP tunnels,
data stores), compatible with noVNC and other websockify clients (``binary`` subprotocol).

Memory stays bounded by flow control rather than by buffers:

- backend → browser: the backend socket is an asyncio Protocol. Each chunk the loop reads (up to
  256 KiB under uvloop) becomes one binary frame written straight to the WebSocket's transport
  through the ``portal.ws.direct`` extension (:mod:`portal.core.ws_protocol`), without a task
  switch or ASGI round. When that transport's buffer passes its high-water mark, reading from the
  backend pauses until the browser has taken the data. Without the extension (another ASGI
  server) a writer task sends the chunks through ASGI and reading pauses while a few are queued.
- browser → backend: uvicorn stops reading the browser's socket after each message until the app
  asks for the next; the relay asks only once the backend's write buffer is below its high-water
  mark.

A ``vnc`` connection with a stored password is logged in to by the relay itself
(:mod:`portal.remote.relays.rfb`), so the password never reaches the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from starlette.websockets import WebSocket, WebSocketState

from portal.core.ws_protocol import DIRECT_EXTENSION, DirectWriter, WriterClosed, binary_frame
from portal.remote.plugins.base import Relay
from portal.remote.relays import rfb
from portal.remote.relays.registry import relay
from portal.remote.relays.session import CLOSE_BACKEND_FAILED, RelayContext

CONNECT_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 15.0  # the RFB login to the VNC server, and separately the viewer's side of it
FLUSH_TIMEOUT = 10.0  # after the backend closed: how long the browser gets to take what is left
CLOSE_TIMEOUT = 5.0
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
HANDSHAKE_BUFFER = 64 * 1024
ASGI_QUEUE_CHUNKS = 4  # without direct writes: chunks queued for the writer task before reading pauses


class Backend(asyncio.Protocol):
    """The TCP side of a relay. Until :meth:`start` it buffers what the server sends, for
    :meth:`read_exactly` (protocol handshakes done by the relay); afterwards every chunk goes to
    the sink as soon as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error = ""
        self._buffer = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._sink: Callable[[bytes], None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio callbacks ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio and uvloop set it already; small RFB and tunnel messages must not wait
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        sink = self._sink
        if sink is not None:
            sink(data)
            return
        self._buffer += data
        if len(self._buffer) > HANDSHAKE_BUFFER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None  # close our side too: a WebSocket has no half-close

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.error:
            self.error = describe_error(exc)
        self._eof = True
        self._wake()
        self._write_paused = False
        self._release_drain()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain()

    # -- for the relay --------------------------------------------------------------------------
    @property
    def write_paused(self) -> bool:
        return self._write_paused

    async def drain(self) -> None:
        """Wait until the backend's write buffer is below its high-water mark (or the connection is gone)."""
        if not self._write_paused:
            return
        waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        await waiter

    async def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if self._eof:
                raise ConnectionResetError(self.error)
            if self.transport is not None:
                self.transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
        await self.drain()

    def start(self, sink: Callable[[bytes], None]) -> bytes:
        """Hand every further chunk to ``sink``; returns what was received but not read yet."""
        self._sink = sink
        left = bytes(self._buffer)
        self._buffer.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        return left

    def pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def close(self) -> None:
        """Close after what is buffered has been written: the server sees a clean EOF."""
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _release_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


async def close_websocket(ws: WebSocket, code: int, reason: str) -> None:
    """Close unless already closed; the reason is cut to the 123 bytes a close frame allows. A
    browser that stopped reading cannot hold the relay: the close waits at most CLOSE_TIMEOUT."""
    if ws.application_state != WebSocketState.CONNECTED:
        return
    clipped = reason.encode()[:123].decode("utf-8", "ignore")
    with contextlib.suppress(Exception):  # the browser may be gone already
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close(code, clipped)


async def fail(ctx: RelayContext, reason: str, code: int = CLOSE_BACKEND_FAILED) -> None:
    ctx.close_reason = reason
    await close_websocket(ctx.websocket, code, reason)


async def connect(ctx: RelayContext) -> Backend | None:
    """Open the backend connection (10 s), or close the WebSocket with 1011 and a reason."""
    target = ctx.target
    if target is None:
        await fail(ctx, "No target to relay to")
        return None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, backend = await loop.create_connection(Backend, target.address, target.port)
    except (OSError, TimeoutError) as exc:
        await fail(ctx, f"Cannot connect to {target.host}:{target.port}: {describe_error(exc)}")
        return None
    return backend


class _ViewerStream:
    """The browser's side of a relay-played RFB handshake, as a byte stream over binary messages."""

    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx
        self.buffer = bytearray()

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            message = await self.ctx.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise rfb.RfbFailure(f"the viewer left during the VNC handshake ({message.get('code', 1005)})")
            data = message.get("bytes")
            if data is None:
                raise rfb.RfbFailure("text frames are not supported: send binary frames")
            self.ctx.bytes_in += len(data)
            self.buffer += data
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def write(self, data: bytes) -> None:
        self.ctx.bytes_out += len(data)
        await self.ctx.websocket.send_bytes(data)


async def vnc_login(ctx: RelayContext, backend: Backend, password: str) -> bytes | None:
    """Log in to the VNC server with the stored password, then greet the browser as a server
    without authentication. Returns what the browser sent beyond its handshake (for the
    backend), or None after closing the WebSocket with the reason."""
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            minor = await rfb.login(backend, password)
    except TimeoutError:
        await fail(ctx, f"VNC server did not complete the handshake within {HANDSHAKE_TIMEOUT:.0f} s")
        return None
    except rfb.RfbFailure as exc:
        await fail(ctx, str(exc))
        return None
    except ConnectionError as exc:
        await fail(ctx, "VNC server closed the connection during the handshake" + (f" ({exc})" if str(exc) else ""))
        return None
    viewer = _ViewerStream(ctx)
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            await rfb.greet_browser(viewer, minor)
    except TimeoutError:
        await fail(ctx, "The viewer did not complete the VNC handshake in time", CLOSE_UNSUPPORTED)
        return None
    except rfb.RfbFailure as exc:
        await fail(ctx, str(exc), CLOSE_UNSUPPORTED)
        return None
    return bytes(viewer.buffer)


class Pump:
    """Copies bytes both ways until one side closes, then closes the other."""

    def __init__(self, ctx: RelayContext, backend: Backend) -> None:
        self.ctx = ctx
        self.ws = ctx.websocket
        self.backend = backend
        direct = (self.ws.scope.get("extensions") or {}).get(DIRECT_EXTENSION)
        self.direct: DirectWriter | None = direct if isinstance(direct, DirectWriter) else None
        self.pending: deque[bytes] = deque()  # frames (direct) or chunks (ASGI) not yet handed to the browser
        self.wakeup = asyncio.Event()  # something for the ASGI writer task, or the pending frames drained

    # -- backend → browser, direct ---------------------------------------------------------------
    def _to_browser_direct(self, data: bytes) -> None:
        self.ctx.bytes_out += len(data)
        frame = binary_frame(data)
        direct = self.direct
        assert direct is not None
        if not self.pending:
            try:
                if direct.write(frame):
                    if direct.paused:
                        self.backend.pause_reading()
                    return
            except WriterClosed:  # the browser is leaving: the reading side notices and cleans up
                self.backend.pause_reading()
                return
        self.pending.append(frame)
        self.backend.pause_reading()

    def _browser_resumed(self) -> None:
        direct, pending = self.direct, self.pending
        assert direct is not None
        try:
            while pending:
                if not direct.write(pending[0]):
                    return
                pending.popleft()
        except WriterClosed:
            pending.clear()
            self.wakeup.set()
            return
        self.wakeup.set()
        if not direct.paused:
            self.backend.resume_reading()

    # -- backend → browser, through ASGI ----------------------------------------------------------
    def _to_browser_queued(self, data: bytes) -> None:
        self.ctx.bytes_out += len(data)
        self.pending.append(data)
        if len(self.pending) >= ASGI_QUEUE_CHUNKS:
            self.backend.pause_reading()
        self.wakeup.set()

    async def _asgi_writer(self) -> None:
        """Sends queued chunks; returns once the backend is gone and everything was sent."""
        pending, wakeup, backend = self.pending, self.wakeup, self.backend
        while True:
            while pending:
                await self.ws.send_bytes(pending.popleft())
                if len(pending) < ASGI_QUEUE_CHUNKS:
                    backend.resume_reading()
            if backend.lost.done():
                return
            wakeup.clear()
            await wakeup.wait()

    # -- browser → backend ----------------------------------------------------------------------
    async def _from_browser(self) -> str:
        """Relays the browser's messages until it leaves; returns why it ended."""
        receive, backend, ctx = self.ws.receive, self.backend, self.ctx
        transport = backend.transport
        assert transport is not None
        while True:
            message: dict[str, Any] = await receive()  # type: ignore[assignment]
            if message["type"] != "websocket.receive":
                return f"browser closed ({message.get('code', 1005)})"
            data = message.get("bytes")
            if data is None:
                await close_websocket(self.ws, CLOSE_UNSUPPORTED, "Text frames are not supported: send binary frames")
                return "browser sent a text frame"
            ctx.bytes_in += len(data)
            if not transport.is_closing():
                transport.write(data)
                if backend.write_paused:
                    await backend.drain()

    # -- both -----------------------------------------------------------------------------------
    async def run(self, to_backend: bytes = b"") -> None:
        ctx, backend = self.ctx, self.backend
        backend_side: asyncio.Future[Any]
        writer: asyncio.Task[None] | None = None
        if self.direct is not None:
            self.direct.on_resume(self._browser_resumed)
            left = backend.start(self._to_browser_direct)
            backend_side = backend.lost
        else:
            left = backend.start(self._to_browser_queued)
            writer = asyncio.create_task(self._asgi_writer(), name="relay-to-browser")
            backend.lost.add_done_callback(lambda _: self.wakeup.set())
            backend_side = writer
        if left:
            backend.data_received(left)
        if to_backend and backend.transport is not None:
            ctx.bytes_in += len(to_backend)
            backend.transport.write(to_backend)
        browser = asyncio.create_task(self._from_browser(), name="relay-from-browser")
        try:
            either: set[asyncio.Future[Any]] = {browser, backend_side}
            done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if browser in done:
                failed = browser.exception()
                ctx.close_reason = "browser connection lost" if failed is not None else browser.result()
                backend.close()
                return
            if writer is not None and writer.exception() is not None:  # the browser went away mid-send
                ctx.close_reason = "browser connection lost"
                backend.close()
                return
            await self._flush()
            ctx.close_reason = "backend closed the connection" + (f": {backend.error}" if backend.error else "")
            await close_websocket(self.ws, CLOSE_NORMAL, "backend closed the connection")
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(browser, FLUSH_TIMEOUT)
        finally:
            if self.direct is not None:
                self.direct.on_resume(None)
            for task in (browser, writer):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            backend.close()

    async def _flush(self) -> None:
        """Direct path: give frames still waiting for the browser a bounded time to be written."""
        deadline = asyncio.get_running_loop().time() + FLUSH_TIMEOUT
        while self.pending and self.direct is not None:
            self.wakeup.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), left)


@relay(Relay.TCP)
async def run(ctx: RelayContext) -> None:
    backend = await connect(ctx)
    if backend is None:
        return
    try:
        to_backend = b""
        password = ctx.config.get("password") if ctx.plugin.type == "vnc" else None
        if password:
            login = await vnc_login(ctx, backend, str(password))
            if login is None:
                return
            to_backend = login
        await Pump(ctx, backend).run(to_backend)
    finally:
        backend.close()
