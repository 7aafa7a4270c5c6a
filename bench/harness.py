"""What the benchmark scripts share: starting and stopping their servers, and py-spy profiles of them.

- ``BareServer`` (``bench/bare_app.py``, for ``auth_throughput.py`` and ``profile_me.py``) and ``BaselineServer``
  (``bench/chat_baseline_server.py``, for ``chat_fanout.py`` and ``chat_profile.py``): ``python -m <module> --port
  N`` from the repository root, on a free loopback port, with the output kept in a temporary file;
- ``start_portal`` (``tests.portal_server.PortalServer.start``, failing with a ``BenchError``) and
  ``run_with_portal_and_bare`` (both servers around one measurement, as ``auth_throughput.py`` runs them);
- ``find_py_spy``, ``start_spy``/``stop_spy`` (``py-spy record`` of one process until interrupted) and
  ``print_profile`` (a recorded profile's shares by layer, named hot spots, the top functions);
- for the relay benchmarks (``terminal_relay.py``, ``tunnel_relay.py``): ``portal_connection`` (log in to a
  started portal as root and create a connection to relay through), ``wait_listening``, and the pieces of their
  lean blocking WebSocket clients: ``ws_client_frame``, ``ws_handshake_request``/``ws_check_handshake`` and
  ``ws_close``.

The scripts import it as ``bench.harness`` after putting the repository root on ``sys.path``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

import httpx

if TYPE_CHECKING:
    from tests.portal_server import PortalServer

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0


class BenchError(RuntimeError):
    """The benchmark cannot run (a missing tool, a server that does not start or answer as expected, ...)."""


# -- servers ------------------------------------------------------------------------------------------------------
class ServerProcess:
    """``python -m <module> --port N`` in its own process; ``ready`` says when it serves."""

    module: ClassVar[str]
    label: ClassVar[str]
    poll_interval: ClassVar[float] = 0.1

    def __init__(self) -> None:
        from tests.portal_server import free_port

        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self.port)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited with {self.proc.returncode}:\n{self.log()}")
            if self.ready():
                return self
            time.sleep(self.poll_interval)
        log = self.log()
        self.stop()
        raise BenchError(f"{self.label} did not start in {timeout}s:\n{log}")

    def _read_log(self) -> bytes:
        self._log.seek(0)
        return self._log.read()

    def log(self) -> str:
        return self._read_log().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        from tests.peers.base import stop_process

        stop_process(self.proc, timeout=10)
        self._log.close()


class BareServer(ServerProcess):
    """``bench/bare_app.py``: ready when ``GET /bare`` answers 200."""

    module = "bench.bare_app"
    label = "bare app"

    def ready(self) -> bool:
        try:
            return httpx.get(self.base_url + "/bare", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class BaselineServer(ServerProcess):
    """``bench/chat_baseline_server.py``: ready when it has printed ``ready``."""

    module = "bench.chat_baseline_server"
    label = "baseline server"
    poll_interval = 0.05

    def ready(self) -> bool:
        return b"ready" in self._read_log()


def start_portal(portal: PortalServer, timeout: float = START_TIMEOUT) -> PortalServer:
    """``portal.start``; a portal that does not start is a ``BenchError`` (with its log)."""
    try:
        return portal.start(timeout=timeout)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from exc


def run_with_portal_and_bare(env: dict[str, str], run: Callable[[PortalServer, BareServer], int]) -> int:
    """Start the portal (``env`` added to its environment) and the bare app, return ``run(portal, bare)``, stop both.

    A ``BenchError`` is printed with the end of the portal's log, and the exit status is then 1.
    """
    from tests.portal_server import PortalServer

    portal = PortalServer(env=dict(env))
    bare = BareServer()
    try:
        start_portal(portal)
        bare.start()
        return run(portal, bare)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if portal.proc is not None:
            print(f"--- portal log ---\n{portal.log()[-4000:]}", file=sys.stderr)
        return 1
    finally:
        bare.stop()
        portal.stop()


def portal_connection(portal: PortalServer, connection: dict[str, object]) -> tuple[str, dict[str, str]]:
    """Log in to ``portal`` as its root user and create ``connection`` (the ``POST /api/connections`` body).

    Returns the relay's path (``/ws/user-connection/{id}``) and the headers a WebSocket client opens it with.
    """
    token = httpx.post(
        portal.base_url + "/api/token",
        json={"username": portal.admin_user, "password": portal.admin_password},
        timeout=10,
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(portal.base_url + "/api/connections", json=connection, headers=headers, timeout=10)
    if created.status_code != 201:
        raise RuntimeError(f"creating the connection: {created.status_code} {created.text}")
    return f"/ws/user-connection/{created.json()['id']}", {**headers, "Origin": portal.base_url}


def wait_listening(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts TCP connections on ``LOOPBACK:port``; ``RuntimeError`` when ``proc`` exits
    or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


# -- lean WebSocket clients ---------------------------------------------------------------------------------------
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_client_frame(data: bytes, opcode: int = 0x2) -> bytes:
    """A masked client frame with the all-zero key (the payload goes out unchanged)."""
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + data


def ws_handshake_request(port: int, path: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """The opening handshake's request to ``LOOPBACK:port`` with ``headers`` added, and its Sec-WebSocket-Key."""
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {LOOPBACK}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def ws_check_handshake(head: bytes, key: bytes) -> dict[str, str]:
    """The response's header fields (lower-case names) once ``head`` (up to the blank line) accepts ``key``;
    ``ConnectionError`` otherwise."""
    status, *header_lines = head.decode("latin-1").split("\r\n")
    if " 101 " not in status + " ":
        raise ConnectionError(f"handshake refused: {status}")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if fields.get("sec-websocket-accept") != base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode():
        raise ConnectionError("handshake: bad Sec-WebSocket-Accept")
    return fields


def ws_close(sock: socket.socket) -> None:
    """Send a normal close, drain what the server still sends (at most 2 s between reads), close the socket."""
    with contextlib.suppress(OSError):
        sock.sendall(ws_client_frame((1000).to_bytes(2, "big"), 0x8))
        sock.settimeout(2)
        while sock.recv(65536):
            pass
    sock.close()


# -- py-spy -------------------------------------------------------------------------------------------------------
def find_py_spy() -> str:
    """The virtualenv's py-spy (else one on PATH); exits with the install command when there is none."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not py_spy:
        sys.exit("error: py-spy is not installed; run: .venv/bin/pip install py-spy")
    return py_spy


def start_spy(py_spy: str, pid: int, rate: int, nonblocking: bool, out: Path) -> subprocess.Popen[bytes]:
    """``py-spy record`` of process ``pid`` into ``out`` (raw collapsed stacks) until ``stop_spy``."""
    cmd = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out)]
    if nonblocking:
        cmd.append("--nonblocking")
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # py-spy attaches
    if spy.poll() is not None:
        raise BenchError(f"py-spy exited at once: {spy.stdout.read().decode() if spy.stdout else ''}")
    return spy


def stop_spy(spy: subprocess.Popen[bytes]) -> None:
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


Layers = list[tuple[str, re.Pattern[str]]]  # (name, pattern on a frame's file path); the first match wins
HotSpots = list[tuple[str, list[str]]]  # (label, needles: any of them in a "func (file:line)" frame)
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def parse_collapsed(text: str) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy's raw output: one ``frame;frame;... count`` line per stack -> [([(func, file), ...], count)]."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            match = FRAME.match(raw)
            frames.append((match.group("func"), match.group("file")) if match else (raw, ""))
        stacks.append((frames, int(count)))
    return stacks


def short(path: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def print_profile(text: str, top: int, layers: Layers, hot_spots: HotSpots) -> None:
    """Print the shares of a profile's samples: by layer of the innermost frame, hot spots, top functions.

    Worker threads (the default executor, aiosqlite's thread) block in queue waits that py-spy can count as busy;
    the event loop runs on the main thread, so only that is analysed.
    """
    every = parse_collapsed(text)
    stacks = [(frames, count) for frames, count in every if not frames[0][0].startswith("Thread._bootstrap")]
    others = sum(count for _, count in every) - sum(count for _, count in stacks)
    total = sum(count for _, count in stacks)
    if not total:
        raise BenchError("py-spy recorded no samples of the event loop's thread")
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    by_layer: Counter[str] = Counter()
    for frames, count in stacks:
        seen = set()
        for func, path in frames:
            key = f"{func} ({short(path)})"
            if key not in seen:
                inclusive[key] += count
                seen.add(key)
        func, path = frames[-1]
        self_time[f"{func} ({short(path)})"] += count
        by_layer[next(name for name, pattern in layers if pattern.search(path))] += count

    print(f"\n{total} samples of the server's event-loop (main) thread; {others} samples of other threads left out\n")
    print("by layer of the innermost Python frame (C code is charged to the Python frame that called it):")
    for name, _ in layers:
        if by_layer[name]:
            print(f"  {100 * by_layer[name] / total:>6.1f}%  {name}")
    print("\nhot spots (inclusive: the function is anywhere on the sampled stack):")
    for label, needles in hot_spots:
        count = sum(c for frames, c in stacks if any(any(n in f"{fn} ({p})" for n in needles) for fn, p in frames))
        if count:
            print(f"  {100 * count / total:>6.1f}%  {label}")
    print(f"\ntop {top} by inclusive time:")
    for key, count in inclusive.most_common(top):
        print(f"  {100 * count / total:>6.1f}%  {key}")
    print(f"\ntop {top} by self time:")
    for key, count in self_time.most_common(top):
        print(f"  {100 * count / total:>6.1f}%  {key}")
