"""uvicorn's sans-I/O WebSocket protocol with a direct write path for pre-encoded frames.

Chat fan-out sends the same event to every socket in a channel. Through ASGI each copy costs a
``websocket.send`` message through every middleware's ``send`` wrapper, uvicorn's checks, a
fresh websockets framing and, with the portal's bounded outboxes, one writer task woken per
socket. :class:`PortalWebSocketProtocol` puts a :class:`DirectWriter` in the connection's scope
(``scope["extensions"]["portal.ws.direct"]``) that writes an already framed server message (see
:func:`text_frame`: built once per event, the same bytes for every recipient) straight to the
socket's transport, synchronously. It reports back-pressure (the transport paused writing: the
caller queues and drains from the resume callback) and refuses once the connection is closing.
Everything else (handshake, reading, pings, the close handshake) stays uvicorn's.

Server frames are never masked and uvicorn never fragments, so a frame written this way is
indistinguishable from one uvicorn would have sent, and it does not disturb the websockets
state machine (which only tracks the close handshake and fragmentation of what it sends).

Compression: the extension is only offered when no permessage-deflate was negotiated on the
connection, since a compressed stream keeps per-connection compressor state: a frame cannot be
encoded once for many sockets. ``portal serve`` also turns permessage-deflate off altogether
(``ws_per_message_deflate=False``): besides preventing the encode-once fan-out it costs tens of
KB of zlib state per idle connection, for small JSON frames that hardly compress. Under another
ASGI server, or with deflate negotiated, the portal falls back to plain ASGI sends (see
:class:`portal.core.ws.Outbox`), with the same behaviour.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

DIRECT_EXTENSION = "portal.ws.direct"

_FIN_TEXT = 0x81  # FIN + opcode 0x1 (text)
_FIN_BINARY = 0x82  # FIN + opcode 0x2 (binary)
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def _server_frame(first_byte: int, data: bytes) -> bytes:
    """A complete, unmasked RFC 6455 server frame: one header (7, 16 or 64-bit length), then ``data``."""
    n = len(data)
    if n < 126:
        return bytes((first_byte, n)) + data
    if n < 65536:
        return _HEAD16.pack(first_byte, 126, n) + data
    return _HEAD64.pack(first_byte, 127, n) + data


def text_frame(data: bytes) -> bytes:
    """A whole server text message carrying ``data`` (UTF-8)."""
    return _server_frame(_FIN_TEXT, data)


def binary_frame(data: bytes) -> bytes:
    """A whole server binary message carrying ``data``."""
    return _server_frame(_FIN_BINARY, data)


def frame_payload(frame: bytes) -> bytes:
    """The payload of a frame built by :func:`text_frame`."""
    n = frame[1] & 0x7F
    return frame[2 + (2 if n == 126 else 8 if n == 127 else 0) :]


class WriterClosed(Exception):
    """The connection is closing or gone: nothing more can be written to it."""


class DirectWriter:
    """Synchronous writes of pre-encoded frames to one WebSocket connection."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: PortalWebSocketProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> bool:
        """Write a complete server frame now. False when the transport is paused (flow control:
        queue it and retry from the resume callback); :class:`WriterClosed` once the connection
        is closing (a close was sent or received, or it is lost) or not open yet."""
        p = self._protocol
        if p.close_sent or p.disconnected or not p.handshake_complete or p.initial_response is not None:
            raise WriterClosed
        transport = p.transport
        if transport.is_closing() or p.conn.state is not State.OPEN:
            raise WriterClosed
        if p.write_paused:
            return False
        transport.write(frame)
        return True

    @property
    def paused(self) -> bool:
        return self._protocol.write_paused

    def on_resume(self, callback: Callable[[], None] | None) -> None:
        """Run ``callback`` whenever the transport resumes writing (one callback; None removes it)."""
        self._protocol.resume_callback = callback


class PortalWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` plus the ``portal.ws.direct`` scope extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_paused = False
        self.resume_callback: Callable[[], None] | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The ASGI task created above starts on the next loop iteration, so the scope can still
        # be completed here. No extension when the handshake was refused or deflate negotiated.
        if self.response.status_code != 101 or self.conn.extensions:
            return
        if "Sec-WebSocket-Extensions" in self.response.headers:
            return
        self.scope["extensions"][DIRECT_EXTENSION] = DirectWriter(self)  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.write_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        super().resume_writing()
        callback = self.resume_callback
        if callback is not None:
            try:
                callback()
            except Exception:
                self.logger.exception("WebSocket resume callback failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_callback = None  # asyncio never resumes a lost transport; drop the app's reference
        super().connection_lost(exc)
