"""Where the portal's CPU goes while fanning chat messages out: py-spy on the server during one phase.

    .venv/bin/python bench/chat_profile.py [--phase max|rate|join] [--target portal|baseline] [--keep stacks.txt]
                                           [any bench/chat_fanout.py option: --clients, --rate, --duration, ...]

Sets up like ``bench/chat_fanout.py`` (users, client workers, a fresh server, ``--clients`` connections joined to
``general``), then records the server process with ``py-spy record`` (``.venv/bin/py-spy``; blocking mode by
default: exact stacks, but the server runs slower while sampled, so read the shares, not the rates) during one
phase:

- ``max``: the maximum-rate phase (``--senders`` x ``--window`` in flight, ``--warmup`` + ``--duration`` s);
- ``rate``: the latency phase (``--messages`` at ``--rate`` per second);
- ``join``: opening and joining the ``--clients`` connections (handshake, auth, ``join``: history, users, ...).

Prints the shares by layer (innermost Python frame), named hot spots (inclusive), and the top functions by
inclusive and self time. Only the event loop's thread is analysed (aiosqlite's and the executor's threads are left
out and counted separately). ``--keep`` writes the collapsed stacks (for a flame graph).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import chat_fanout as fan  # noqa: E402
from bench.harness import HotSpots, Layers, find_py_spy, print_profile, start_spy, stop_spy  # noqa: E402

LAYERS: Layers = [
    ("portal: Outbox (core/ws.py: queue, writer task)", re.compile(r"(^|/)portal/core/ws\.py")),
    ("portal: chat realtime (fan-out loop, deliver)", re.compile(r"(^|/)portal/chat/realtime\.py")),
    ("portal: chat ws handlers / service / messages", re.compile(r"(^|/)portal/chat/")),
    ("portal: send wrappers of middlewares", re.compile(r"(^|/)portal/core/(ratelimit|headers|bodylimit)\.py")),
    ("portal: accounts (auth refresh per frame)", re.compile(r"(^|/)portal/accounts/")),
    ("portal: other", re.compile(r"(^|/)portal/")),
    ("starlette (WebSocket.send/receive)", re.compile(r"(^|/)starlette/")),
    ("uvicorn (ASGI websocket protocol)", re.compile(r"(^|/)uvicorn/")),
    ("websockets (framing, sans-I/O protocol)", re.compile(r"(^|/)websockets/")),
    ("sqlalchemy / aiosqlite", re.compile(r"(^|/)(sqlalchemy|aiosqlite)/")),
    ("pydantic", re.compile(r"(^|/)pydantic(_core)?/")),
    ("json", re.compile(r"(^|/)json/")),
    ("asyncio / uvloop (event loop, tasks, events)", re.compile(r"(^|/)(asyncio|uvloop)/|^<frozen|contextlib\.py")),
    ("bench (baseline server)", re.compile(r"(^|/)bench/")),
    ("other", re.compile(r".*")),
]
HOT_SPOTS: HotSpots = [
    ("Outbox._write: writer tasks (everything below: starlette, uvicorn, websockets, write)", ["Outbox._write "]),
    ("  starlette WebSocket.send_text / send", ["send_text (starlette/", "send (starlette/websockets"]),
    ("  rate-limit middleware send wrapper", ["send_with_headers (portal/core/ratelimit.py"]),
    ("  uvicorn WebSocketsSansIOProtocol.send", ["WebSocketsSansIOProtocol.send "]),
    ("  websockets Protocol.send_text (framing)", ["send_text (websockets/protocol.py"]),
    ("  asyncio Event.wait (writer wake-ups)", ["wait (asyncio/locks.py"]),
    ("ChatRealtime._on_event: fan-out loop (deliver -> Outbox.send_text)", ["ChatRealtime._on_event "]),
    ("  Outbox.send_text (queue append + Event.set)", ["Outbox.send_text "]),
    ("chat_socket receive loop (incoming frames)", ["chat_socket "]),
    ("  _refresh_principal (auth resolve per frame)", ["_refresh_principal "]),
    ("  HandlerTable.dispatch (parse + handler)", ["HandlerTable.dispatch "]),
    ("  on_message -> Chat.send_message (checks, store, commit, render, publish)", ["send_message (portal/chat/"]),
    ("  on_join (join answers: history, pinned, users)", ["on_join "]),
    ("SQLAlchemy (any)", ["(sqlalchemy/"]),
    ("json.dumps (portal.core.ws.dumps)", ["dumps (portal/core/ws.py"]),
    ("uvicorn data_received (incoming bytes)", ["data_received (uvicorn/"]),
    ("baseline: websockets broadcast", ["broadcast (websockets/"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("max", "rate", "join"), default="max")
    parser.add_argument("--target", choices=("portal", "baseline"), default="portal")
    parser.add_argument("--spy-rate", type=int, default=200, help="py-spy samples per second (default 200)")
    parser.add_argument("--nonblocking", action="store_true", help="sample without pausing the server")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="also write the collapsed stacks to this file")
    own, rest = parser.parse_known_args()
    args = fan.parse_args([*rest, "--only", own.target])
    py_spy = find_py_spy()
    soft, _ = fan.raise_nofile(fan.NOFILE_WANTED)
    if soft < args.clients + args.warm_clients + 100:
        sys.exit(f"error: the open-file limit is {soft}")
    signal.signal(signal.SIGTERM, fan._terminate)
    os.environ["PORTAL_TEST_BACKEND"] = "sqlite"

    servers = fan.Servers()
    pool: fan.ClientPool | None = None
    spy: subprocess.Popen[bytes] | None = None
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as tmp:
        raw = Path(tmp.name)
    try:
        pool = fan.ClientPool(args.procs, args.client)
        tokens: list[str] = []
        if own.target == "portal":
            tokens = servers.create_users(args.users)
        target = servers.start_portal(tokens) if own.target == "portal" else servers.start_baseline()
        phases = fan.Phases()
        gids = list(range(args.clients))
        if own.phase == "join":
            spy = start_spy(py_spy, target.proc.pid, own.spy_rate, own.nonblocking, raw)
            info = fan.connect_clients(pool, target, target.name, gids, args)
            stop_spy(spy)
            print(f"{info['connected']} clients connected and joined in {info['seconds']:.1f} s under py-spy")
        else:
            opening = fan.open_target(pool, target, phases, args)
            spy = start_spy(py_spy, target.proc.pid, own.spy_rate, own.nonblocking, raw)
            if own.phase == "rate":
                answers, cpu = fan.run_latency(
                    pool, target, target.name, gids, phases.new(), args.messages, args.rate, args.drain
                )
                stop_spy(spy)
                got = sum(a["received"] for a in answers)
                print(
                    f"latency phase under py-spy: {got}/{args.messages * opening.connected} deliveries,"
                    f" server {cpu.get('server_cores', 0):.2f} cores"
                )
            else:
                answers, cpu = fan.run_flood(pool, target, gids, phases.new(), args)
                stop_spy(spy)
                rate = sum(a["window_deliveries"] / a["window_s"] for a in answers if a["window_s"] > 0)
                print(
                    f"max rate under py-spy: {rate:,.0f} deliveries/s, server {cpu.get('server_cores', 0):.2f} cores,"
                    f" other processes {cpu.get('other_cores', 0):.2f} cores"
                )
        text = raw.read_text() if raw.exists() else ""
        if own.keep:
            own.keep.write_text(text)
        print_profile(text, own.top, LAYERS, HOT_SPOTS)
        return 0
    except fan.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if spy is not None:
            stop_spy(spy)
        if pool is not None:
            pool.stop()
        servers.stop()
        raw.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
