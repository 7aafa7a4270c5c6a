"""Issue #2: authenticated ``GET /api/me`` throughput against a bare FastAPI route, and login latency.

Run from the repo root (either form)::

    .venv/bin/python bench/auth_throughput.py [--backend sqlite|postgres] [--rounds 5] [--duration 5]
    .venv/bin/python -m bench.auth_throughput

What it does, in one run:

1. starts the portal (``tests.portal_server.PortalServer``: ``python -m portal serve`` on a free loopback port,
   temp data dir, superadmin root / root-password-1, rate limits raised so they cannot cap the load) and the
   baseline ``bench/bare_app.py`` (one FastAPI route, the same uvicorn options) as two separate processes;
2. logs in for a JWT (``POST /api/token``) and creates an API key (``POST /api/api-keys``), and checks that
   every target answers 200 with the expected body;
3. drives ``GET /bare``, ``GET /api/me`` with the API key and ``GET /api/me`` with the JWT using ``wrk``
   (1 thread, a fixed number of keep-alive connections), alternating the targets, ``--rounds`` times for
   ``--duration`` seconds each; a run in which wrk saw a non-2xx response or a socket error is invalid and
   is left out of the medians (and reported);
4. times ``--logins`` sequential ``POST /api/token`` calls (argon2id verify + a JWT row), and the argon2
   verify alone in this process (``portal.accounts.passwords.verify_password``) for reference.

Targets (issue #2): authenticated rps >= 60 % of the bare route's rps; login median and p95 <= 150 ms.
Exit status: 0 when every run was valid (targets met or not: see the verdict column), 2 when a run was
invalid, 1 when the setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # script form: import ``portal`` and ``tests`` from the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.harness import LOOPBACK, BareServer, BenchError, run_with_portal_and_bare  # noqa: E402

if TYPE_CHECKING:
    from tests.portal_server import PortalServer

RATIO_TARGET = 0.60
LOGIN_TARGET_MS = 150.0
RATE_OVERRIDES = {
    "PORTAL_RATE_LIMIT_API": "100000000/minute",
    "PORTAL_RATE_LIMIT_AUTH": "100000000/minute",
}
REQUEST_TIMEOUT = 10.0


# -- wrk ---------------------------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    target: str
    round: int
    rps: float
    requests: int
    non_2xx: int
    socket_errors: int
    p50_ms: float | None
    p99_ms: float | None
    raw: str = field(repr=False, default="")
    cpu_us_per_request: float | None = None  # the server process's user+system CPU time / requests
    backing_us_per_request: float | None = None  # PostgreSQL + Redis CPU time / requests (postgres backend)
    wrk_cores: float | None = None  # CPU used by wrk itself, in cores
    other_cores: float | None = None  # CPU used by everything else on the machine during the run, in cores

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unrecognised wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str, target: str, round_no: int) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if rps is None or total is None:
        raise BenchError(f"could not parse wrk output for {target}:\n{output}")
    return WrkResult(
        target=target,
        round=round_no,
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        p50_ms=_ms(p50.group(1)) if p50 else None,
        p99_ms=_ms(p99.group(1)) if p99 else None,
        raw=output,
    )


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    sys.exit(
        "error: wrk (the HTTP load generator) is not installed.\n"
        "       Install the Debian package:  apt-get update && apt-get install -y wrk"
    )


def check_loopback(url: str) -> None:
    if urlsplit(url).hostname != LOOPBACK:
        raise BenchError(f"refusing to load a non-loopback target: {url}")


def run_wrk(
    wrk: str, url: str, headers: dict[str, str], *, duration: float, connections: int, target: str, round_no: int
) -> WrkResult:
    check_loopback(url)
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}) on {target}:\n{proc.stdout}\n{proc.stderr}")
    return parse_wrk(proc.stdout, target, round_no)


# -- setup and checks --------------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    proc: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None


def expect_json(response: httpx.Response, what: str) -> dict[str, object]:
    if response.status_code not in (200, 201):
        raise BenchError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    body = response.json()
    if not isinstance(body, dict):
        raise BenchError(f"{what}: expected a JSON object, got {body!r}")
    return body


def login(client: httpx.Client, username: str, password: str) -> str:
    body = expect_json(client.post("/api/token", json={"username": username, "password": password}), "login")
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise BenchError(f"login: no token in {body!r}")
    return token


def prepare_targets(portal: PortalServer, bare: BareServer) -> tuple[list[Target], str]:
    """Log in, make an API key, check every target's answer; returns the targets and the portal URL."""
    base_url = portal.base_url
    check_loopback(base_url)
    check_loopback(bare.base_url)
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        jwt_token = login(client, portal.admin_user, portal.admin_password)
        created = expect_json(
            client.post(
                "/api/api-keys",
                json={"name": "bench", "scopes": "*"},
                headers={"Authorization": f"Bearer {jwt_token}"},
            ),
            "create API key",
        )
        api_key = created.get("api_key")
        if not isinstance(api_key, str) or not api_key.startswith("portal_"):
            raise BenchError(f"create API key: unexpected response {created!r}")
        for label, credential in (("API key", api_key), ("JWT", jwt_token)):
            me = expect_json(client.get("/api/me", headers={"Authorization": f"Bearer {credential}"}), label)
            if me.get("username") != "root":
                raise BenchError(f"GET /api/me with the {label}: expected username 'root', got {me!r}")

    from bench.bare_app import BODY

    bare_body = expect_json(httpx.get(bare.base_url + "/bare", timeout=REQUEST_TIMEOUT), "GET /bare")
    if bare_body != BODY:
        raise BenchError(f"GET /bare: expected {BODY!r}, got {bare_body!r}")

    if portal.proc is None or bare.proc is None:
        raise BenchError("servers not started")
    targets = [
        Target("bare", bare.base_url + "/bare", {}, bare.proc),
        Target("me/api_key", base_url + "/api/me", {"Authorization": f"Bearer {api_key}"}, portal.proc),
        Target("me/jwt", base_url + "/api/me", {"Authorization": f"Bearer {jwt_token}"}, portal.proc),
    ]
    return targets, base_url


# -- measurements ------------------------------------------------------------------------------------------------
BACKING_SERVICES = ("postgres", "redis-server")
DISTURBED_CORES = 0.25


def _proc_cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class CpuMeter:
    """Splits the machine's busy CPU time during one run: server, backing services, wrk, this script, the rest."""

    def __init__(self, server: subprocess.Popen[bytes], watch_backing: bool) -> None:
        self.server = psutil.Process(server.pid)
        self.backing = (
            [p for p in psutil.process_iter(["name"]) if p.info["name"] in BACKING_SERVICES] if watch_backing else []
        )

    def snapshot(self) -> tuple[float, float, float, float, float, float]:
        sys_times = psutil.cpu_times()
        busy = sum(sys_times) - sys_times.idle - getattr(sys_times, "iowait", 0.0)
        own = os.times()
        return (
            time.monotonic(),
            busy,
            _proc_cpu([self.server]),
            _proc_cpu(self.backing),
            own.children_user + own.children_system,  # wrk, once waited for
            own.user + own.system,
        )

    @staticmethod
    def apply(result: WrkResult, before: tuple[float, ...], after: tuple[float, ...], backing: bool) -> None:
        wall, busy, server, services, wrk, own = (b - a for a, b in zip(before, after, strict=True))
        if result.requests:
            result.cpu_us_per_request = server / result.requests * 1e6
            if backing:
                result.backing_us_per_request = services / result.requests * 1e6
        if wall > 0:
            result.wrk_cores = wrk / wall
            result.other_cores = max(0.0, busy - server - services - wrk - own) / wall


def other_load(sample: float = 1.0) -> float:
    """CPU cores used by all processes but this one (and its idle servers) over ``sample`` seconds."""
    before, own_before = psutil.cpu_times(), os.times()
    time.sleep(sample)
    after, own_after = psutil.cpu_times(), os.times()

    def busy(t: Any) -> float:
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    own = (own_after.user + own_after.system) - (own_before.user + own_before.system)
    return max(0.0, busy(after) - busy(before) - own) / sample


def wait_for_quiet(max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until other processes use under DISTURBED_CORES; returns the last load."""
    deadline = time.monotonic() + max_wait
    load = other_load(0.5)
    while load > DISTURBED_CORES and time.monotonic() < deadline:
        load = other_load(1.0)
    return load


def measure_throughput(
    wrk: str,
    targets: list[Target],
    *,
    rounds: int,
    duration: float,
    warmup: float,
    connections: int,
    backing: bool = False,
    wait_quiet: float = 0.0,
) -> list[WrkResult]:
    for target in targets:  # warm caches (credential cache, SQLAlchemy statement cache, ...)
        run_wrk(
            wrk, target.url, target.headers, duration=warmup, connections=connections, target=target.name, round_no=0
        )
    meters = {target.name: CpuMeter(target.proc, backing) for target in targets}
    results: list[WrkResult] = []
    for round_no in range(1, rounds + 1):
        shift = (round_no - 1) % len(targets)  # rotate the order so no target always runs first
        for target in targets[shift:] + targets[:shift]:
            if wait_quiet > 0 and wait_for_quiet(wait_quiet) > DISTURBED_CORES:
                print(f"  (the machine did not become quiet within {wait_quiet:g} s; measuring anyway)", flush=True)
            meter = meters[target.name]
            before = meter.snapshot()
            result = run_wrk(
                wrk,
                target.url,
                target.headers,
                duration=duration,
                connections=connections,
                target=target.name,
                round_no=round_no,
            )
            if not target.alive():
                raise BenchError(f"the server behind {target.name} died during round {round_no}")
            meter.apply(result, before, meter.snapshot(), backing)
            results.append(result)
            flag = "" if result.valid else "  INVALID"
            backing_text = f" + {result.backing_us_per_request or 0:.0f} us in PostgreSQL/Redis" if backing else ""
            print(
                f"  round {round_no}/{rounds}  {target.name:<11} {result.rps:>9.1f} rps"
                f"  server CPU {result.cpu_us_per_request or 0:>5.0f} us/request{backing_text},"
                f" wrk {result.wrk_cores or 0:.2f} cores, other processes {result.other_cores or 0:.2f} cores{flag}",
                flush=True,
            )
    return results


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def measure_logins(base_url: str, username: str, password: str, count: int) -> list[float]:
    check_loopback(base_url)
    times: list[float] = []
    deadline = time.monotonic() + count * REQUEST_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        login(client, username, password)  # warm-up, not counted
        for _ in range(count):
            if time.monotonic() > deadline:
                raise BenchError("login measurement ran out of time")
            started = time.perf_counter()
            response = client.post("/api/token", json={"username": username, "password": password})
            elapsed = (time.perf_counter() - started) * 1000
            expect_json(response, "login")
            times.append(elapsed)
    return times


def measure_verify(password: str, count: int) -> list[float]:
    from portal.accounts.passwords import hash_password_sync, verify_password

    stored = hash_password_sync(password)

    async def run() -> list[float]:
        times: list[float] = []
        await verify_password(stored, password)  # warm-up (thread pool start)
        for _ in range(count):
            started = time.perf_counter()
            ok = await verify_password(stored, password)
            times.append((time.perf_counter() - started) * 1000)
            if not ok:
                raise BenchError("verify_password rejected the right password")
        return times

    return asyncio.run(run())


# -- report ------------------------------------------------------------------------------------------------------
def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _by_round(results: list[WrkResult], name: str, round_no: int) -> WrkResult | None:
    return next((r for r in results if r.target == name and r.round == round_no), None)


def _median_of(runs: list[WrkResult], attribute: str) -> float:
    values = [getattr(r, attribute) for r in runs if getattr(r, attribute) is not None]
    return statistics.median(values) if values else math.nan


def summarise_throughput(results: list[WrkResult], names: list[str], rounds: int) -> dict[str, dict[str, object]]:
    """Medians over the valid runs, the ratio of medians to bare, and the median of per-round (paired) ratios."""
    summary: dict[str, dict[str, object]] = {}
    bare_median: float | None = None
    bare_cpu: Any = math.nan
    for name in names:
        valid = [r for r in results if r.target == name and r.valid]
        entry: dict[str, object] = {
            "valid_runs": len(valid),
            "runs": [round(r.rps, 1) for r in results if r.target == name],
        }
        if valid:
            rps = [r.rps for r in valid]
            entry.update(
                median_rps=statistics.median(rps),
                min_rps=min(rps),
                max_rps=max(rps),
                p50_ms=statistics.median([r.p50_ms for r in valid if r.p50_ms is not None] or [math.nan]),
                p99_ms=statistics.median([r.p99_ms for r in valid if r.p99_ms is not None] or [math.nan]),
                cpu_us_per_request=_median_of(valid, "cpu_us_per_request"),
                backing_us_per_request=_median_of(valid, "backing_us_per_request"),
                other_cores=_median_of(valid, "other_cores"),
                disturbed_runs=sum(1 for r in valid if (r.other_cores or 0) > DISTURBED_CORES),
            )
            entry["total_us_per_request"] = entry["cpu_us_per_request"] + (  # type: ignore[operator]
                0.0 if math.isnan(entry["backing_us_per_request"]) else entry["backing_us_per_request"]  # type: ignore[arg-type]
            )
            if name == "bare":
                bare_median = statistics.median(rps)
                bare_cpu = entry["total_us_per_request"]
            elif bare_median:
                entry["ratio"] = statistics.median(rps) / bare_median
                entry["cpu_ratio"] = bare_cpu / entry["total_us_per_request"]  # type: ignore[operator]
                paired = []
                for round_no in range(1, rounds + 1):
                    mine, base = _by_round(results, name, round_no), _by_round(results, "bare", round_no)
                    if mine and base and mine.valid and base.valid and base.rps:
                        paired.append(mine.rps / base.rps)
                if paired:
                    entry["paired_ratio"] = statistics.median(paired)
                entry["pass"] = entry["ratio"] >= RATIO_TARGET
        summary[name] = entry
    return summary


def report_throughput(results: list[WrkResult], names: list[str], rounds: int) -> dict[str, dict[str, object]]:
    print()
    print("GET throughput per round: requests/second (authenticated/bare in the same round); '!' = invalid run")
    print("  " + f"{'round':<7}" + "".join(f"{n:>22}" for n in names))
    for round_no in range(1, rounds + 1):
        cells = []
        base = _by_round(results, "bare", round_no)
        for name in names:
            r = _by_round(results, name, round_no)
            if r is None:
                cells.append(f"{'-':>22}")
                continue
            ratio = f"({r.rps / base.rps:.0%})" if name != "bare" and base and base.rps else ""
            cells.append(f"{r.rps:>14.1f}{'' if r.valid else '!'}{ratio:>7}")
        print("  " + f"{round_no:<7}" + "".join(cells))

    summary = summarise_throughput(results, names, rounds)
    print()
    header = (
        f"  {'target':<12}{'median rps':>11}{'min':>9}{'max':>9}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/req':>11}"
        f"{'vs bare':>9}{'paired':>8}{'by CPU':>8}  verdict (>= {RATIO_TARGET:.0%} of bare)"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name in names:
        e = summary[name]
        if not e["valid_runs"]:
            print(f"  {name:<12}{'no valid run':>11}")
            continue
        ratios = [f"{e[key]:.0%}" if key in e else "" for key in ("ratio", "paired_ratio", "cpu_ratio")]
        verdict = "(baseline)" if name == "bare" else ("PASS" if e.get("pass") else "FAIL" if "pass" in e else "n/a")
        print(
            f"  {name:<12}{e['median_rps']:>11.1f}{e['min_rps']:>9.1f}{e['max_rps']:>9.1f}{e['p50_ms']:>8.2f}"
            f"{e['p99_ms']:>8.2f}{e['total_us_per_request']:>11.0f}{ratios[0]:>9}{ratios[1]:>8}{ratios[2]:>8}"
            f"  {verdict}"
        )
    print(
        "  vs bare = median rps / bare's median rps (the verdict); paired = median of the per-round ratios;\n"
        "  CPU us/req = CPU time per request of the server process (+ PostgreSQL and Redis with --backend postgres),\n"
        "  median over rounds; by CPU = bare's CPU us/req / this target's (the ratio on a CPU-bound, quiet machine)"
    )
    disturbed = sum(int(summary[n].get("disturbed_runs", 0)) for n in names)  # type: ignore[call-overload]
    if disturbed:
        print(
            f"  WARNING: in {disturbed} of {len(results)} runs other processes on this machine used more than"
            f" {DISTURBED_CORES} CPU cores; rps figures are disturbed (the CPU us/req figures less so)"
        )
    invalid = [r for r in results if not r.valid]
    if invalid:
        print()
        print(f"  INVALID runs ({len(invalid)}), left out of the medians (marked '!' above):")
        for r in invalid:
            print(
                f"    round {r.round} {r.target}: {r.non_2xx} non-2xx responses, {r.socket_errors} socket errors,"
                f" {r.requests} requests"
            )
    return summary


def report_latency(label: str, times: list[float], target: float | None) -> None:
    median, p95 = statistics.median(times), percentile(times, 95)
    verdict = ""
    if target is not None:
        verdict = "PASS" if median <= target and p95 <= target else "FAIL"
        verdict = f"  {verdict} (target <= {target:.0f} ms)"
    print(f"  {label:<34}{len(times):>4}{median:>10.1f}{p95:>10.1f}{min(times):>10.1f}{max(times):>10.1f}{verdict}")


# -- main --------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="portal storage: sqlite + in-memory (default) or PostgreSQL + Redis (scale-out mode)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per target (default 5)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections (default 32)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load per target first")
    parser.add_argument("--logins", type=int, default=30, help="sequential logins to time (default 30)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=20.0,
        help="before each run, wait up to this many seconds for other processes to use under"
        f" {DISTURBED_CORES} CPU cores (0: do not wait; default 20)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--skip-logins", action="store_true", help="measure throughput only")
    args = parser.parse_args(argv)
    for name, low, high in (
        ("rounds", 1, 100),
        ("duration", 1, 300),
        ("connections", 1, 1000),
        ("warmup", 1, 60),
        ("logins", 1, 1000),
        ("wait_quiet", 0, 600),
    ):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_wrk()
    os.environ["PORTAL_TEST_BACKEND"] = args.backend  # PortalServer/SharedBackend read it when created
    cpus = os.cpu_count()
    print(
        f"auth throughput benchmark: backend={args.backend}, {args.rounds} rounds x {args.duration:g} s per target,"
        f" wrk -t1 -c{args.connections}, {cpus} CPUs, python {sys.version.split()[0]},"
        f" load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    return run_with_portal_and_bare(RATE_OVERRIDES, lambda portal, bare: run_benchmark(args, wrk, portal, bare))


def run_benchmark(args: argparse.Namespace, wrk: str, portal: PortalServer, bare: BareServer) -> int:
    """One run against the started servers; returns the exit status (0, or 2 when a run was invalid)."""
    print(
        f"  portal {portal.base_url} (pid {portal.proc.pid if portal.proc else '?'}),"
        f" bare {bare.base_url} (pid {bare.proc.pid if bare.proc else '?'})",
        flush=True,
    )
    targets, base_url = prepare_targets(portal, bare)
    results = measure_throughput(
        wrk,
        targets,
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        backing=args.backend == "postgres",
        wait_quiet=args.wait_quiet,
    )
    summary = report_throughput(results, [t.name for t in targets], args.rounds)
    all_valid = all(r.valid for r in results)
    report: dict[str, object] = {
        "backend": args.backend,
        "rounds": args.rounds,
        "duration": args.duration,
        "connections": args.connections,
        "throughput": summary,
    }

    if not args.skip_logins:
        if args.wait_quiet > 0:
            wait_for_quiet(args.wait_quiet)
        logins = measure_logins(base_url, portal.admin_user, portal.admin_password, args.logins)
        verify = measure_verify(portal.admin_password, args.logins)
        print()
        print(f"  {'latency (ms)':<34}{'n':>4}{'median':>10}{'p95':>10}{'min':>10}{'max':>10}")
        report_latency("POST /api/token (HTTP, sequential)", logins, LOGIN_TARGET_MS)
        report_latency("argon2id verify alone (in-process)", verify, None)
        report["login_ms"] = {
            "median": statistics.median(logins),
            "p95": percentile(logins, 95),
            "all": [round(t, 1) for t in logins],
        }
        report["verify_ms"] = {
            "median": statistics.median(verify),
            "p95": percentile(verify, 95),
            "all": [round(t, 1) for t in verify],
        }
    print(f"\n  load average {os.getloadavg()[0]:.2f} at the end (other processes on this machine disturb the rps)")
    report["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\n  results written to {args.json}")
    return 0 if all_valid else 2


if __name__ == "__main__":
    sys.exit(main())
