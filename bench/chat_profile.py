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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import chat_fanout as fan  # noqa: E402
from bench.profile_me import parse_collapsed, short  # noqa: E402

LAYERS = [
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
HOT_SPOTS = [
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


def summarise(text: str, top: int) -> None:
    every = parse_collapsed(text)
    stacks = [(frames, count) for frames, count in every if not frames[0][0].startswith("Thread._bootstrap")]
    others = sum(count for _, count in every) - sum(count for _, count in stacks)
    total = sum(count for _, count in stacks)
    if not total:
        raise fan.BenchError("py-spy recorded no samples of the event loop's thread")
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    for frames, count in stacks:
        seen = set()
        for func, path in frames:
            key = f"{func} ({short(path)})"
            if key not in seen:
                inclusive[key] += count
                seen.add(key)
        func, path = frames[-1]
        self_time[f"{func} ({short(path)})"] += count
        layers[next(name for name, pattern in LAYERS if pattern.search(path))] += count
    print(f"\n{total} samples of the server's event-loop thread; {others} samples of other threads left out\n")
    print("by layer of the innermost Python frame (C code is charged to the Python frame that called it):")
    for name, _ in LAYERS:
        if layers[name]:
            print(f"  {100 * layers[name] / total:>6.1f}%  {name}")
    print("\nhot spots (inclusive: the function is anywhere on the sampled stack):")
    for label, needles in HOT_SPOTS:
        count = sum(c for frames, c in stacks if any(any(n in f"{fn} ({p})" for n in needles) for fn, p in frames))
        if count:
            print(f"  {100 * count / total:>6.1f}%  {label}")
    print(f"\ntop {top} by inclusive time:")
    for key, count in inclusive.most_common(top):
        print(f"  {100 * count / total:>6.1f}%  {key}")
    print(f"\ntop {top} by self time:")
    for key, count in self_time.most_common(top):
        print(f"  {100 * count / total:>6.1f}%  {key}")


def start_spy(py_spy: str, pid: int, rate: int, nonblocking: bool, out: Path) -> subprocess.Popen[bytes]:
    cmd = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out)]
    if nonblocking:
        cmd.append("--nonblocking")
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # py-spy attaches
    if spy.poll() is not None:
        raise fan.BenchError(f"py-spy exited at once: {spy.stdout.read().decode() if spy.stdout else ''}")
    return spy


def stop_spy(spy: subprocess.Popen[bytes]) -> None:
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


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
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not py_spy:
        sys.exit("error: py-spy is not installed; run: .venv/bin/pip install py-spy")
    soft, _ = fan.raise_nofile(fan.NOFILE_WANTED)
    if soft < args.clients + args.warm_clients + 100:
        sys.exit(f"error: the open-file limit is {soft}")
    signal.signal(signal.SIGTERM, fan._terminate)
    os.environ["PORTAL_TEST_BACKEND"] = "sqlite"

    from tests.portal_server import PortalServer, SharedBackend

    servers = fan.Servers()
    pool: fan.ClientPool | None = None
    spy: subprocess.Popen[bytes] | None = None
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as tmp:
        raw = Path(tmp.name)
    try:
        pool = fan.ClientPool(args.procs, args.client)
        tokens: list[str] = []
        if own.target == "portal":
            servers.shared = SharedBackend("sqlite")
            setup = PortalServer(shared=servers.shared, env=dict(fan.PORTAL_ENV))
            setup.start(timeout=fan.START_TIMEOUT)
            try:
                tokens = fan.make_users(setup, args.users)
            finally:
                setup.stop()
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
        summarise(text, own.top)
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
