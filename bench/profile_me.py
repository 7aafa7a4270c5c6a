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
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.auth_throughput import RATE_OVERRIDES, find_wrk, prepare_targets, run_wrk  # noqa: E402
from bench.harness import (  # noqa: E402
    BareServer,
    HotSpots,
    Layers,
    find_py_spy,
    print_profile,
    run_with_portal_and_bare,
    start_spy,
    stop_spy,
)

if TYPE_CHECKING:
    from tests.portal_server import PortalServer

# Layers, tested in order on each frame's file path; a sample is charged to the innermost frame's layer.
LAYERS: Layers = [
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
HOT_SPOTS: HotSpots = [
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
    py_spy = find_py_spy()
    wrk = find_wrk()
    os.environ["PORTAL_TEST_BACKEND"] = args.backend
    return run_with_portal_and_bare(RATE_OVERRIDES, lambda portal, bare: profile(args, py_spy, wrk, portal, bare))


def profile(args: argparse.Namespace, py_spy: str, wrk: str, portal: PortalServer, bare: BareServer) -> int:
    """Load one target with wrk for ``--duration`` s while py-spy records its server; print the profile."""
    targets, _ = prepare_targets(portal, bare)
    target = next(t for t in targets if t.name == {"bare": "bare"}.get(args.credential, "me/" + args.credential))
    run_wrk(wrk, target.url, target.headers, duration=2, connections=32, target=target.name, round_no=0)
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as out:
        raw_path = Path(out.name)
    try:
        spy = start_spy(py_spy, target.proc.pid, args.rate, args.nonblocking, raw_path)
        try:
            loaded = run_wrk(
                wrk, target.url, target.headers, duration=args.duration, connections=32, target=target.name, round_no=1
            )
        finally:
            stop_spy(spy)
        print(f"target {target.name} ({args.backend}): {loaded.rps:.1f} rps under py-spy (valid: {loaded.valid})")
        text = raw_path.read_text()
    finally:
        raw_path.unlink(missing_ok=True)
    if args.keep:
        args.keep.write_text(text)
    print_profile(text, args.top, LAYERS, HOT_SPOTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
