"""The load generator of ``bench/chat_fanout.py``: WebSocket clients in worker processes, driven over a pipe.

Each worker process (``worker_main``) owns a share of the benchmark's connections (global id ``gid``; worker
``gid % procs``) and runs them on one uvloop event loop. The orchestrator sends it commands (``connect``,
``latency``, ``flood``, ``close``, ``exit``) as dicts and gets one dict back per command.

Every benchmark message is a chat ``message`` frame whose text is ``fan:<phase>:<sender gid>:<seq>:<t_ns>``,
``t_ns`` being ``time.perf_counter_ns()`` taken just before the frame is written. ``perf_counter`` is
``CLOCK_MONOTONIC`` on Linux, one clock for every process of the machine, so a receiver in another worker process
computes the delivery latency as its own ``perf_counter_ns()`` at arrival minus ``t_ns``. Receivers recognise a
delivery by a text frame that starts with ``{"type":"message"`` and carries that tag: the portal renders the
message as such a JSON object, and the baseline relays the frame the sender sent, which is the same JSON.

Two client implementations (``--client``):

- ``raw`` (default): a minimal RFC 6455 client on ``asyncio.Protocol`` (HTTP/1.1 upgrade, checks the
  ``Sec-WebSocket-Accept``, no extension offered, so no compression; masked client frames with
  ``websockets``' C ``apply_mask``; answers pings; handles close and fragmented messages). It parses frame headers
  and the tag straight out of the receive buffer: about 20-25 us of client CPU per delivery on the 2-core machine,
  much of it per-socket kernel and event-loop work (each delivery arrives on its own connection).
- ``websockets``: ``websockets.asyncio.client.connect`` (compression=None), one reader task per connection: about
  37 us per delivery, so its clients already need more than one core at 20 messages/s to 1,000 clients and would
  take CPU from the server they measure (``--client websockets`` to compare; see bench/README.md).
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from websockets.utils import accept_key

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

MESSAGE_PREFIX = b'{"type":"message"'
TAG_B = re.compile(rb"fan:(\d+):(\d+):(\d+):(\d+)")
TAG_S = re.compile(r"fan:(\d+):(\d+):(\d+):(\d+)")
TYPE_B = re.compile(rb'^\{"type":"([a-z_]+)"')
MAX_FRAME = 8 * 1024 * 1024
MAX_ERRORS_KEPT = 20
JOIN_FRAMES = ("channel_info", "history", "pinned_messages", "users")


def message_frame(channel: str, text: str) -> str:
    """The chat frame a sender sends (compact JSON, so the baseline's relay starts like the portal's render)."""
    return json.dumps({"type": "message", "channel": channel, "message": text}, separators=(",", ":"))


class ClientError(Exception):
    pass


# -- the per-worker receive state ---------------------------------------------------------------------------------
class Sink:
    """What the connections of one worker report to: deliveries of the current phase, errors, closes."""

    def __init__(self) -> None:
        self.phase = -1
        self.on_delivery: Callable[[Client, int, int, int, int], None] | None = None
        self.errors: list[str] = []
        self.error_count = 0
        self.closed: Counter[int] = Counter()
        self.foreign = 0  # tagged deliveries of another phase (stragglers)

    def error(self, text: str) -> None:
        """An error frame from the server (counted: it makes the run invalid) or a client-side failure."""
        self.error_count += 1
        self.note(text)

    def note(self, text: str) -> None:
        """Something worth showing (e.g. why the server closed a connection) that is counted elsewhere."""
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(text[:300])


class Client:
    """The interface both implementations offer."""

    gid: int
    close_code: int | None
    channel: str

    def send_text(self, text: str) -> None:
        raise NotImplementedError

    seen: set[str]

    async def wait_frames(self, types: tuple[str, ...], timeout: float) -> None:
        raise NotImplementedError

    async def close(self, timeout: float) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        raise NotImplementedError


# -- the raw client -----------------------------------------------------------------------------------------------
class RawClient(asyncio.Protocol, Client):
    def __init__(self, gid: int, sink: Sink, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        self.gid = gid
        self.sink = sink
        self.close_code = None
        self.channel = "general"
        self._host, self._port, self._path, self._headers = host, port, path, headers
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._open = False
        self._fragments: bytearray | None = None
        self._fragment_op = 0
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.seen: set[str] = set()
        self._want: set[str] = set()
        self._want_done: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes
        lines = [
            f"GET {self._path} HTTP/1.1",
            f"Host: {self._host}:{self._port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in self._headers.items()),
        ]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        if self.close_code is None:
            self.close_code = 1006
        self.sink.closed[self.close_code] += 1
        for fut in (self.opened, self.lost, self._want_done):
            if fut is not None and not fut.done():
                if fut is self.lost:
                    fut.set_result(None)
                else:
                    fut.set_exception(ClientError(f"connection lost (code {self.close_code})"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self._fail("oversized handshake response")
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            status, _, rest = head.partition("\r\n")
            fields = {}
            for line in rest.split("\r\n"):
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if not status.startswith("HTTP/1.1 101"):
                self._fail(f"handshake refused: {status}")
                return
            if fields.get("sec-websocket-accept") != accept_key(self._key):
                self._fail("bad Sec-WebSocket-Accept")
                return
            if "sec-websocket-extensions" in fields:
                self._fail(f"unexpected extension {fields['sec-websocket-extensions']!r}")
                return
            self._open = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buf = self._buf
        size = len(buf)
        pos = 0
        now = time.perf_counter_ns()
        sink = self.sink
        while size - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1]
            if length & 0x80:
                self._fail("masked frame from the server")
                return
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
                if length > MAX_FRAME:
                    self._fail("frame too large")
                    return
            end = start + length
            if end > size:
                break
            pos = end
            opcode = b0 & 0x0F
            if opcode == 1 and b0 & 0x80:  # a whole text frame: the hot path
                if buf.startswith(MESSAGE_PREFIX, start):
                    match = TAG_B.search(buf, start, end)
                    if match is not None:
                        phase, sender, seq, sent = (int(g) for g in match.groups())
                        if phase == sink.phase and sink.on_delivery is not None:
                            sink.on_delivery(self, sender, seq, sent, now)
                        else:
                            sink.foreign += 1
                        continue
                self._other(bytes(buf[start:end]))
            elif opcode in (0, 1, 2):
                self._fragment(b0, opcode, bytes(buf[start:end]), now)
            elif opcode == 9:  # ping: answer with the same payload
                self._send_frame(0xA, bytes(buf[start:end]))
            elif opcode == 8:
                payload = bytes(buf[start:end])
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if self.close_code != 1000:
                    reason = payload[2:].decode(errors="replace")
                    self.sink.note(f"gid {self.gid}: closed by the server: {self.close_code} {reason!r}")
                if self._transport is not None:
                    self._send_frame(0x8, payload[:2])
                    self._transport.close()
                del buf[:pos]
                return
        if pos:
            del buf[:pos]

    def _fragment(self, b0: int, opcode: int, payload: bytes, now: int) -> None:
        if opcode != 0:
            self._fragments, self._fragment_op = bytearray(payload), opcode
        elif self._fragments is not None:
            self._fragments += payload
        else:
            self._fail("continuation frame without a start")
            return
        if b0 & 0x80 and self._fragments is not None:
            whole, op = bytes(self._fragments), self._fragment_op
            self._fragments = None
            if op == 1:  # re-enter the hot path's logic on the assembled message
                match = TAG_B.search(whole) if whole.startswith(MESSAGE_PREFIX) else None
                if match is not None:
                    phase, sender, seq, sent = (int(g) for g in match.groups())
                    if phase == self.sink.phase and self.sink.on_delivery is not None:
                        self.sink.on_delivery(self, sender, seq, sent, now)
                    return
                self._other(whole)

    def _other(self, payload: bytes) -> None:
        """A frame that is not a benchmark delivery: join answers, presence, errors."""
        match = TYPE_B.match(payload)
        kind = match.group(1).decode() if match else "?"
        if kind == "error":
            self.sink.error(f"gid {self.gid}: {payload.decode(errors='replace')}")
        self.seen.add(kind)
        if kind in self._want:
            self._want.discard(kind)
            if not self._want and self._want_done is not None and not self._want_done.done():
                self._want_done.set_result(None)

    def _fail(self, reason: str) -> None:
        self.sink.error(f"gid {self.gid}: {reason}")
        if not self.opened.done():
            self.opened.set_exception(ClientError(reason))
        if self._transport is not None:
            self._transport.abort()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self._transport.write(header + mask + apply_mask(payload, mask))

    # Client
    @property
    def is_open(self) -> bool:
        return self._open and self._transport is not None and not self._transport.is_closing()

    def send_text(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    async def wait_frames(self, types: tuple[str, ...], timeout: float) -> None:
        """Wait until a frame of each type has arrived (since the connection opened)."""
        if not self.is_open:
            raise ClientError(f"connection closed (code {self.close_code})")
        self._want = set(types) - self.seen
        if not self._want:
            return
        self._want_done = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._want_done, timeout)
        finally:
            self._want, self._want_done = set(), None

    async def close(self, timeout: float) -> None:
        if self._transport is None:
            return
        if self.is_open:
            self._send_frame(0x8, (1000).to_bytes(2, "big"))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), timeout)
        self.abort()

    def abort(self) -> None:
        if self._transport is not None and not self.lost.done():
            self._transport.abort()


async def open_raw(
    gid: int, sink: Sink, host: str, port: int, path: str, headers: dict[str, str], timeout: float
) -> RawClient:
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: RawClient(gid, sink, host, port, path, headers), host, port), timeout
    )
    try:
        await asyncio.wait_for(asyncio.shield(proto.opened), timeout)
    except BaseException:
        proto.abort()
        raise
    return proto


# -- the websockets-library client --------------------------------------------------------------------------------
class WebsocketsClient(Client):
    def __init__(self, gid: int, sink: Sink, ws: Any) -> None:
        self.gid = gid
        self.sink = sink
        self.ws = ws
        self.close_code = None
        self.channel = "general"
        self.seen: set[str] = set()
        self._want: set[str] = set()
        self._want_done: asyncio.Future[None] | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        sink = self.sink
        try:
            async for message in self.ws:
                now = time.perf_counter_ns()
                if isinstance(message, str):
                    if message.startswith('{"type":"message"'):
                        match = TAG_S.search(message)
                        if match is not None:
                            phase, sender, seq, sent = (int(g) for g in match.groups())
                            if phase == sink.phase and sink.on_delivery is not None:
                                sink.on_delivery(self, sender, seq, sent, now)
                            else:
                                sink.foreign += 1
                            continue
                    self._other(message)
        except Exception as exc:  # any failure ends this connection; recorded below
            sink.note(f"gid {self.gid}: reader: {exc!r}")
        finally:
            rcvd = getattr(self.ws.protocol, "close_rcvd", None)
            self.close_code = rcvd.code if rcvd is not None else 1006
            if rcvd is not None and rcvd.code != 1000:
                sink.note(f"gid {self.gid}: closed by the server: {rcvd.code} {rcvd.reason!r}")
            sink.closed[self.close_code] += 1
            if self._want_done is not None and not self._want_done.done():
                self._want_done.set_exception(ClientError(f"connection closed (code {self.close_code})"))

    def _other(self, message: str) -> None:
        match = TYPE_B.match(message.encode()[:64])
        kind = match.group(1).decode() if match else "?"
        if kind == "error":
            self.sink.error(f"gid {self.gid}: {message}")
        self.seen.add(kind)
        if kind in self._want:
            self._want.discard(kind)
            if not self._want and self._want_done is not None and not self._want_done.done():
                self._want_done.set_result(None)

    @property
    def is_open(self) -> bool:
        from websockets.protocol import State

        return bool(self.ws.protocol.state is State.OPEN)

    def send_text(self, text: str) -> None:
        task = asyncio.ensure_future(self.ws.send(text))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def wait_frames(self, types: tuple[str, ...], timeout: float) -> None:
        """Wait until a frame of each type has arrived (since the connection opened)."""
        if not self.is_open:
            raise ClientError(f"connection closed (code {self.close_code})")
        self._want = set(types) - self.seen
        if not self._want:
            return
        self._want_done = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._want_done, timeout)
        finally:
            self._want, self._want_done = set(), None

    async def close(self, timeout: float) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), timeout)
        self.abort()

    def abort(self) -> None:
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()
        if not self.reader.done():
            self.reader.cancel()


async def open_websockets(
    gid: int, sink: Sink, host: str, port: int, path: str, headers: dict[str, str], timeout: float
) -> WebsocketsClient:
    from websockets.asyncio.client import connect

    ws = await connect(
        f"ws://{host}:{port}{path}",
        additional_headers=headers,
        compression=None,
        open_timeout=timeout,
        close_timeout=2,
        ping_interval=None,  # the servers ping; the library answers their pings by itself
        max_size=MAX_FRAME,
        max_queue=None,  # no receive-side flow control: the benchmark reads as fast as it can
        proxy=None,
    )
    return WebsocketsClient(gid, sink, ws)


# -- the worker ---------------------------------------------------------------------------------------------------
def _cpu() -> float:
    t = os.times()
    return t.user + t.system


class Worker:
    def __init__(self, wid: int, pipe: Connection) -> None:
        self.wid = wid
        self.pipe = pipe
        self.sink = Sink()
        self.groups: dict[str, dict[int, Client]] = {}  # connection group (one per server) -> gid -> client

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                command = await loop.run_in_executor(None, self.pipe.recv)
            except (EOFError, OSError):  # the orchestrator is gone: stop
                await self.close_all({"timeout": 1.0})
                return
            name = command.get("cmd")
            try:
                if name == "exit":
                    await self.close_all({"timeout": 2.0})
                    self.pipe.send({"ok": True})
                    return
                handler = {
                    "connect": self.connect,
                    "latency": self.latency,
                    "flood": self.flood,
                    "close": self.close_all,
                }[name]
                result = await handler(command)
            except Exception as exc:  # reported to the orchestrator, which stops the run
                result = {"fatal": f"worker {self.wid}: {name}: {exc!r}"}
            self.pipe.send(result)

    def _reset_phase(self, phase: int) -> None:
        self.sink.phase = phase
        self.sink.errors, self.sink.error_count = [], 0
        self.sink.closed = Counter()
        self.sink.foreign = 0

    # connect ------------------------------------------------------------------------------------------------------
    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Open ``cmd["conns"]`` (gid, headers); with ``join``: await ``connected``, join, await the answers."""
        self._reset_phase(-1)
        group = self.groups.setdefault(cmd["group"], {})
        opener = open_raw if cmd["client"] == "raw" else open_websockets
        host, port, path, join = cmd["host"], int(cmd["port"]), cmd["path"], cmd.get("join")
        timeout = float(cmd["timeout"])
        deadline = time.monotonic() + float(cmd["deadline_s"])
        gate = asyncio.Semaphore(int(cmd["concurrency"]))
        failures: list[str] = []
        started = time.perf_counter()

        async def one(gid: int, headers: dict[str, str]) -> None:
            async with gate:
                if time.monotonic() > deadline:
                    failures.append(f"gid {gid}: out of time")
                    return
                try:
                    client = await opener(gid, self.sink, host, port, path, headers, timeout)
                except Exception as exc:  # counted as a failed connection
                    failures.append(f"gid {gid}: open: {exc!r}")
                    return
                group[gid] = client
                if join:
                    try:
                        await client.wait_frames(("connected",), timeout)
                        client.channel = join
                        client.send_text(json.dumps({"type": "join", "channel": join}))
                        await client.wait_frames(JOIN_FRAMES, timeout)
                    except Exception as exc:
                        failures.append(f"gid {gid}: join: {exc!r}")

        await asyncio.gather(*(one(gid, headers) for gid, headers in cmd["conns"]))
        return {
            "connected": sum(1 for c in group.values() if c.is_open),
            "failures": failures[:MAX_ERRORS_KEPT],
            "failed": len(failures),
            "seconds": time.perf_counter() - started,
            "errors": self.sink.errors,
        }

    # latency ------------------------------------------------------------------------------------------------------
    async def latency(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send this worker's share of ``count`` messages at ``rate``/s from ``start_ns``; record every delivery."""
        phase, count, rate = int(cmd["phase"]), int(cmd["count"]), float(cmd["rate"])
        start_ns, drain_s = int(cmd["start_ns"]), float(cmd["drain_s"])
        self._reset_phase(phase)
        clients = dict(self.groups.get(cmd["group"], {}))
        expected = count * len(clients)
        marks = {gid: bytearray(count) for gid in clients}
        per_message = array.array("l", bytes(8 * count))
        latencies = array.array("q")
        state = {"received": 0, "dups": 0, "bad": 0}
        done = asyncio.get_running_loop().create_future()

        def on_delivery(client: Client, sender: int, seq: int, sent: int, now: int) -> None:
            mark = marks.get(client.gid)
            if mark is None or seq >= count:
                state["bad"] += 1
                return
            if mark[seq]:
                state["dups"] += 1
                return
            mark[seq] = 1
            per_message[seq] += 1
            latencies.append(now - sent)
            state["received"] += 1
            if state["received"] == expected and not done.done():
                done.set_result(None)

        self.sink.on_delivery = on_delivery
        lateness: list[int] = []
        sent = 0
        cpu0, t0 = _cpu(), time.perf_counter_ns()
        for seq, gid in cmd["sends"]:  # (seq, sender gid) in seq order, all local
            due = start_ns + int(seq * 1e9 / rate)
            wait = (due - time.perf_counter_ns()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
            client = clients.get(gid)
            if client is None or not client.is_open:
                continue
            now = time.perf_counter_ns()
            lateness.append(now - due)
            client.send_text(message_frame(client.channel, f"fan:{phase}:{gid}:{seq}:{now}"))
            sent += 1
        end_ns = start_ns + int(count * 1e9 / rate) + int(drain_s * 1e9)
        if expected and not done.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), max(0.0, (end_ns - time.perf_counter_ns()) / 1e9))
        cpu1, t1 = _cpu(), time.perf_counter_ns()
        self.sink.on_delivery = None
        missing_by_conn = sum(1 for m in marks.values() if m.count(0))
        return {
            "sent": sent,
            "expected": expected,
            "received": state["received"],
            "dups": state["dups"],
            "bad": state["bad"],
            "conns_missing_some": missing_by_conn,
            "per_message": per_message.tobytes(),
            "latencies": latencies.tobytes(),
            "send_lateness_max_ns": max(lateness, default=0),
            "closed": dict(self.sink.closed),
            "errors": self.sink.errors,
            "error_count": self.sink.error_count,
            "foreign": self.sink.foreign,
            "cpu_s": cpu1 - cpu0,
            "wall_s": (t1 - t0) / 1e9,
        }

    # flood --------------------------------------------------------------------------------------------------------
    async def flood(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Senders keep ``window`` messages each in flight (the next goes when the sender sees its own message come
        back) from ``start_ns`` to ``stop_ns``; deliveries are counted between ``measure_from_ns`` and ``stop_ns``."""
        phase, window = int(cmd["phase"]), int(cmd["window"])
        start_ns, measure_ns, stop_ns = int(cmd["start_ns"]), int(cmd["measure_from_ns"]), int(cmd["stop_ns"])
        drain_s, sample_every = float(cmd["drain_s"]), max(1, int(cmd.get("sample_every", 1)))
        self._reset_phase(phase)
        loop = asyncio.get_running_loop()
        clients = dict(self.groups.get(cmd["group"], {}))
        senders = [clients[gid] for gid in cmd["senders"] if gid in clients]
        per_conn: dict[int, int] = dict.fromkeys(clients, 0)
        in_flight: dict[int, int] = {c.gid: 0 for c in senders}
        seqs: dict[int, int] = {c.gid: 0 for c in senders}
        state = {"total": 0, "sent": 0, "stopping": False, "last_ns": 0}
        latencies = array.array("q")
        idle = asyncio.Event()

        def send_one(client: Client) -> None:
            gid = client.gid
            seq = seqs[gid]
            seqs[gid] = seq + 1
            in_flight[gid] += 1
            state["sent"] += 1
            client.send_text(message_frame(client.channel, f"fan:{phase}:{gid}:{seq}:{time.perf_counter_ns()}"))

        def on_delivery(client: Client, sender: int, seq: int, sent: int, now: int) -> None:
            per_conn[client.gid] += 1
            total = state["total"] = state["total"] + 1
            state["last_ns"] = now
            if total % sample_every == 0:
                latencies.append(now - sent)
            if sender == client.gid:  # a sender saw its own message: the server has taken it
                in_flight[sender] -= 1
                if not state["stopping"] and now < stop_ns:
                    send_one(client)
                elif not any(in_flight.values()):
                    idle.set()

        self.sink.on_delivery = on_delivery
        snapshots: dict[str, tuple[int, int, float]] = {}

        def snapshot(name: str) -> None:
            snapshots[name] = (time.perf_counter_ns(), state["total"], _cpu())

        await asyncio.sleep(max(0.0, (start_ns - time.perf_counter_ns()) / 1e9))
        for client in senders:
            for _ in range(window):
                if client.is_open:
                    send_one(client)
        await asyncio.sleep(max(0.0, (measure_ns - time.perf_counter_ns()) / 1e9))
        snapshot("from")
        await asyncio.sleep(max(0.0, (stop_ns - time.perf_counter_ns()) / 1e9))
        snapshot("to")
        state["stopping"] = True
        if not senders or not any(in_flight.values()):
            idle.set()
        drain_deadline = loop.time() + drain_s
        with contextlib.suppress(asyncio.TimeoutError):  # every sender's last message is back ...
            await asyncio.wait_for(idle.wait(), drain_s)
        while loop.time() < drain_deadline:  # ... and nothing arrived for 0.5 s (other workers' stragglers)
            quiet = (time.perf_counter_ns() - state["last_ns"]) / 1e9
            if quiet >= 0.5:
                break
            await asyncio.sleep(0.5 - quiet)
        self.sink.on_delivery = None
        (t_from, n_from, cpu_from), (t_to, n_to, cpu_to) = snapshots["from"], snapshots["to"]
        counts = list(per_conn.values())
        return {
            "sent": state["sent"],
            "window_deliveries": n_to - n_from,
            "window_s": (t_to - t_from) / 1e9,
            "window_cpu_s": cpu_to - cpu_from,
            "total": state["total"],
            "per_conn_min": min(counts, default=0),
            "per_conn_max": max(counts, default=0),
            "per_conn": array.array("l", counts).tobytes(),
            "in_flight_left": sum(in_flight.values()),
            "latencies": latencies.tobytes(),
            "closed": dict(self.sink.closed),
            "errors": self.sink.errors,
            "error_count": self.sink.error_count,
            "foreign": self.sink.foreign,
        }

    # close --------------------------------------------------------------------------------------------------------
    async def close_all(self, cmd: dict[str, Any]) -> dict[str, Any]:
        names = [cmd["group"]] if "group" in cmd else list(self.groups)
        clients = [c for name in names for c in self.groups.pop(name, {}).values()]
        self._reset_phase(-1)
        timeout = float(cmd.get("timeout", 3.0))
        gate = asyncio.Semaphore(200)

        async def one(client: Client) -> None:
            async with gate:
                await client.close(timeout)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients), return_exceptions=True), timeout * 3)
        for client in clients:
            client.abort()
        await asyncio.sleep(0.05)
        return {"closed": len(clients)}


def worker_main(wid: int, pipe: Connection) -> None:
    """Entry point of a worker process (``multiprocessing``, spawn context)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's to handle; it stops us
    try:
        import uvloop

        uvloop.run(Worker(wid, pipe).serve())
    except ImportError:
        asyncio.run(Worker(wid, pipe).serve())
