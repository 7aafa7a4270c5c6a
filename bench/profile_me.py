"""Where the portal spends its CPU on ``GET /api/me``: py-spy samples the server while wrk loads it.

    .venv/bin/pip install py-spy      # a profiling tool, not a project dependency
    .venv/bin/python bench/profile_me.py [--credential api_key|jwt|bare] [--duration 10] [--backend sqlite|postgres]

Starts the portal and the bare app as ``bench/auth_throughput.py`` does, drives one target with wrk
(1 thread, 32 connections) and records the server process with ``py-spy record`` (idle
time is not sampled, so the percentages are shares of the server's busy CPU). Prints the top functions
by inclusive and by self time, and a breakdown by layer. The raw collapsed stacks are kept with
``--keep FILE`` (feed them to a flame-graph tool, or ``--format speedscope`` via py-spy directly).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.auth_throughput import (  # noqa: E402
    RATE_OVERRIDES,
    START_TIMEOUT,
    BareServer,
    BenchError,
    find_wrk,
    prepare_targets,
    run_wrk,
)

# Layers, tested in order on each frame's file path; a sample is charged to the innermost frame's layer.
LAYERS = [
    ("portal: rate limit middleware", re.compile(r"(^|/)portal/core/ratelimit\.py")),
    ("portal: security headers middleware", re.compile(r"(^|/)portal/core/headers\.py")),
    ("portal: authn (resolve credential)", re.compile(r"(^|/)portal/accounts/authn\.py")),
    ("portal: other (deps, route, body limit, ...)", re.compile(r"(^|/)portal/")),
    ("bench: bare app", re.compile(r"(^|/)bench/")),
    ("limits (rate-limit library)", re.compile(r"(^|/)limits/")),
    ("redis client", re.compile(r"(^|/)redis/")),
    ("sqlalchemy / db driver", re.compile(r"(^|/)(sqlalchemy|aiosqlite|asyncpg)/")),
    ("pydantic (validation/serialisation)", re.compile(r"(^|/)pydantic(_core)?/")),
    ("fastapi (routing, dependencies)", re.compile(r"(^|/)fastapi/")),
    ("starlette", re.compile(r"(^|/)starlette/")),
    ("uvicorn / httptools (HTTP protocol, socket writes)", re.compile(r"(^|/)(uvicorn|httptools)/")),
    ("asyncio / uvloop (event loop)", re.compile(r"(^|/)(asyncio|uvloop)/|^<frozen|contextlib\.py")),
    ("other", re.compile(r".*")),
]
# Named costs, each the share of samples whose stack contains any of the given frames.
HOT_SPOTS = [
    ("rate limit: Authenticator.identify (credential -> Principal, cached)", ["Authenticator.identify "]),
    ("rate limit: RateLimiter.hit (limits FixedWindow hit + get_window_stats)", ["RateLimiter.hit "]),
    ("rate limit: send wrapper (+ the sends below it)", ["send_with_headers (portal/core/ratelimit.py"]),
    ("security headers: send wrapper (+ uvicorn send below it)", ["send_with_headers (portal/core/headers.py"]),
    ("BodyLimitMiddleware and all below it (routing, deps, endpoint)", ["BodyLimitMiddleware.__call__ "]),
    ("fastapi solve_dependencies (require_scope chain)", ["solve_dependencies "]),
    ("route matching (starlette/fastapi _match/matches)", ["._match ", ".matches "]),
    ("endpoint get_me + me_of (builds the Me model)", ["get_me ", "me_of "]),
    ("response serialisation (serialize_response / dump_json)", ["serialize_response ", "dump_json "]),
    ("HTTP protocol: RequestResponseCycle.send (socket writes)", ["RequestResponseCycle.send "]),
    ("HTTP protocol: data_received (parsing)", ["HttpToolsProtocol.data_received "]),
]
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def parse_collapsed(text: str) -> list[tuple[list[tuple[str, str]], int]]:
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
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def layer_of(path: str) -> str:
    return next(name for name, pattern in LAYERS if pattern.search(path))


def summarise(text: str, top: int) -> None:
    every = parse_collapsed(text)
    # Worker threads (the asyncio default executor, aiosqlite's connection thread) block in queue waits
    # that py-spy can count as busy; the event loop runs on the main thread, so only that is analysed.
    stacks = [(frames, count) for frames, count in every if not frames[0][0].startswith("Thread._bootstrap")]
    others = sum(count for _, count in every) - sum(count for _, count in stacks)
    total = sum(count for _, count in stacks)
    if not total:
        raise BenchError("py-spy recorded no samples")
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    layers_self: Counter[str] = Counter()
    for frames, count in stacks:
        seen = set()
        for func, path in frames:
            key = f"{func} ({short(path)})"
            if key not in seen:
                inclusive[key] += count
                seen.add(key)
        func, path = frames[-1]
        self_time[f"{func} ({short(path)})"] += count
        layers_self[layer_of(path)] += count

    print(f"\n{total} samples of the server's main thread (event loop), {others} of worker threads left out\n")
    print("by layer of the innermost Python frame (C code is charged to the Python frame that called it):")
    for name, _ in LAYERS:
        if layers_self[name]:
            print(f"  {100 * layers_self[name] / total:>6.1f}%  {name}")
    print("\nportal hot spots (inclusive: the function is anywhere on the sampled stack):")
    for label, needles in HOT_SPOTS:
        count = sum(c for frames, c in stacks if any(any(n in f"{fn} ({p})" for n in needles) for fn, p in frames))
        print(f"  {100 * count / total:>6.1f}%  {label}")
    print(f"\ntop {top} by inclusive time:")
    for key, count in inclusive.most_common(top):
        print(f"  {100 * count / total:>6.1f}%  {key}")
    print(f"\ntop {top} by self time:")
    for key, count in self_time.most_common(top):
        print(f"  {100 * count / total:>6.1f}%  {key}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--credential", choices=("api_key", "jwt", "bare"), default="api_key")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load and sampling (1..120)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--nonblocking", action="store_true", help="sample without pausing the server (torn stacks)")
    parser.add_argument("--keep", type=Path, help="also write the collapsed stacks to this file")
    args = parser.parse_args()
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be between 1 and 120")
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not py_spy:
        sys.exit("error: py-spy is not installed; run: .venv/bin/pip install py-spy")
    wrk = find_wrk()
    os.environ["PORTAL_TEST_BACKEND"] = args.backend

    from tests.portal_server import PortalServer

    portal = PortalServer(env=dict(RATE_OVERRIDES))
    bare = BareServer()
    try:
        portal.start(timeout=START_TIMEOUT)
        bare.start()
        targets, _ = prepare_targets(portal, bare)
        target = next(t for t in targets if t.name == {"bare": "bare"}.get(args.credential, "me/" + args.credential))
        proc = bare.proc if args.credential == "bare" else portal.proc
        assert proc is not None
        run_wrk(wrk, target.url, target.headers, duration=2, connections=32, target=target.name, round_no=0)

        with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as out:
            raw_path = Path(out.name)
        result: dict[str, object] = {}

        def load() -> None:
            result["wrk"] = run_wrk(
                wrk,
                target.url,
                target.headers,
                duration=args.duration + 2,
                connections=32,
                target=target.name,
                round_no=1,
            )

        loader = threading.Thread(target=load)
        loader.start()
        spy = subprocess.run(
            [
                py_spy,
                "record",
                "--pid",
                str(proc.pid),
                "--duration",
                str(args.duration),
                "--rate",
                str(args.rate),
                *(["--nonblocking"] if args.nonblocking else []),
                "--format",
                "raw",
                "--output",
                str(raw_path),
            ],
            capture_output=True,
            text=True,
            timeout=args.duration + 60,
            check=False,
        )
        loader.join(args.duration + 90)
        if spy.returncode != 0:
            raise BenchError(f"py-spy failed ({spy.returncode}): {spy.stderr}")
        wrk_result = result.get("wrk")
        print(
            f"target {target.name} ({args.backend}): {getattr(wrk_result, 'rps', 0):.1f} rps under py-spy"
            f" (valid: {getattr(wrk_result, 'valid', False)})"
        )
        text = raw_path.read_text()
        if args.keep:
            args.keep.write_text(text)
        raw_path.unlink()
        summarise(text, args.top)
        return 0
    except (BenchError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        bare.stop()
        portal.stop()


if __name__ == "__main__":
    sys.exit(main())
