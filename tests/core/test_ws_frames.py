"""WebSocket frames written straight to the socket (``portal.core.ws_protocol``) and the outbox.

- :func:`text_frame` against the websockets library's own serialisation (7/16/64-bit lengths);
- through the real portal: frames of every length class arrive intact (a 64-bit one via history);
- through an in-process uvicorn with the portal's protocol (direct writes) and with plain uvicorn
  or negotiated permessage-deflate (the ASGI writer-task fallback): the same frames arrive, and a
  client that stops reading is closed with 1013 without holding up the others.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from portal.core.ws import CLOSE_TOO_SLOW, Outbox, text_frame
from portal.core.ws_protocol import DIRECT_EXTENSION, PortalWebSocketProtocol, frame_payload
from tests import aio
from tests.chat.conftest import create_channel
from tests.chat.wsclient import connect
from tests.conftest import UserClient
from tests.portal_server import PortalServer

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 200_000]


# -- text_frame ----------------------------------------------------------------------------------------
def _parse(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
    else:
        raise AssertionError("frame incomplete")
    return parsed


@pytest.mark.parametrize("size", SIZES)
def test_text_frame_matches_websockets_serialisation(size: int) -> None:
    data = (b"x" * size)[:size]
    frame = text_frame(data)
    assert frame == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
    parsed = _parse(frame)
    assert (parsed.opcode, parsed.fin, bytes(parsed.data)) == (Opcode.TEXT, True, data)
    assert frame_payload(frame) == data
    header = {0: 2, 1: 2, 125: 2, 126: 4, 127: 4, 65535: 4}.get(size, 10)
    assert len(frame) == header + size


def test_text_frame_length_counts_bytes_not_characters() -> None:
    data = ("é🚀" * 20_000).encode()  # 40,000 characters, 120,000 bytes: a 64-bit length
    assert _parse(text_frame(data)).data == data


# -- through the portal --------------------------------------------------------------------------------
def test_long_frames_arrive_intact_through_the_portal(
    portal: PortalServer, make_user: Callable[..., UserClient], root: UserClient
) -> None:
    name = create_channel(root)["name"]
    alice, bob = make_user(), make_user()
    a = connect(portal.base_url, alice.token)
    b = connect(portal.base_url, bob.token)
    try:
        a.join(name)
        b.join(name)
        # the client offers permessage-deflate; `portal serve` turns it off (frames are encoded once for all)
        assert b.conn.response is not None and "Sec-WebSocket-Extensions" not in b.conn.response.headers
        b.ping()  # a frame under 126 bytes
        texts = [f"{i} é" + "🚀" * 3990 for i in range(5)]  # about 4,000 characters, 16 KB each
        for text in texts:
            a.send_json({"type": "message", "channel": name, "message": text})
            got = b.recv_until("message", 10, message=text)  # 16-bit lengths
            assert got["message"] == text
        late = connect(portal.base_url, bob.token)
        try:
            history = late.join(name)["history"]  # five of them in one frame: a 64-bit length
            assert [m["message"] for m in history["messages"]][-5:] == texts
            assert len(json.dumps(history, ensure_ascii=False).encode()) > 65535
            late.ping()
        finally:
            late.close()
    finally:
        a.close()
        b.close()


# -- in-process uvicorn: direct path and ASGI fallback -------------------------------------------------
class EchoApp:
    """Greets with whether the direct path is in use, then obeys JSON commands:
    ``{"sizes": [...]}`` sends one ``x`` frame per size to the caller (text and frame API in turn);
    ``{"broadcast": n, "size": s}`` sends n frames of about s bytes to every socket, each encoded once."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.outboxes: list[Outbox] = []
        self.closed_codes: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        outbox = Outbox(ws, max_pending=self.max_pending)
        outbox.start()
        self.outboxes.append(outbox)
        outbox.send({"direct": outbox.direct, "extension": DIRECT_EXTENSION in scope.get("extensions", {})})
        try:
            while not outbox.closed:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                command = json.loads(message["text"])
                if "sizes" in command:
                    for i, size in enumerate(command["sizes"]):
                        text = "x" * size
                        if i % 2:
                            outbox.send_frame(text_frame(text.encode()))
                        else:
                            outbox.send_text(text)
                    outbox.send_text("done")
                elif "broadcast" in command:
                    for i in range(command["broadcast"]):
                        # random base64: about as large compressed, when deflate is negotiated
                        noise = base64.b64encode(os.urandom(command["size"] * 3 // 4)).decode()
                        frame = text_frame(f"{i}:{noise}".encode())
                        for box in list(self.outboxes):
                            box.send_frame(frame)
                        await asyncio.sleep(0.001)  # paced: the fast client keeps up
        finally:
            self.outboxes.remove(outbox)
            await outbox.stop()


@asynccontextmanager
async def uvicorn_server(app: EchoApp, protocol: type[asyncio.Protocol], deflate: bool) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, ws=protocol, ws_per_message_deflate=deflate, lifespan="off", log_level="warning", ws_max_size=1 << 20
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


# (protocol, server deflate, client offers deflate) -> direct path expected
SETUPS: dict[str, tuple[type[asyncio.Protocol], bool, bool, bool]] = {
    "portal protocol": (PortalWebSocketProtocol, False, True, True),
    "portal protocol, deflate offered but not negotiated": (PortalWebSocketProtocol, True, False, True),
    "portal protocol, deflate negotiated": (PortalWebSocketProtocol, True, True, False),
    "plain uvicorn": (WebSocketsSansIOProtocol, False, False, False),
}


async def _open(url: str, deflate: bool, **kw: Any) -> tuple[ClientConnection, dict[str, Any]]:
    conn = await ws_connect(url, compression="deflate" if deflate else None, max_size=1 << 20, **kw)
    hello = json.loads(await conn.recv())
    return conn, hello


@pytest.mark.parametrize("setup", list(SETUPS))
def test_outbox_frames_of_every_length_arrive_in_order(setup: str) -> None:
    protocol, server_deflate, client_deflate, direct = SETUPS[setup]

    async def run() -> None:
        async with uvicorn_server(EchoApp(max_pending=1000), protocol, server_deflate) as url:
            conn, hello = await _open(url, client_deflate)
            assert hello == {"direct": direct, "extension": direct}
            await conn.send(json.dumps({"sizes": SIZES}))
            for size in SIZES:
                got = await asyncio.wait_for(conn.recv(), 10)
                assert got == "x" * size
            assert await conn.recv() == "done"
            await conn.close()

    aio.run(run())


@pytest.mark.parametrize("setup", list(SETUPS))
def test_a_client_that_stops_reading_is_closed_with_1013_and_holds_up_no_one(setup: str) -> None:
    protocol, server_deflate, client_deflate, direct = SETUPS[setup]
    count, size = 600, 64 * 1024  # almost 40 MB per client: far beyond what the socket buffers absorb

    async def run() -> None:
        app = EchoApp(max_pending=20)
        async with uvicorn_server(app, protocol, server_deflate) as url:
            # max_queue=1: the slow client's library stops reading once one message waits unread
            slow, hello = await _open(url, client_deflate, max_queue=1)
            assert hello["direct"] is direct
            fast, _ = await _open(url, client_deflate)
            await fast.send(json.dumps({"broadcast": count, "size": size}))
            for i in range(count):  # the fast client gets everything while the slow one reads nothing
                got = await asyncio.wait_for(fast.recv(), 20)
                assert got.startswith(f"{i}:"), got[:20]
            assert fast.close_code is None
            received = 0
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(slow.recv(), 20)
                    received += 1
            assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_SLOW, closed.value
            assert closed.value.rcvd.reason == "client too slow: outgoing queue full"
            assert 0 < received < count
            await fast.send(json.dumps({"sizes": [3]}))  # the fast client is still served
            assert await asyncio.wait_for(fast.recv(), 10) == "xxx"
            await fast.close()

    aio.run(run())
