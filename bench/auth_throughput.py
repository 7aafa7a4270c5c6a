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
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # script form: import ``portal`` and ``tests`` from the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

if TYPE_CHECKING:
    from tests.portal_server import PortalServer

RATIO_TARGET = 0.60
LOGIN_TARGET_MS = 150.0
RATE_OVERRIDES = {
    "PORTAL_RATE_LIMIT_API": "100000000/minute",
    "PORTAL_RATE_LIMIT_AUTH": "100000000/minute",
}
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0


class BenchError(RuntimeError):
    """The benchmark cannot run (missing tool, a target that does not answer as expected)."""


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


# -- the baseline server -----------------------------------------------------------------------------------------
class BareServer:
    """``bench/bare_app.py`` in its own uvicorn process."""

    def __init__(self) -> None:
        from tests.portal_server import free_port

        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def start(self) -> BareServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_app", "--port", str(self.port)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"bare app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/bare", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"bare app did not start in {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# -- setup and checks --------------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    alive: Callable[[], bool]


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

    def portal_alive() -> bool:
        return portal.proc is not None and portal.proc.poll() is None

    targets = [
        Target("bare", bare.base_url + "/bare", {}, bare.alive),
        Target("me/api_key", base_url + "/api/me", {"Authorization": f"Bearer {api_key}"}, portal_alive),
        Target("me/jwt", base_url + "/api/me", {"Authorization": f"Bearer {jwt_token}"}, portal_alive),
    ]
    return targets, base_url


# -- measurements ------------------------------------------------------------------------------------------------
def measure_throughput(
    wrk: str, targets: list[Target], *, rounds: int, duration: float, warmup: float, connections: int
) -> list[WrkResult]:
    for target in targets:  # warm caches (credential cache, SQLAlchemy statement cache, ...)
        run_wrk(
            wrk, target.url, target.headers, duration=warmup, connections=connections, target=target.name, round_no=0
        )
    results: list[WrkResult] = []
    for round_no in range(1, rounds + 1):
        shift = (round_no - 1) % len(targets)  # rotate the order so no target always runs first
        for target in targets[shift:] + targets[:shift]:
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
            results.append(result)
            flag = "" if result.valid else "  INVALID"
            print(f"  round {round_no}/{rounds}  {target.name:<11} {result.rps:>10.1f} rps{flag}", flush=True)
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


def report_throughput(results: list[WrkResult], targets: list[Target], rounds: int) -> bool:
    names = [t.name for t in targets]
    print()
    print("GET throughput (requests/second), per round:")
    print("  " + f"{'round':<7}" + "".join(f"{n:>14}" for n in names))
    for round_no in range(1, rounds + 1):
        cells = []
        for name in names:
            r = next(x for x in results if x.target == name and x.round == round_no)
            cells.append(f"{r.rps:>13.1f}{'' if r.valid else '!'}")
        print("  " + f"{round_no:<7}" + "".join(cells))
    invalid = [r for r in results if not r.valid]

    medians: dict[str, float | None] = {}
    print()
    header = (
        f"  {'target':<12}{'median rps':>12}{'min':>10}{'max':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'vs bare':>9}  verdict (>= {RATIO_TARGET:.0%} of bare)"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name in names:
        valid = [r for r in results if r.target == name and r.valid]
        if not valid:
            medians[name] = None
            print(f"  {name:<12}{'no valid run':>12}")
            continue
        rps = [r.rps for r in valid]
        medians[name] = statistics.median(rps)
        p50 = statistics.median([r.p50_ms for r in valid if r.p50_ms is not None] or [math.nan])
        p99 = statistics.median([r.p99_ms for r in valid if r.p99_ms is not None] or [math.nan])
        bare = medians.get("bare")
        if name == "bare" or not bare:
            ratio, verdict = "", "(baseline)" if name == "bare" else "n/a"
        else:
            value = medians[name] / bare  # type: ignore[operator]
            ratio, verdict = f"{value:.0%}", "PASS" if value >= RATIO_TARGET else "FAIL"
        print(
            f"  {name:<12}{medians[name]:>12.1f}{min(rps):>10.1f}{max(rps):>10.1f}{p50:>9.2f}{p99:>9.2f}"
            f"{ratio:>9}  {verdict}"
        )
    if invalid:
        print()
        print(f"  INVALID runs ({len(invalid)}), left out of the medians (marked '!' above):")
        for r in invalid:
            print(
                f"    round {r.round} {r.target}: {r.non_2xx} non-2xx responses, {r.socket_errors} socket errors,"
                f" {r.requests} requests"
            )
    return not invalid


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
    parser.add_argument("--skip-logins", action="store_true", help="measure throughput only")
    args = parser.parse_args(argv)
    for name, low, high in (
        ("rounds", 1, 100),
        ("duration", 1, 300),
        ("connections", 1, 1000),
        ("warmup", 1, 60),
        ("logins", 1, 1000),
    ):
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name} must be between {low} and {high}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_wrk()
    os.environ["PORTAL_TEST_BACKEND"] = args.backend  # PortalServer/SharedBackend read it when created

    from tests.portal_server import PortalServer

    cpus = os.cpu_count()
    print(
        f"auth throughput benchmark: backend={args.backend}, {args.rounds} rounds x {args.duration:g} s per target,"
        f" wrk -t1 -c{args.connections}, {cpus} CPUs, python {sys.version.split()[0]}",
        flush=True,
    )

    portal = PortalServer(env=dict(RATE_OVERRIDES))
    bare = BareServer()
    try:
        try:
            portal.start(timeout=START_TIMEOUT)
        except RuntimeError as exc:
            raise BenchError(str(exc)) from exc
        bare.start()
        print(
            f"  portal {portal.base_url} (pid {portal.proc.pid if portal.proc else '?'}),"
            f" bare {bare.base_url} (pid {bare.proc.pid if bare.proc else '?'})",
            flush=True,
        )
        targets, base_url = prepare_targets(portal, bare)
        results = measure_throughput(
            wrk, targets, rounds=args.rounds, duration=args.duration, warmup=args.warmup, connections=args.connections
        )
        all_valid = report_throughput(results, targets, args.rounds)

        if not args.skip_logins:
            logins = measure_logins(base_url, portal.admin_user, portal.admin_password, args.logins)
            verify = measure_verify(portal.admin_password, args.logins)
            print()
            print(f"  {'latency (ms)':<34}{'n':>4}{'median':>10}{'p95':>10}{'min':>10}{'max':>10}")
            report_latency("POST /api/token (HTTP, sequential)", logins, LOGIN_TARGET_MS)
            report_latency("argon2id verify alone (in-process)", verify, None)
        return 0 if all_valid else 2
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if portal.proc is not None:
            print(f"--- portal log ---\n{portal.log()[-4000:]}", file=sys.stderr)
        return 1
    finally:
        bare.stop()
        portal.stop()


if __name__ == "__main__":
    sys.exit(main())
