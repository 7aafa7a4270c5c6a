"""Terminal output through the portal's SSH relay, against ``webssh`` and against plain ``ssh -tt``.

Run from the repo root, as root (the sshd peer of the tests creates its login user)::

    .venv/bin/python bench/terminal_relay.py [--rounds 5] [--count 2000000] [--json results.json]

What one run does:

1. starts the sshd peer of the tests (``tests.peers.sshd.SshServer``: OpenSSH on a free loopback port, user
   ``orptest``) and authorises a fresh ed25519 key, which all three contenders log in with;
2. starts the portal (``tests.portal_server.PortalServer``: ``python -m portal serve``, one uvicorn worker), logs
   in as root and creates an ssh connection (``auth_method`` key) to the peer: the relay is
   ``/ws/user-connection/{id}``; and starts ``wssh`` (PyPI ``webssh``, the optional extra ``bench``) on a free port;
3. per round (the order of the three rotates every round), for each contender: opens an interactive shell in a
   PTY (the portal: the WebSocket; webssh: ``POST /`` for a worker id, then ``/ws?id=``; ssh: ``ssh -tt`` with
   pipes), waits until the shell answers, then times from typing ``seq 1 COUNT; echo END-$((2+3))`` until
   ``END-5`` has been received (the typed line echoes as ``$((2+3))``, so only the output matches).

The WebSocket client is the same for the portal and webssh: a lean blocking client in this file that reads
whole messages and, for the portal, decodes each JSON frame (as a browser does); webssh sends raw bytes in
binary frames. ``ssh -tt`` output is read from its stdout pipe by this process. The table: the median over
the rounds of the seconds and MB/s (10^6 bytes of terminal output per second) and the ratios portal / webssh
and portal / ssh. Targets (issue "Remote access"): at least as fast as webssh and within 5 % of ssh -tt.
Exit status 0 when every run completed (targets met or not: see the verdicts), 1 when the setup failed, 2 when
a run failed. Only 127.0.0.1 is ever contacted.
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
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.auth_throughput import wait_for_quiet  # noqa: E402
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
from tests.peers.sshd import ClientKey, SshServer, generate_client_key  # noqa: E402
from tests.portal_server import PortalServer, free_port  # noqa: E402

MARKER = "END-5"
COMMAND = "seq 1 {count}; echo END-$((2+3))\r"
READY_COMMAND = "echo READY-$((1+1))\r"
READY = "READY-2"
CONTENDERS = ("portal", "webssh", "ssh")
TIMEOUT = 120.0


# -- a lean WebSocket client -------------------------------------------------------------------------
class WebSocket:
    """Blocking RFC 6455 client reading whole messages from one growing buffer."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        request, key = ws_handshake_request(port, path, headers)
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        ws_check_handshake(head, key)
        self.buf = bytearray(rest)

    def _fill(self) -> None:
        if self.pos > 1 << 20:
            del self.buf[: self.pos]
            self.pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def send_text(self, text: str) -> None:
        self.sock.sendall(ws_client_frame(text.encode(), 0x1))

    def recv(self) -> bytes:
        """The payload of the next data message (fragments joined); pings answered, close raises."""
        parts: list[bytes] = []
        while True:
            while len(self.buf) - self.pos < 2:
                self._fill()
            b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
            n = b1 & 0x7F
            head = 2 + (2 if n == 126 else 8 if n == 127 else 0)
            while len(self.buf) - self.pos < head:
                self._fill()
            if n == 126:
                n = int.from_bytes(self.buf[self.pos + 2 : self.pos + 4], "big")
            elif n == 127:
                n = int.from_bytes(self.buf[self.pos + 2 : self.pos + 10], "big")
            while len(self.buf) - self.pos < head + n:
                self._fill()
            payload = bytes(self.buf[self.pos + head : self.pos + head + n])
            self.pos += head + n
            opcode = b0 & 0x0F
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                raise EOFError(f"server closed the WebSocket: {code} {payload[2:].decode(errors='replace')}")
            if opcode == 0x9:
                self.sock.sendall(ws_client_frame(payload, 0xA))
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if b0 & 0x80:
                return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        ws_close(self.sock)


# -- the three terminals -----------------------------------------------------------------------------
class Terminal(Protocol):
    pid: int  # the relaying process whose CPU time is measured (the portal, wssh, the ssh client)

    def type(self, text: str) -> None: ...
    def read(self) -> str: ...
    def close(self) -> None: ...


class PortalTerminal:
    def __init__(self, port: int, path: str, headers: dict[str, str], pid: int) -> None:
        self.ws = WebSocket(port, path, headers)
        self.pid = pid

    def type(self, text: str) -> None:
        self.ws.send_text(json.dumps({"type": "input", "data": text}))

    def read(self) -> str:
        while True:
            frame = json.loads(self.ws.recv())
            if frame["type"] == "output":
                data: str = frame["data"]
                return data
            if frame["type"] == "error":
                raise RuntimeError(f"portal: {frame['message']}")

    def close(self) -> None:
        self.ws.close()


class WebsshTerminal:
    def __init__(self, port: int, server: SshServer, key: ClientKey, pid: int) -> None:
        self.pid = pid
        form = {
            "hostname": server.host,
            "port": str(server.port),
            "username": server.username,
            "privatekey": key.private_openssh,
            "term": "xterm-256color",
        }
        answer = httpx.post(f"http://{LOOPBACK}:{port}/", data=form, timeout=30).json()
        if not answer.get("id"):
            raise RuntimeError(f"webssh refused the login: {answer}")
        self.ws = WebSocket(port, f"/ws?id={answer['id']}", {})
        self.decoder = __import__("codecs").getincrementaldecoder("utf-8")(errors="replace")

    def type(self, text: str) -> None:
        self.ws.send_text(json.dumps({"data": text}))

    def read(self) -> str:
        text: str = self.decoder.decode(self.ws.recv())
        return text

    def close(self) -> None:
        self.ws.close()


class SshTerminal:
    def __init__(self, server: SshServer, key_file: Path, cipher: str | None) -> None:
        self.proc = subprocess.Popen(
            [
                "ssh",
                "-tt",
                *(["-c", cipher] if cipher else []),
                "-i",
                str(key_file),
                "-p",
                str(server.port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                f"{server.username}@{server.host}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.pid = self.proc.pid
        self.stdin, self.fd = self.proc.stdin, self.proc.stdout.fileno()
        self.decoder = __import__("codecs").getincrementaldecoder("utf-8")(errors="replace")

    def type(self, text: str) -> None:
        self.stdin.write(text.encode())
        self.stdin.flush()

    def read(self) -> str:
        data = os.read(self.fd, 1 << 20)
        if not data:
            raise EOFError("ssh exited")
        text: str = self.decoder.decode(data)
        return text

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        self.proc.terminate()
        self.proc.wait(10)


def read_until(term: Terminal, marker: str) -> tuple[int, int]:
    """Characters and chunks (output frames, messages, pipe reads) read until ``marker`` (which
    may be split between chunks) was seen."""
    total, chunks, tail = 0, 0, ""
    deadline = time.monotonic() + TIMEOUT
    while True:
        text = term.read()
        total += len(text)
        chunks += 1
        if marker in text or marker in tail + text[: len(marker)]:
            return total, chunks
        tail = text[-len(marker) :] if len(text) >= len(marker) else (tail + text)[-len(marker) :]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {marker!r} within {TIMEOUT}s")


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class Run:
    seconds: float
    size: int  # characters of terminal output (ASCII: bytes)
    chunks: int
    cpu: float  # CPU seconds of the relaying process


def timed_run(term: Terminal, count: int) -> Run:
    term.type(READY_COMMAND)
    read_until(term, READY)
    time.sleep(0.2)  # the prompt after READY arrives before the clock starts
    cpu0 = cpu_seconds(term.pid)
    t0 = time.perf_counter()
    term.type(COMMAND.format(count=count))
    size, chunks = read_until(term, MARKER)
    elapsed = time.perf_counter() - t0
    return Run(elapsed, size, chunks, cpu_seconds(term.pid) - cpu0)


# -- servers -----------------------------------------------------------------------------------------
@dataclass
class Setup:
    server: SshServer
    key: ClientKey
    key_file: Path
    portal: PortalServer
    portal_path: str
    portal_headers: dict[str, str]
    webssh_port: int
    webssh: subprocess.Popen[bytes]


@contextlib.contextmanager
def servers() -> Iterator[Setup]:
    wssh = shutil.which("wssh", path=str(ROOT / ".venv" / "bin")) or shutil.which("wssh")
    if wssh is None:
        raise RuntimeError("wssh is missing: .venv/bin/pip install -e '.[bench]'")
    if shutil.which("ssh") is None:
        raise RuntimeError("ssh is missing: apt-get install openssh-client")
    tmp = Path(tempfile.mkdtemp(prefix="orp-bench-term-"))
    server = SshServer().start()
    portal: PortalServer | None = None
    webssh: subprocess.Popen[bytes] | None = None
    try:
        key = generate_client_key("orp-bench")
        server.authorize(key.public_line)
        key_file = tmp / "id_ed25519"
        key_file.write_text(key.private_openssh)
        key_file.chmod(0o600)

        portal = PortalServer(env={"PORTAL_LOG_LEVEL": "warning"}).start()
        config = {"username": server.username, "auth_method": "key", "private_key": key.private_openssh}
        portal_path, portal_headers = portal_connection(
            portal,
            {"name": "bench ssh", "type": "ssh", "host": server.host, "port": server.port, "config": config},
        )

        webssh_port = free_port()
        webssh = subprocess.Popen(
            [wssh, f"--address={LOOPBACK}", f"--port={webssh_port}", "--xsrf=False", "--logging=warning"],
            stdout=(tmp / "wssh.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(webssh_port, 20, webssh)
        except RuntimeError as exc:
            raise RuntimeError(f"wssh did not start ({exc}): {(tmp / 'wssh.log').read_text()}") from exc
        yield Setup(server, key, key_file, portal, portal_path, portal_headers, webssh_port, webssh)
    finally:
        stop_process(webssh, timeout=10)
        if portal is not None:
            portal.stop()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def open_terminal(setup: Setup, name: str, ssh_cipher: str | None = None) -> Terminal:
    if name == "portal":
        assert setup.portal.proc is not None
        return PortalTerminal(setup.portal.port, setup.portal_path, setup.portal_headers, setup.portal.proc.pid)
    if name == "webssh":
        return WebsshTerminal(setup.webssh_port, setup.server, setup.key, setup.webssh.pid)
    return SshTerminal(setup.server, setup.key_file, ssh_cipher)


# -- main --------------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    runs: list[Run] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self, what: str) -> float:
        values = [float(getattr(r, what)) for r in self.runs]
        return statistics.median(values) if values else float("nan")

    @property
    def mb_per_s(self) -> float:
        return statistics.median(r.size / r.seconds / 1e6 for r in self.runs) if self.runs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=2_000_000, help="seq 1 COUNT (2,000,000: about 16 MB)")
    parser.add_argument("--only", choices=CONTENDERS, action="append", help="measure only these (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--ssh-cipher",
        help="cipher for ssh -tt (ssh -c), e.g. aes128-gcm@openssh.com as the portal prefers; default: OpenSSH's",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=20.0,
        help="before each run, wait up to S seconds for other processes to use under 0.25 CPU cores (0: don't)",
    )
    args = parser.parse_args()
    names = tuple(args.only or CONTENDERS)
    results = {name: Result(name) for name in names}
    try:
        setup_cm = servers()
        setup = setup_cm.__enter__()
    except Exception as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1
    try:
        for name in names:  # warm up: the first login pins host keys, loads code, fills caches
            term = open_terminal(setup, name, args.ssh_cipher)
            try:
                timed_run(term, 1000)
            finally:
                term.close()
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                try:
                    term = open_terminal(setup, name, args.ssh_cipher)
                    if args.wait_quiet > 0:
                        wait_for_quiet(args.wait_quiet)
                    try:
                        run = timed_run(term, args.count)
                    finally:
                        term.close()
                except Exception as exc:  # a failed run is reported, not measured
                    results[name].failures.append(f"round {round_ + 1}: {type(exc).__name__}: {exc}")
                    print(f"  {name}: FAILED {exc}", flush=True)
                    continue
                results[name].runs.append(run)
                rate = run.size / run.seconds / 1e6
                print(
                    f"  round {round_ + 1} {name:7} {run.seconds:6.3f} s  {rate:6.1f} MB/s"
                    f"  relay CPU {run.cpu:5.2f} s  {run.chunks} chunks",
                    flush=True,
                )
    finally:
        setup_cm.__exit__(None, None, None)
    report(results, args)
    return 2 if any(r.failures for r in results.values()) else 0


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    print()
    print(f"terminal output: seq 1 {args.count} in a PTY over SSH, median of {args.rounds} rounds")
    print(f"{'contender':10} {'seconds':>8} {'MB/s':>7} {'MB':>6} {'relay CPU s':>11} {'chunks':>7}  runs (s)")
    for r in results.values():
        runs = " ".join(f"{run.seconds:.3f}" for run in r.runs)
        print(
            f"{r.name:10} {r.median('seconds'):8.3f} {r.mb_per_s:7.1f} {r.median('size') / 1e6:6.1f} "
            f"{r.median('cpu'):11.2f} {r.median('chunks'):7.0f}  {runs}"
        )
    print("relay CPU: CPU seconds of the portal process, of wssh, of the ssh client during the timed part;")
    print("chunks: output frames (portal), messages (webssh), stdout reads (ssh)")
    out: dict[str, object] = {"count": args.count, "rounds": args.rounds}
    out["results"] = {r.name: {"runs": [vars(run) for run in r.runs], "failures": r.failures} for r in results.values()}
    portal = results.get("portal")
    if portal and portal.runs:
        print()
        for other, target, label in (
            ("webssh", 1.0, "at least as fast as webssh"),
            ("ssh", 1.05, "within 5% of ssh -tt"),
        ):
            base = results.get(other)
            if base and base.runs:
                ratio = portal.median("seconds") / base.median("seconds")
                verdict = "met" if ratio <= target else "MISSED"
                print(f"portal / {other:6} time ratio {ratio:5.3f}  (target <= {target:.2f}: {label}) {verdict}")
                out[f"portal_over_{other}"] = ratio
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
