"""Real-time chat: fan-out of ``/ws/chat`` messages to 1,000 clients in one channel, against a bare broadcast server.

Run from the repo root (either form)::

    .venv/bin/python bench/chat_fanout.py [--rounds 3] [--clients 1000] [--rate 20] [--duration 10]
    .venv/bin/python -m bench.chat_fanout --json results.json

What one run does:

1. raises this process's open-file limit (the servers and the client workers inherit it), starts the client
   workers (``bench/chat_client.py``, ``--procs`` processes, each with its share of the connections on one uvloop
   loop), starts the portal once to create ``--users`` users as root (``POST /api/users``) and log each in once
   (``POST /api/token``; the JWTs stay valid across restarts because the data dir and secret key are kept);
2. starts each server as a fresh process: the portal (``tests.portal_server.PortalServer``: ``python -m portal
   serve``, one uvicorn worker, chat rate limit and HTTP rate limits raised by configuration,
   ``PORTAL_WS_MAX_PER_USER`` raised) and the baseline ``bench/chat_baseline_server.py`` (``websockets`` +
   ``broadcast``, no auth, no channels, no storage); for each, after a small warm-up (a few connections join,
   exchange a few messages, leave), measures the server's RSS (the process and any children), settled, before and
   after opening ``--clients`` idle connections (portal: authenticated with the users' JWTs, ``--clients /
   --users`` sockets per user, each joined to ``general`` and having received the join answers): the difference /
   clients = bytes per idle connection. Both servers then keep their clients for all the rounds;
3. per round, for each server (the order alternates every round):

   a. latency: ``--messages`` messages at ``--rate`` per second (open-loop schedule), each sent through the
      WebSocket by one of the clients in turn (the portal stores it as ``send_message`` does), text
      ``fan:<phase>:<sender>:<seq>:<perf_counter_ns>``; every client records every delivery; latency = arrival
      minus the embedded send time (``CLOCK_MONOTONIC``, one clock for all processes). Every message must reach
      every client exactly once, else the run is invalid;
   b. maximum rate: ``--senders`` clients each keep ``--window`` messages in flight (the next one goes as soon as
      the sender receives its own message back, i.e. as fast as the server accepts them) for
      ``--warmup + --duration`` s; deliveries received by all clients are counted over the last ``--duration``
      s. Afterwards every client must have received every message; a client the server closed (e.g. 1013, "client
      too slow", when an outbox falls ``PORTAL_WS_MAX_PENDING`` frames behind) makes the run invalid and is
      reported as a finding;
4. prints per-round lines and a table of medians over the valid rounds with the ratios portal / baseline and the
   verdicts, and the CPU used by the server, the clients, softirq and everything else during each phase.

Targets (issue "Real-time chat"): portal p99 latency at ``--rate`` msg/s <= 3x the baseline's; portal deliveries/s
at the maximum rate >= 0.5x the baseline's; portal memory per idle connection < 60 KB (KB = 1000 bytes).
Exit status: 0 when every run was valid (targets met or not: see the verdicts), 2 when a run was invalid,
1 when the setup failed. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import math
import multiprocessing
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # script form: import ``portal``, ``tests`` and ``bench`` from the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.harness import LOOPBACK, BaselineServer, BenchError, start_portal  # noqa: E402

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from tests.portal_server import PortalServer, SharedBackend

CHANNEL = "general"
REQUEST_TIMEOUT = 30.0
LATENCY_RATIO_TARGET = 3.0  # portal p99 <= 3x baseline p99
THROUGHPUT_RATIO_TARGET = 0.5  # portal deliveries/s >= 0.5x baseline
MEMORY_TARGET_KB = 60.0  # portal bytes per idle connection < 60 KB
NOFILE_WANTED = 65536
DISTURBED_CORES = 0.25
PORTAL_ENV = {
    "PORTAL_CHAT_MESSAGE_RATE": "100000 per 5 seconds",
    "PORTAL_RATE_LIMIT_API": "100000000/minute",
    "PORTAL_RATE_LIMIT_AUTH": "100000000/minute",
    "PORTAL_WS_MAX_PER_USER": "100",
}


def check_loopback(host: str) -> None:
    if host != LOOPBACK:
        raise BenchError(f"refusing to load a non-loopback target: {host}")


def raise_nofile(wanted: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE before anything is spawned (children inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def percentile(values: list[int] | array.array[int], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an already sorted sequence."""
    if not values:
        return math.nan
    return float(values[max(0, math.ceil(p / 100 * len(values)) - 1)])


# -- client workers -----------------------------------------------------------------------------------------------
class ClientPool:
    """``procs`` processes (spawn) running ``bench.chat_client.worker_main``; gid ``g`` lives in ``g % procs``."""

    def __init__(self, procs: int, client: str) -> None:
        from bench.chat_client import worker_main

        self.procs = procs
        self.client = client
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.workers: list[multiprocessing.process.BaseProcess] = []
        for wid in range(procs):
            parent, child = ctx.Pipe()
            worker = ctx.Process(target=worker_main, args=(wid, child), name=f"chat-client-{wid}", daemon=True)
            worker.start()
            child.close()
            self.pipes.append(parent)
            self.workers.append(worker)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    def worker_of(self, gid: int) -> int:
        return gid % self.procs

    def call(self, commands: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Send one command to each worker and wait (at most ``timeout`` s) for all the answers."""
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        return self.collect(timeout)

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        answers: list[dict[str, Any]] = []
        for wid, pipe in enumerate(self.pipes):
            left = deadline - time.monotonic()
            if left <= 0 or not pipe.poll(left):
                raise BenchError(f"client worker {wid} did not answer within {timeout:.0f} s")
            answer = pipe.recv()
            if "fatal" in answer:
                raise BenchError(str(answer["fatal"]))
            answers.append(answer)
        return answers

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send({"cmd": "exit"})
        deadline = time.monotonic() + 5
        for worker in self.workers:
            worker.join(max(0.1, deadline - time.monotonic()))
            if worker.is_alive():
                worker.terminate()
                worker.join(2)
            if worker.is_alive():
                worker.kill()
                worker.join(1)
        for pipe in self.pipes:
            pipe.close()


# -- servers ------------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """A running server the clients connect to; its connections are the worker group ``name``."""

    name: str
    port: int
    path: str
    join: str | None
    tokens: list[str]  # portal: one JWT per user; connection gid uses tokens[gid % len(tokens)]
    proc: subprocess.Popen[bytes]

    def headers(self, gid: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[gid % len(self.tokens)]}"} if self.tokens else {}

    def processes(self) -> list[psutil.Process]:
        """The server process and its descendants (``portal serve`` runs uvicorn in process: normally just one)."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []


def _cpu_of(procs: list[psutil.Process]) -> tuple[float, float]:
    user = system = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            user, system = user + times.user, system + times.system
    return user, system


def _rss_of(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def settled_rss(target: Target, max_wait: float = 6.0, tolerance: int = 64 * 1024) -> int:
    """The server's RSS once two readings 0.5 s apart differ by less than ``tolerance`` (at most ``max_wait`` s)."""
    deadline = time.monotonic() + max_wait
    last = _rss_of(target.processes())
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _rss_of(target.processes())
        if abs(now - last) < tolerance:
            return now
        last = now
    return last


class CpuMeter:
    """CPU time of the server (user, system), the client workers, this process, and the whole machine."""

    def __init__(self, target: Target, pool: ClientPool) -> None:
        self.server = target.processes()
        self.clients = [psutil.Process(pid) for pid in pool.pids]

    def snapshot(self) -> tuple[float, ...]:
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        irq = getattr(machine, "softirq", 0.0) + getattr(machine, "irq", 0.0)
        own = os.times()
        return (
            time.monotonic(),
            busy,
            irq,
            *_cpu_of(self.server),
            sum(_cpu_of(self.clients)),
            own.user + own.system,
        )

    @staticmethod
    def cores(before: tuple[float, ...], after: tuple[float, ...]) -> dict[str, float]:
        wall, busy, irq, s_user, s_sys, clients, own = (b - a for a, b in zip(before, after, strict=True))
        if wall <= 0:
            return {}
        server = s_user + s_sys
        return {
            "server_cores": server / wall,
            "server_sys_share": s_sys / server if server else math.nan,
            "client_cores": clients / wall,
            # interrupt and softirq time (loopback TCP is partly processed there) is charged to no process
            "irq_cores": irq / wall,
            "other_cores": max(0.0, busy - irq - server - clients - own) / wall,
            "server_cpu_s": server,
            "client_cpu_s": clients,
        }


def sleep_until_ns(deadline_ns: int) -> None:
    left = (deadline_ns - time.perf_counter_ns()) / 1e9
    if left > 0:
        time.sleep(left)


# -- portal users -------------------------------------------------------------------------------------------------
def expect_json(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code not in (200, 201):
        raise BenchError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    body = response.json()
    if not isinstance(body, dict):
        raise BenchError(f"{what}: expected a JSON object, got {body!r}")
    return body


def make_users(portal: PortalServer, count: int) -> list[str]:
    """Create ``count`` users as root and log each in once; returns their JWTs."""
    check_loopback(portal.base_url.split("//", 1)[1].rsplit(":", 1)[0])
    password = "fanout-" + secrets.token_hex(8)
    prefix = "fan" + secrets.token_hex(3)
    with httpx.Client(base_url=portal.base_url, timeout=REQUEST_TIMEOUT) as client:
        body = expect_json(
            client.post("/api/token", json={"username": portal.admin_user, "password": portal.admin_password}),
            "root login",
        )
        root_headers = {"Authorization": f"Bearer {body['token']}"}

        def create(i: int) -> str:
            name = f"{prefix}{i:04d}"
            expect_json(
                client.post("/api/users", json={"username": name, "password": password}, headers=root_headers),
                f"create user {name}",
            )
            token = expect_json(client.post("/api/token", json={"username": name, "password": password}), "login")
            return str(token["token"])

        with ThreadPoolExecutor(4) as pool:  # the server hashes off its event loop; 4 in flight use both cores
            return list(pool.map(create, range(count)))


# -- measurements -------------------------------------------------------------------------------------------------
@dataclass
class Phases:
    last: int = 1

    def new(self) -> int:
        self.last += 1
        return self.last


@dataclass
class Opening:
    """Opening the clients on a fresh server: memory per idle connection, time to connect (and join)."""

    target: str
    clients: int
    connected: int = 0
    connect_s: float = 0.0
    rss_before: int = 0
    rss_idle: int = 0
    bytes_per_conn: float = math.nan
    connect_cpu: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def server_ms_per_conn(self) -> float:
        return self.connect_cpu.get("server_cpu_s", math.nan) / max(1, self.connected) * 1000


@dataclass
class RoundResult:
    target: str
    round: int
    clients: int
    # latency phase
    lat_sent: int = 0
    lat_expected: int = 0
    lat_received: int = 0
    lat_dups: int = 0
    lat_p50_ms: float = math.nan
    lat_p99_ms: float = math.nan
    lat_max_ms: float = math.nan
    lat_send_lateness_ms: float = 0.0
    lat_cpu: dict[str, float] = field(default_factory=dict)
    # maximum rate phase
    flood_sent: int = 0
    flood_rate: float = math.nan  # deliveries / s over the window
    flood_msgs_per_s: float = math.nan
    flood_window_deliveries: int = 0
    flood_missing: int = 0
    flood_p50_ms: float = math.nan
    flood_p99_ms: float = math.nan
    flood_cpu: dict[str, float] = field(default_factory=dict)
    server_us_per_delivery: float = math.nan
    client_us_per_delivery: float = math.nan
    rss_loaded: int = 0
    closed: dict[str, dict[int, int]] = field(default_factory=dict)  # phase -> close code -> count
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def disturbed(self) -> bool:
        return max(self.lat_cpu.get("other_cores", 0.0), self.flood_cpu.get("other_cores", 0.0)) > DISTURBED_CORES


def _merge_closed(answers: list[dict[str, Any]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for answer in answers:
        for code, n in answer.get("closed", {}).items():
            merged[int(code)] = merged.get(int(code), 0) + int(n)
    return merged


def _latencies(answers: list[dict[str, Any]]) -> array.array[int]:
    values = array.array("q")
    for answer in answers:
        values.frombytes(answer["latencies"])
    return array.array("q", sorted(values))


def _error_count(answers: list[dict[str, Any]]) -> int:
    return sum(int(a["error_count"]) for a in answers)


def connect_clients(
    pool: ClientPool, target: Target, group: str, gids: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    commands = [
        {"cmd": "connect", "group": group, "client": pool.client, "host": LOOPBACK, "port": target.port,
         "path": target.path, "join": target.join, "concurrency": args.connect_concurrency, "timeout": 20.0,
         "deadline_s": args.connect_timeout,
         "conns": [(gid, target.headers(gid)) for gid in gids if pool.worker_of(gid) == wid]}
        for wid in range(pool.procs)
    ]  # fmt: skip
    started = time.perf_counter()
    answers = pool.call(commands, timeout=args.connect_timeout + 30)
    return {
        "connected": sum(a["connected"] for a in answers),
        "failed": sum(a["failed"] for a in answers),
        "failures": [f for a in answers for f in a["failures"]][:10],
        "errors": [e for a in answers for e in a["errors"]][:10],
        "seconds": time.perf_counter() - started,
    }


def close_clients(pool: ClientPool, group: str | None = None) -> None:
    command: dict[str, Any] = {"cmd": "close", "timeout": 3.0}
    if group is not None:
        command["group"] = group
    pool.call([command] * pool.procs, timeout=60)


def run_latency(
    pool: ClientPool, target: Target, group: str, gids: list[int], phase: int, count: int, rate: float, drain: float
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """``count`` messages at ``rate``/s, message k sent by gids[k % len(gids)]; returns the workers' answers."""
    start_ns = time.perf_counter_ns() + 300_000_000
    sends: list[list[tuple[int, int]]] = [[] for _ in range(pool.procs)]
    for seq in range(count):
        gid = gids[seq % len(gids)]
        sends[pool.worker_of(gid)].append((seq, gid))
    commands = [
        {"cmd": "latency", "group": group, "phase": phase, "count": count, "rate": rate, "start_ns": start_ns,
         "drain_s": drain, "sends": sends[wid]}
        for wid in range(pool.procs)
    ]  # fmt: skip
    meter = CpuMeter(target, pool)
    for pipe, command in zip(pool.pipes, commands, strict=True):
        pipe.send(command)
    sleep_until_ns(start_ns)
    before = meter.snapshot()
    sleep_until_ns(start_ns + int(count / rate * 1e9))
    cpu = CpuMeter.cores(before, meter.snapshot())
    answers = pool.collect(timeout=count / rate + drain + 30)
    return answers, cpu


def run_flood(
    pool: ClientPool, target: Target, gids: list[int], phase: int, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    senders = [gids[i * len(gids) // args.senders] for i in range(args.senders)]
    start_ns = time.perf_counter_ns() + 300_000_000
    measure_ns = start_ns + int(args.warmup * 1e9)
    stop_ns = measure_ns + int(args.duration * 1e9)
    commands = [
        {"cmd": "flood", "group": target.name, "phase": phase, "window": args.window, "start_ns": start_ns,
         "measure_from_ns": measure_ns, "stop_ns": stop_ns, "drain_s": args.drain, "sample_every": args.sample_every,
         "senders": [g for g in senders if pool.worker_of(g) == wid]}
        for wid in range(pool.procs)
    ]  # fmt: skip
    meter = CpuMeter(target, pool)
    for pipe, command in zip(pool.pipes, commands, strict=True):
        pipe.send(command)
    sleep_until_ns(measure_ns)
    before = meter.snapshot()
    sleep_until_ns(stop_ns)
    cpu = CpuMeter.cores(before, meter.snapshot())
    answers = pool.collect(timeout=args.warmup + args.duration + args.drain + 30)
    return answers, cpu


def open_target(pool: ClientPool, target: Target, phases: Phases, args: argparse.Namespace) -> Opening:
    """Warm up, then open ``--clients`` connections and measure the server's RSS before and after."""
    n = args.clients
    opening = Opening(target.name, n)
    # warm-up: gids n.. (they map to users as the real connections do), a few messages, closed again
    warm = list(range(n, n + args.warm_clients))
    info = connect_clients(pool, target, "warm", warm, args)
    if info["connected"] != len(warm):
        raise BenchError(f"{target.name}: warm-up connections failed: {info['failures']} {info['errors']}")
    run_latency(pool, target, "warm", warm, phases.new(), count=10, rate=50.0, drain=5.0)
    close_clients(pool, "warm")
    time.sleep(0.5)

    opening.rss_before = settled_rss(target)
    meter = CpuMeter(target, pool)
    before = meter.snapshot()
    info = connect_clients(pool, target, target.name, list(range(n)), args)
    opening.connect_cpu = CpuMeter.cores(before, meter.snapshot())
    opening.connected, opening.connect_s, opening.errors = info["connected"], info["seconds"], info["errors"]
    if info["connected"] != n:
        opening.problems.append(f"{n - info['connected']} of {n} connections failed: {info['failures'][:3]}")
    time.sleep(1.0)
    opening.rss_idle = settled_rss(target)
    if opening.connected:
        opening.bytes_per_conn = (opening.rss_idle - opening.rss_before) / opening.connected
    print(
        f"  {target.name:<8} {opening.connected} clients connected{' and joined' if target.join else ''} in"
        f" {opening.connect_s:.1f} s; RSS {opening.rss_before / 2**20:.1f} -> {opening.rss_idle / 2**20:.1f} MiB"
        f" = {opening.bytes_per_conn / 1000:.1f} KB per idle connection; server CPU"
        f" {opening.server_ms_per_conn:.2f} ms per connection ({opening.connect_cpu.get('server_cores', 0):.2f} cores)",
        flush=True,
    )
    for problem in opening.problems:
        print(f"  {target.name:<8} INVALID: {problem}", flush=True)
    return opening


def measure_round(
    pool: ClientPool, target: Target, connected: int, round_no: int, phases: Phases, args: argparse.Namespace
) -> RoundResult:
    result = RoundResult(target.name, round_no, connected)
    gids = list(range(args.clients))

    # latency at a fixed rate
    answers, cpu = run_latency(pool, target, target.name, gids, phases.new(), args.messages, args.rate, args.drain)
    result.lat_cpu = cpu
    result.lat_sent = sum(a["sent"] for a in answers)
    result.lat_expected = args.messages * connected
    result.lat_received = sum(a["received"] for a in answers)
    result.lat_dups = sum(a["dups"] for a in answers)
    result.lat_send_lateness_ms = max(a["send_lateness_max_ns"] for a in answers) / 1e6
    lat = _latencies(answers)
    result.lat_p50_ms, result.lat_p99_ms = percentile(lat, 50) / 1e6, percentile(lat, 99) / 1e6
    result.lat_max_ms = (lat[-1] / 1e6) if lat else math.nan
    closed = _merge_closed(answers)
    result.closed["latency"] = closed
    result.errors += [e for a in answers for e in a["errors"]]
    if result.lat_sent != args.messages:
        result.problems.append(f"latency: only {result.lat_sent} of {args.messages} messages could be sent")
    missing = result.lat_expected - result.lat_received
    if missing or result.lat_dups:
        per_message = [0] * args.messages
        for a in answers:
            part = array.array("l")
            part.frombytes(a["per_message"])
            per_message = [x + y for x, y in zip(per_message, part, strict=True)]
        short = sum(1 for c in per_message if c < connected)
        result.problems.append(
            f"latency: {missing} deliveries missing ({short} of {args.messages} messages had not reached every"
            f" client {args.drain:g} s (--drain) after the last was sent), {result.lat_dups} duplicates"
        )
    if closed:
        result.problems.append(f"latency: connections closed by the server: {closed}")
    if _error_count(answers):
        result.problems.append(f"latency: {_error_count(answers)} error frames")
    mark = " (disturbed)" if cpu.get("other_cores", 0) > DISTURBED_CORES else ""
    print(
        f"    {target.name:<8} latency @ {args.rate:g} msg/s x {args.messages}: p50 {result.lat_p50_ms:.2f} ms,"
        f" p99 {result.lat_p99_ms:.2f} ms, max {result.lat_max_ms:.2f} ms;"
        f" {result.lat_received}/{result.lat_expected} deliveries, sends late by <= {result.lat_send_lateness_ms:.1f}"
        f" ms; server {cpu.get('server_cores', 0):.2f} cores,"
        f" clients {cpu.get('client_cores', 0):.2f}, softirq {cpu.get('irq_cores', 0):.2f},"
        f" other {cpu.get('other_cores', 0):.2f}{mark}",
        flush=True,
    )

    # maximum rate
    answers, cpu = run_flood(pool, target, gids, phases.new(), args)
    result.flood_cpu = cpu
    result.flood_sent = sent = sum(a["sent"] for a in answers)
    result.flood_window_deliveries = sum(a["window_deliveries"] for a in answers)
    result.flood_rate = sum(a["window_deliveries"] / a["window_s"] for a in answers if a["window_s"] > 0)
    result.flood_msgs_per_s = result.flood_rate / max(1, connected)
    if result.flood_window_deliveries:
        result.server_us_per_delivery = cpu.get("server_cpu_s", math.nan) / result.flood_window_deliveries * 1e6
        result.client_us_per_delivery = cpu.get("client_cpu_s", math.nan) / result.flood_window_deliveries * 1e6
    counts = array.array("l")
    for a in answers:
        counts.frombytes(a["per_conn"])
    result.flood_missing = sum(max(0, sent - c) for c in counts)
    lat = _latencies(answers)
    result.flood_p50_ms, result.flood_p99_ms = percentile(lat, 50) / 1e6, percentile(lat, 99) / 1e6
    closed = _merge_closed(answers)
    result.closed["max rate"] = closed
    result.errors += [e for a in answers for e in a["errors"]]
    if closed:
        slow = closed.get(1013, 0)
        result.problems.append(
            f"max rate: connections closed by the server: {closed}"
            + (f" ({slow} closed 1013 'client too slow': their outbox fell behind)" if slow else "")
        )
    if result.flood_missing:
        result.problems.append(
            f"max rate: {result.flood_missing} deliveries missing ({sum(1 for c in counts if c < sent)} clients"
            f" short of the {sent} messages {args.drain:g} s after the last was sent)"
        )
    if any(c > sent for c in counts):
        result.problems.append("max rate: some clients received more messages than were sent (duplicates)")
    if _error_count(answers):
        result.problems.append(f"max rate: {_error_count(answers)} error frames")
    result.rss_loaded = _rss_of(target.processes())
    mark = " (disturbed)" if cpu.get("other_cores", 0) > DISTURBED_CORES else ""
    print(
        f"    {target.name:<8} max rate: {result.flood_rate:,.0f} deliveries/s ({result.flood_msgs_per_s:.1f} msg/s"
        f" x {connected}), p50 {result.flood_p50_ms:.1f} ms, p99 {result.flood_p99_ms:.1f} ms;"
        f" server {cpu.get('server_cores', 0):.2f} cores ({cpu.get('server_sys_share', 0):.0%} system)"
        f" = {result.server_us_per_delivery:.1f} us/delivery, clients {cpu.get('client_cores', 0):.2f} cores"
        f" = {result.client_us_per_delivery:.1f} us/delivery, softirq {cpu.get('irq_cores', 0):.2f},"
        f" other {cpu.get('other_cores', 0):.2f}{mark}",
        flush=True,
    )
    for problem in result.problems:
        print(f"    {target.name:<8} INVALID: {problem}", flush=True)
    return result


# -- report -------------------------------------------------------------------------------------------------------
METRICS = (  # key, label, format
    ("lat_p50_ms", "latency p50 (ms)", "{:.2f}"),
    ("lat_p99_ms", "latency p99 (ms)", "{:.2f}"),
    ("lat_max_ms", "latency max (ms)", "{:.2f}"),
    ("lat_server_cores", "  server cores", "{:.2f}"),
    ("lat_client_cores", "  client cores", "{:.2f}"),
    ("flood_rate", "max deliveries/s", "{:,.0f}"),
    ("flood_msgs_per_s", "  = messages/s", "{:.1f}"),
    ("flood_p99_ms", "  latency p99 (ms)", "{:.1f}"),
    ("flood_server_cores", "  server cores", "{:.2f}"),
    ("flood_server_sys_share", "  server system share", "{:.0%}"),
    ("server_us_per_delivery", "  server CPU us/delivery", "{:.1f}"),
    ("flood_client_cores", "  client cores", "{:.2f}"),
    ("flood_irq_cores", "  softirq cores", "{:.2f}"),
    ("client_us_per_delivery", "  client CPU us/delivery", "{:.1f}"),
    ("kb_per_conn", "memory KB/idle conn", "{:.1f}"),
    ("connect_ms_per_conn", "open (+join) wall ms/conn", "{:.2f}"),
    ("connect_cpu_ms_per_conn", "  server CPU ms/conn", "{:.2f}"),
)


def _metric(r: RoundResult, key: str) -> float:
    for prefix, cpu in (("lat_", r.lat_cpu), ("flood_", r.flood_cpu)):
        if key.startswith(prefix) and (key.endswith("_cores") or key.endswith("_share")):
            return cpu.get(key[len(prefix) :], math.nan)
    return float(getattr(r, key))


def summarise(results: list[RoundResult], openings: dict[str, Opening]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for name, opening in openings.items():
        valid = [r for r in results if r.target == name and r.valid]
        entry: dict[str, float] = {
            "valid_runs": len(valid),
            "runs": sum(1 for r in results if r.target == name),
            "disturbed_runs": sum(1 for r in valid if r.disturbed),
        }
        for key, _, _ in METRICS:
            if key == "kb_per_conn":
                entry[key] = opening.bytes_per_conn / 1000 if not opening.problems else math.nan
            elif key == "connect_ms_per_conn":
                entry[key] = opening.connect_s / max(1, opening.connected) * 1000
            elif key == "connect_cpu_ms_per_conn":
                entry[key] = opening.server_ms_per_conn
            else:
                values = [v for v in (_metric(r, key) for r in valid) if not math.isnan(v)]
                entry[key] = statistics.median(values) if values else math.nan
        summary[name] = entry
    return summary


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def verdicts(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    base, portal = summary["baseline"], summary["portal"]

    def check(ratio: float, ok: bool) -> bool | None:
        return None if math.isnan(ratio) else ok

    lat = _ratio(portal["lat_p99_ms"], base["lat_p99_ms"])
    rate = _ratio(portal["flood_rate"], base["flood_rate"])
    kb = portal["kb_per_conn"]
    return {
        "latency_p99": {"ratio": lat, "target": f"<= {LATENCY_RATIO_TARGET:g}x baseline",
                        "pass": check(lat, lat <= LATENCY_RATIO_TARGET)},
        "max_deliveries": {"ratio": rate, "target": f">= {THROUGHPUT_RATIO_TARGET:g}x baseline",
                           "pass": check(rate, rate >= THROUGHPUT_RATIO_TARGET)},
        "memory": {"value_kb": kb, "ratio": _ratio(kb, base["kb_per_conn"]), "target": f"< {MEMORY_TARGET_KB:g} KB",
                   "pass": check(kb, kb < MEMORY_TARGET_KB)},
    }  # fmt: skip


def report(results: list[RoundResult], openings: dict[str, Opening], args: argparse.Namespace) -> dict[str, Any]:
    summary = summarise(results, openings)
    names = list(openings)
    print()
    print(
        f"Fan-out to {args.clients} clients in one channel: medians over the valid rounds ("
        + ", ".join(f"{n} {summary[n]['valid_runs']:.0f}/{summary[n]['runs']:.0f} valid" for n in names)
        + ")"
    )
    verdict = verdicts(summary) if len(names) == 2 else {}
    header = (
        f"  {'metric':<26}" + "".join(f"{n:>12}" for n in names) + (f"{'portal/base':>13}  verdict" * bool(verdict))
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    checks = {"lat_p99_ms": "latency_p99", "flood_rate": "max_deliveries", "kb_per_conn": "memory"}
    for key, label, fmt in METRICS:
        values = [summary[n][key] for n in names]
        cells = "".join(f"{'-' if math.isnan(v) else fmt.format(v):>12}" for v in values)
        tail = ""
        if verdict:
            ratio = _ratio(values[1], values[0])
            tail = f"{'-' if math.isnan(ratio) or key.endswith('_share') else f'{ratio:.2f}x':>13}"
            if key in checks:
                v = verdict[checks[key]]
                tail += f"  {({True: 'PASS', False: 'FAIL', None: 'n/a'})[v['pass']]} (portal {v['target']})"
        print(f"  {label:<26}{cells}{tail}")
    print(
        f"  latency: {args.messages} messages at {args.rate:g}/s, each to every client; p50/p99/max over all"
        f" deliveries. max rate: {args.senders} senders x {args.window} messages in flight, deliveries counted over"
        f" {args.duration:g} s. cores: CPU time / wall time of the server process and of all client workers"
        " together during the phase. memory: (RSS with the idle clients - RSS before) / clients, KB = 1000 bytes,"
        " measured once per server, on a fresh process after a small warm-up"
    )
    for name in names:
        offered, capacity = args.rate * openings[name].connected, summary[name]["flood_rate"]
        if capacity and offered > 0.9 * capacity:
            print(
                f"  NOTE: {name}: the latency phase offers {offered:,.0f} deliveries/s, {offered / capacity:.0%} of"
                f" its maximum ({capacity:,.0f}/s; server {summary[name]['lat_server_cores']:.2f} cores at the rate):"
                " it is saturated, its queues grow for the whole phase, and its latency grows with --messages"
                " rather than settling (try --rate lower to see its unsaturated latency)"
            )
    disturbed = [r for r in results if r.disturbed]
    if disturbed:
        print(
            f"  WARNING: in {len(disturbed)} of {len(results)} runs other processes used more than {DISTURBED_CORES}"
            " cores (marked 'disturbed' above); their latency and rate figures are disturbed"
        )
    problems = [(f"{o.target} (opening)", p) for o in openings.values() for p in o.problems]
    problems += [(f"round {r.round} {r.target}", p) for r in results for p in r.problems]
    if problems:
        print(f"\n  INVALID ({len(problems)}), left out of the medians:")
        for where, problem in problems:
            print(f"    {where}: {problem}")
        for error in [e for r in results for e in r.errors][:5]:
            print(f"      e.g. {error}")
    slow = [(r, phase, codes[1013]) for r in results for phase, codes in r.closed.items() if codes.get(1013)]
    if slow:
        print("\n  FINDING: the server closed clients with 1013 (outgoing queue full, 'client too slow'):")
        for r, phase, n in slow:
            print(f"    round {r.round} {r.target} {phase}: {n} clients")
    return {"summary": summary, "verdicts": verdict}


# -- main ---------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--rounds", type=int, default=3, help="rounds; each measures both servers, order alternating (default 3)")
    add("--clients", type=int, default=1000, help="WebSocket clients joined to the channel (default 1000)")
    add("--users", type=int, default=50, help="portal users the clients are spread over (default 50)")
    add("--rate", type=float, default=20.0, help="messages per second in the latency phase (default 20)")
    add("--messages", type=int, default=200, help="messages in the latency phase (default 200)")
    add("--duration", type=float, default=10.0, help="seconds over which max-rate deliveries are counted (10)")
    add("--warmup", type=float, default=2.0, help="seconds of max-rate load before counting starts (default 2)")
    add("--senders", type=int, default=8, help="clients that send in the max-rate phase (default 8)")
    add("--window", type=int, default=2, help="messages each max-rate sender keeps in flight (default 2)")
    add("--drain", type=float, default=15.0, help="seconds allowed for the last deliveries after a phase (15)")
    add("--procs", type=int, default=2, help="client worker processes (default 2)")
    add("--client", choices=("raw", "websockets"), default="raw", help="client implementation (default raw)")
    add("--warm-clients", type=int, default=10, help="connections of the unmeasured warm-up (default 10)")
    add("--connect-concurrency", type=int, default=25, help="handshakes in progress per worker (default 25)")
    add("--connect-timeout", type=float, default=180.0, help="seconds allowed to open all clients (default 180)")
    add("--sample-every", type=int, default=10, help="max-rate latency: record every Nth delivery (default 10)")
    add(
        "--wait-quiet",
        type=float,
        default=20.0,
        help=f"before each run, wait up to this many seconds for other processes to use under {DISTURBED_CORES}"
        " CPU cores (0: do not wait; default 20)",
    )
    add("--only", choices=("both", "portal", "baseline"), default="both", help="measure one server only")
    add("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    for name, low, high in (
        ("rounds", 1, 20),
        ("clients", 1, 20000),
        ("users", 1, 1000),
        ("rate", 0.1, 10000),
        ("messages", 1, 100000),
        ("duration", 1, 120),
        ("warmup", 0, 60),
        ("senders", 1, 1000),
        ("window", 1, 100),
        ("drain", 1, 120),
        ("procs", 1, 16),
        ("warm_clients", 1, 100),
        ("connect_concurrency", 1, 1000),
        ("connect_timeout", 5, 600),
        ("sample_every", 1, 1000),
        ("wait_quiet", 0, 600),
    ):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low:g} and {high:g}")
    if args.senders > args.clients:
        parser.error("--senders cannot exceed --clients")
    if args.messages / args.rate > 120:
        parser.error("the latency phase (--messages / --rate) must take at most 120 s")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Servers:
    """The servers of one benchmark run; ``stop`` ends whichever were started."""

    def __init__(self) -> None:
        self.shared: SharedBackend | None = None
        self.portal: PortalServer | None = None
        self.baseline: BaselineServer | None = None

    def create_users(self, count: int) -> list[str]:
        """Create ``count`` users on a portal of its own (stopped again) and return their JWTs.

        Every portal of the run shares its data dir and secret key, so the JWTs stay valid.
        """
        from tests.portal_server import PortalServer, SharedBackend

        self.shared = SharedBackend("sqlite")
        setup = start_portal(PortalServer(shared=self.shared, env=dict(PORTAL_ENV)))
        try:
            return make_users(setup, count)
        finally:
            setup.stop()

    def start_portal(self, tokens: list[str]) -> Target:
        from tests.portal_server import PortalServer

        assert self.shared is not None, "create_users first"
        self.portal = PortalServer(shared=self.shared, env=dict(PORTAL_ENV))
        start_portal(self.portal)
        assert self.portal.proc is not None
        return Target("portal", self.portal.port, "/ws/chat", CHANNEL, tokens, self.portal.proc)

    def start_baseline(self) -> Target:
        self.baseline = BaselineServer().start()
        assert self.baseline.proc is not None
        return Target("baseline", self.baseline.port, "/", None, [], self.baseline.proc)

    def log_excerpts(self, lines: int = 40) -> list[str]:
        """Tracebacks and error lines from the servers' logs (portal: uvicorn at log level warning)."""
        out = []
        for name, server in (("portal", self.portal), ("baseline", self.baseline)):
            text = server.log() if server is not None else ""
            picked = [
                line
                for line in text.splitlines()
                if any(word in line for word in ("Traceback", "Error", "ERROR", "Exception", "WARNING"))
            ]
            if picked:
                first = text.find("Traceback")
                tail = text[first:].splitlines()[:lines] if first >= 0 else []
                out.append(f"--- {name} log: {len(picked)} error/warning lines, e.g. ---")
                out += picked[:5] + tail
        return out

    def stop(self) -> None:
        for server in (self.portal, self.baseline):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        self.portal = self.baseline = None
        if self.shared is not None:
            self.shared.close()
            self.shared = None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, _ = raise_nofile(NOFILE_WANTED)  # first: every process spawned below inherits it
    needed = 2 * args.clients + args.warm_clients + 100
    if soft < needed:
        print(f"error: the open-file limit is {soft}, {needed} are needed (raise the hard limit)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    os.environ["PORTAL_TEST_BACKEND"] = "sqlite"

    from bench.auth_throughput import wait_for_quiet

    print(
        f"chat fan-out benchmark: {args.clients} clients in #{CHANNEL}, {args.rounds} rounds, {args.procs} client"
        f" processes ({args.client} client), {os.cpu_count()} CPUs, python {sys.version.split()[0]}, open-file limit"
        f" {soft}, load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    names = ["baseline", "portal"] if args.only == "both" else [args.only]
    servers = Servers()
    pool: ClientPool | None = None
    results: list[RoundResult] = []
    try:
        pool = ClientPool(args.procs, args.client)
        tokens: list[str] = []
        if "portal" in names:
            started = time.perf_counter()
            tokens = servers.create_users(args.users)
            print(f"  {args.users} users created and logged in ({time.perf_counter() - started:.1f} s)")
        phases = Phases()
        targets: dict[str, Target] = {}
        openings: dict[str, Opening] = {}
        for name in names:  # fresh server processes; both stay up, with their clients, for all the rounds
            if args.wait_quiet > 0:
                wait_for_quiet(args.wait_quiet)
            targets[name] = servers.start_portal(tokens) if name == "portal" else servers.start_baseline()
            openings[name] = open_target(pool, targets[name], phases, args)
        for round_no in range(1, args.rounds + 1):
            print(f"  round {round_no}/{args.rounds}", flush=True)
            for name in names if round_no % 2 else names[::-1]:
                if args.wait_quiet > 0 and (load := wait_for_quiet(args.wait_quiet)) > DISTURBED_CORES:
                    print(f"    (other processes still use {load:.2f} cores; measuring anyway)", flush=True)
                target = targets[name]
                results.append(measure_round(pool, target, openings[name].connected, round_no, phases, args))
                if target.proc.poll() is not None:
                    raise BenchError(f"the {name} server died during round {round_no}")
        for name, target in targets.items():
            print(f"  {name:<8} RSS after the rounds: {_rss_of(target.processes()) / 2**20:.1f} MiB")
        for line in servers.log_excerpts():
            print(f"  {line}")
        close_clients(pool)
        out = report(results, openings, args)
        out.update(
            {
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "openings": {
                    name: vars(o) | {"server_ms_per_conn": o.server_ms_per_conn} for name, o in openings.items()
                },
                "runs": [vars(r) | {"valid": r.valid, "disturbed": r.disturbed} for r in results],
            }
        )
        if args.json:
            args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
            print(f"\n  results written to {args.json}")
        print(f"  load average {os.getloadavg()[0]:.2f} at the end")
        valid = all(r.valid for r in results) and not any(o.problems for o in openings.values())
        return 0 if valid else 2
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if servers.portal is not None:
            print(f"--- portal log ---\n{servers.portal.log()[-4000:]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopping the servers and the clients", file=sys.stderr)
        return 130
    finally:
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.stop()
        servers.stop()


if __name__ == "__main__":
    sys.exit(main())
