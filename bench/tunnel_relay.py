"""TCP-over-WebSocket tunnel: the portal's TCP relay against ``websockify`` and against direct TCP.

Run from the repo root (either form)::

    .venv/bin/python bench/tunnel_relay.py [--rounds 5] [--megabytes 200] [--round-trips 2000]
    .venv/bin/python -m bench.tunnel_relay --json results.json

What one run does:

1. starts the peer (this script with ``--peer``, a separate process with one thread per connection) on a free
   loopback port. The first bytes a client sends pick what it does: ``D`` + 8-byte size: sends that many bytes,
   then waits for the client to close (download); ``U`` + size: reads that many bytes, answers ``K``, then
   waits (upload); ``E``: echoes everything (round trips);
2. starts ``websockify 127.0.0.1:W 127.0.0.1:PEER`` (PyPI, the optional extra ``bench``: what noVNC users run)
   and the portal (``tests.portal_server.PortalServer``: ``python -m portal serve``, one uvicorn worker), logs in
   as root and creates a ``tcp_tunnel`` connection to the peer; the tunnel is ``/ws/user-connection/{id}``;
3. per round (the order of the three targets rotates every round), for each target: ``download``: a fresh
   connection asks for ``--megabytes`` MB and times them until the last byte; ``upload``: a fresh connection
   sends ``--megabytes`` MB in ``--frame-size`` messages and times them until the peer's ``K``; ``rtt``: a fresh
   connection exchanges ``--round-trips`` 1-byte messages with the echo (after 200 untimed), one at a time.

The WebSocket client is the same for the portal and websockify: a lean blocking client in this file (binary
frames, ``binary`` subprotocol, TCP_NODELAY, one preallocated receive buffer, payloads counted in place). Its
frames carry the all-zero masking key (valid RFC 6455; the servers still unmask every byte), so masking costs
the client nothing. ``direct`` is the same client code without the WebSocket layer, straight to the peer.

The table: medians over the rounds of GB/s (10^9 bytes per second) and of the round-trip p50/p99 (µs), and the
ratios portal / websockify and portal / direct. Targets (issue "Remote access"): the portal's throughput and
round-trip p50 at least as good as websockify's. Exit status 0 when every run completed (targets met or not: see
the verdicts), 1 when the setup failed, 2 when a run failed. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # script form: import ``bench`` and ``tests`` from the repo root
    sys.path.insert(0, str(ROOT))

from bench.auth_throughput import DISTURBED_CORES, wait_for_quiet  # noqa: E402
from bench.harness import (  # noqa: E402
    LOOPBACK,
    portal_connection,
    wait_listening,
    ws_check_handshake,
    ws_client_frame,
    ws_close,
    ws_handshake_request,
)
from tests.peers.base import stop_process  # noqa: E402
from tests.portal_server import free_port  # noqa: E402

RECV_BUFFER = 4 * 1024 * 1024
WARMUP_ROUND_TRIPS = 200
PIPELINED_MESSAGES = 20_000
RESULT_KEYS = ("down", "up", "p50", "p99", "msgs", "cpu_down", "cpu_up", "cpu_rtt", "cpu_msg")
TARGETS = ("direct", "websockify", "portal")


# -- the peer ----------------------------------------------------------------------------------------
def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _serve_peer_client(sock: socket.socket) -> None:
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            mode = _recv_exactly(sock, 1)
            if mode == b"E":
                while data := sock.recv(65536):
                    sock.sendall(data)
                return
            size = int.from_bytes(_recv_exactly(sock, 8), "big")
            if mode == b"D":
                block = memoryview(os.urandom(1024 * 1024))
                while size > 0:
                    n = min(size, len(block))
                    sock.sendall(block[:n])
                    size -= n
            elif mode == b"U":
                buf = memoryview(bytearray(1024 * 1024))
                while size > 0:
                    n = sock.recv_into(buf, min(size, len(buf)))
                    if n == 0:
                        return
                    size -= n
                sock.sendall(b"K")
            # the client closes first: the server's CPU time is read while the connection still
            # exists (websockify's per-connection process exits with it)
            while sock.recv(65536):
                pass
        except (OSError, EOFError):
            return


def peer_main() -> None:
    """``--peer``: serve until stdin closes; prints the port on the first line."""
    listener = socket.create_server((LOOPBACK, 0), backlog=64)
    print(listener.getsockname()[1], flush=True)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve_peer_client, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()


# -- clients -----------------------------------------------------------------------------------------
class Link(Protocol):
    def send(self, data: bytes) -> None: ...
    def send_prebuilt(self, frame: bytes) -> None: ...
    def prebuild(self, data: bytes) -> bytes: ...
    def read_payload(self, size: int, keep: bool = False) -> bytes: ...
    def close(self) -> None: ...


class TcpLink:
    """Direct TCP: the baseline."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = memoryview(bytearray(RECV_BUFFER))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def prebuild(self, data: bytes) -> bytes:
        return data

    def send_prebuilt(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def read_payload(self, size: int, keep: bool = False) -> bytes:
        out = bytearray()
        while size > 0:
            n = self.sock.recv_into(self.buf, min(size, len(self.buf)))
            if n == 0:
                raise EOFError("peer closed")
            if keep:
                out += self.buf[:n]
            size -= n
        return bytes(out)

    def close(self) -> None:
        self.sock.close()


class WebSocketLink:
    """A lean blocking RFC 6455 client: binary frames only, payloads counted in one buffer."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        self.start = self.end = 0  # unread bytes: buf[start:end]
        self.frame_left = 0  # payload bytes of the current data frame not read yet
        self._handshake(port, path, headers)

    def _handshake(self, port: int, path: str, headers: dict[str, str]) -> None:
        request, key = ws_handshake_request(port, path, {"Sec-WebSocket-Protocol": "binary", **headers})
        self.sock.sendall(request)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"handshake: connection closed after {response!r}")
            response += chunk
        head, _, rest = response.partition(b"\r\n\r\n")
        fields = ws_check_handshake(head, key)
        if fields.get("sec-websocket-protocol") != "binary":
            raise ConnectionError(f"handshake: subprotocol {fields.get('sec-websocket-protocol')!r}, not binary")
        self.buf[: len(rest)] = rest
        self.end = len(rest)

    def send(self, data: bytes) -> None:
        self.sock.sendall(ws_client_frame(data))

    def prebuild(self, data: bytes) -> bytes:
        return ws_client_frame(data)

    def send_prebuilt(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def _fill(self) -> None:
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            left = self.end - self.start
            self.buf[:left] = self.buf[self.start : self.end]
            self.start, self.end = 0, left
        n = self.sock.recv_into(self.view[self.end :])
        if n == 0:
            raise EOFError("server closed the connection")
        self.end += n

    def _header(self) -> tuple[int, int]:
        """The next frame's (opcode, payload length); consumes the header."""
        buf = self.buf
        while True:
            avail = self.end - self.start
            if avail >= 2:
                b0, b1 = buf[self.start], buf[self.start + 1]
                n = b1 & 0x7F
                size = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)
                if avail >= size:
                    if n == 126:
                        n = int.from_bytes(buf[self.start + 2 : self.start + 4], "big")
                    elif n == 127:
                        n = int.from_bytes(buf[self.start + 2 : self.start + 10], "big")
                    self.start += size
                    return b0 & 0x0F, n
            self._fill()

    def _take(self, size: int, out: bytearray | None) -> None:
        while size > 0:
            if self.start == self.end:
                self._fill()
            n = min(size, self.end - self.start)
            if out is not None:
                out += self.view[self.start : self.start + n]
            self.start += n
            size -= n

    def read_payload(self, size: int, keep: bool = False) -> bytes:
        out = bytearray() if keep else None
        while size > 0:
            if self.frame_left == 0:
                opcode, length = self._header()
                if opcode in (0x8, 0x9, 0xA):
                    control = bytearray()
                    self._take(length, control)
                    if opcode == 0x8:
                        code = int.from_bytes(control[:2], "big") if len(control) >= 2 else 1005
                        raise EOFError(f"server closed the WebSocket: {code} {control[2:].decode(errors='replace')}")
                    if opcode == 0x9:
                        self.sock.sendall(ws_client_frame(bytes(control), 0xA))
                    continue
                self.frame_left = length
                continue
            n = min(size, self.frame_left)
            self._take(n, out)
            self.frame_left -= n
            size -= n
        return bytes(out) if out is not None else b""

    def close(self) -> None:
        ws_close(self.sock)


# -- measurements ------------------------------------------------------------------------------------
def download(link: Link, size: int) -> float:
    t0 = time.perf_counter()
    link.send(b"D" + size.to_bytes(8, "big"))
    link.read_payload(size)
    return time.perf_counter() - t0


def upload(link: Link, size: int, frame_size: int) -> float:
    frame = link.prebuild(os.urandom(frame_size))
    t0 = time.perf_counter()
    link.send(b"U" + size.to_bytes(8, "big"))
    left = size
    while left >= frame_size:
        link.send_prebuilt(frame)
        left -= frame_size
    if left:
        link.send(os.urandom(left))
    ack = link.read_payload(1, keep=True)
    elapsed = time.perf_counter() - t0
    if ack != b"K":
        raise RuntimeError(f"upload: the peer answered {ack!r}")
    return elapsed


def round_trips(link: Link, count: int) -> list[float]:
    link.send(b"E")
    samples: list[float] = []
    for i in range(WARMUP_ROUND_TRIPS + count):
        t0 = time.perf_counter_ns()
        link.send(b"x")
        if link.read_payload(1, keep=True) != b"x":
            raise RuntimeError("echo returned another byte")
        if i >= WARMUP_ROUND_TRIPS:
            samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def pipelined(link: Link, count: int, window: int = 100) -> float:
    """After :func:`round_trips` on the same link: ``count`` 1-byte messages, ``window`` in flight,
    so the servers process messages back to back instead of waking up for each; messages/s."""
    t0 = time.perf_counter()
    for _ in range(count // window):
        for _ in range(window):
            link.send(b"z")
        if link.read_payload(window, keep=True) != b"z" * window:
            raise RuntimeError("echo returned other bytes")
    return (count // window) * window / (time.perf_counter() - t0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# -- servers under test ------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    open: Callable[[], Link]
    pid: int | None = None  # the server process (its children too: websockify forks one per connection)
    results: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in RESULT_KEYS})

    def cpu(self) -> float:
        """CPU seconds (user + system) used so far by the server and its live children."""
        if self.pid is None:
            return 0.0
        import psutil

        total = 0.0
        try:
            proc = psutil.Process(self.pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total


@contextlib.contextmanager
def peer() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--peer"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield port
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def websockify(peer_port: int, log_dir: Path) -> Iterator[tuple[int, int]]:
    exe = shutil.which("websockify", path=str(Path(sys.executable).parent)) or shutil.which("websockify")
    if exe is None:
        raise SystemExit("websockify is missing: .venv/bin/pip install -e '.[bench]'")
    port = free_port()
    with (log_dir / "websockify.log").open("wb") as log:
        proc = subprocess.Popen(
            [exe, f"{LOOPBACK}:{port}", f"{LOOPBACK}:{peer_port}"], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_listening(port, 15, proc)
        yield port, proc.pid
    finally:
        stop_process(proc, timeout=10)


@contextlib.contextmanager
def portal(peer_port: int) -> Iterator[tuple[int, str, dict[str, str], int]]:
    from tests.portal_server import PortalServer

    server = PortalServer(env={"PORTAL_LOG_LEVEL": "warning"}).start()
    try:
        path, headers = portal_connection(
            server, {"name": "bench tunnel", "type": "tcp_tunnel", "host": LOOPBACK, "port": peer_port}
        )
        assert server.proc is not None
        yield server.port, path, headers, server.proc.pid
    except BaseException:
        print(server.log()[-4000:], file=sys.stderr)
        raise
    finally:
        server.stop()


# -- main ----------------------------------------------------------------------------------------------
def measure(target: Target, size: int, frame_size: int, count: int) -> str:
    """One round for one target; the server's CPU time is taken while each connection is open
    (websockify's per-connection child exits with it)."""
    r = target.results
    link = target.open()
    try:
        cpu0 = target.cpu()
        down = download(link, size)
        r["cpu_down"].append((target.cpu() - cpu0) / (size / 1e9))
    finally:
        link.close()
    link = target.open()
    try:
        cpu0 = target.cpu()
        up = upload(link, size, frame_size)
        r["cpu_up"].append((target.cpu() - cpu0) / (size / 1e9))
    finally:
        link.close()
    link = target.open()
    try:
        cpu0 = target.cpu()
        samples = round_trips(link, count)
        cpu1 = target.cpu()
        r["cpu_rtt"].append((cpu1 - cpu0) / (count + WARMUP_ROUND_TRIPS) * 1e6)
        r["msgs"].append(pipelined(link, PIPELINED_MESSAGES))
        r["cpu_msg"].append((target.cpu() - cpu1) / PIPELINED_MESSAGES * 1e6)
    finally:
        link.close()
    r["down"].append(size / down / 1e9)
    r["up"].append(size / up / 1e9)
    r["p50"].append(percentile(samples, 0.50))
    r["p99"].append(percentile(samples, 0.99))
    return (
        f"{target.name:<11} down {r['down'][-1]:6.2f} GB/s  up {r['up'][-1]:6.2f} GB/s  "
        f"rtt p50 {r['p50'][-1]:7.1f} µs  p99 {r['p99'][-1]:7.1f} µs  pipelined {r['msgs'][-1]:7.0f} msg/s  "
        f"server CPU: {r['cpu_down'][-1]:.2f}/{r['cpu_up'][-1]:.2f} s per GB down/up, "
        f"{r['cpu_rtt'][-1]:.0f} µs per rtt, {r['cpu_msg'][-1]:.1f} µs per pipelined msg"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=200, help="MB (10^6 bytes) per transfer")
    parser.add_argument("--frame-size", type=int, default=64 * 1024, help="bytes per uploaded WebSocket message")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--only", choices=TARGETS, action="append", help="measure only these targets")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=20.0,
        help="before each measurement wait up to S seconds for other processes to use under 0.25 cores (0: don't)",
    )
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_main()
        return 0
    size = args.megabytes * 1_000_000
    wanted = args.only or list(TARGETS)
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        with contextlib.ExitStack() as stack:
            peer_port = stack.enter_context(peer())
            targets: list[Target] = []
            if "direct" in wanted:
                targets.append(Target("direct", lambda: TcpLink(peer_port)))
            if "websockify" in wanted:
                ws_port, ws_pid = stack.enter_context(websockify(peer_port, log_dir))
                targets.append(
                    Target("websockify", lambda: WebSocketLink(ws_port, "/", {"Origin": "http://x"}), ws_pid)
                )
            if "portal" in wanted:
                p_port, p_path, p_headers, p_pid = stack.enter_context(portal(peer_port))
                targets.append(Target("portal", lambda: WebSocketLink(p_port, p_path, p_headers), p_pid))
            failed, disturbed = False, 0
            for rnd in range(args.rounds):
                order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
                for target in order:
                    if args.wait_quiet > 0 and wait_for_quiet(args.wait_quiet) > DISTURBED_CORES:
                        disturbed += 1
                        print("  (the machine did not become quiet; measuring anyway)")
                    try:
                        print(f"round {rnd + 1}: " + measure(target, size, args.frame_size, args.round_trips))
                    except Exception as exc:
                        failed = True
                        print(f"round {rnd + 1}: {target.name} FAILED: {exc!r}")
                sys.stdout.flush()
    except (RuntimeError, OSError) as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1
    report(targets, args)
    if disturbed:
        print(f"warning: {disturbed} measurements started while other processes used over {DISTURBED_CORES} cores")
    return 2 if failed else 0


def report(targets: list[Target], args: argparse.Namespace) -> None:
    med = {t.name: {k: statistics.median(v) for k, v in t.results.items()} for t in targets if t.results["p50"]}
    print(
        f"\n{args.megabytes} MB per transfer, {args.frame_size} B upload messages, "
        f"{args.round_trips} round trips; medians of {args.rounds} rounds"
    )
    print(
        f"{'target':<11} {'down GB/s':>10} {'up GB/s':>10} {'rtt p50 µs':>11} {'rtt p99 µs':>11} {'msg/s':>8}"
        f" {'CPU s/GB down':>14} {'CPU s/GB up':>12} {'CPU µs/rtt':>11} {'CPU µs/msg':>11}"
    )
    for name, m in med.items():
        if not m:
            continue
        line = f"{name:<11} {m['down']:>10.2f} {m['up']:>10.2f} {m['p50']:>11.1f} {m['p99']:>11.1f} {m['msgs']:>8.0f}"
        if name != "direct":
            line += f" {m['cpu_down']:>14.2f} {m['cpu_up']:>12.2f} {m['cpu_rtt']:>11.0f} {m['cpu_msg']:>11.1f}"
        print(line)
    portal_m, ws_m, direct_m = med.get("portal"), med.get("websockify"), med.get("direct")
    if portal_m and ws_m:
        print(
            f"\nportal / websockify: down {portal_m['down'] / ws_m['down']:.2f}x,"
            f" up {portal_m['up'] / ws_m['up']:.2f}x,"
            f" rtt p50 {portal_m['p50'] / ws_m['p50']:.2f}x, p99 {portal_m['p99'] / ws_m['p99']:.2f}x,"
            f" pipelined msg/s {portal_m['msgs'] / ws_m['msgs']:.2f}x; server CPU: per GB down"
            f" {portal_m['cpu_down'] / ws_m['cpu_down']:.2f}x, up {portal_m['cpu_up'] / ws_m['cpu_up']:.2f}x,"
            f" per rtt {portal_m['cpu_rtt'] / ws_m['cpu_rtt']:.2f}x,"
            f" per msg {portal_m['cpu_msg'] / ws_m['cpu_msg']:.2f}x"
        )
        ok_tp = portal_m["down"] >= ws_m["down"] and portal_m["up"] >= ws_m["up"]
        ok_rtt = portal_m["p50"] <= ws_m["p50"]
        print(
            f"verdict: throughput >= websockify: {'MET' if ok_tp else 'NOT MET'}; "
            f"rtt p50 <= websockify: {'MET' if ok_rtt else 'NOT MET'}"
        )
    if portal_m and direct_m:
        print(
            f"portal / direct: down {portal_m['down'] / direct_m['down']:.2f}x,"
            f" up {portal_m['up'] / direct_m['up']:.2f}x,"
            f" rtt p50 {portal_m['p50'] / direct_m['p50']:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps({t.name: t.results for t in targets}, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
