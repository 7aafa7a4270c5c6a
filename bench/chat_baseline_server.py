"""The baseline for the chat fan-out benchmark: a minimal broadcast server on the ``websockets`` library.

Run alone with ``python -m bench.chat_baseline_server --port 8002`` (or ``python bench/chat_baseline_server.py``).

It accepts WebSocket connections on any path, with no authentication and no channels, and relays every text
frame it receives, unchanged, to every connected client (the sender included) with ``websockets.broadcast``:
one encoding, one write per connection, no queue, no storage. Binary frames are ignored. Like the portal it runs
on uvloop (what ``uvicorn[standard]`` picks) in one process, with compression off (permessage-deflate is not
offered, so a client cannot negotiate it) and the same 1 MiB frame limit as ``portal serve``.

It listens on 127.0.0.1 only and prints ``ready <port>`` once it accepts connections. SIGTERM / SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

LOOPBACK = "127.0.0.1"
CLIENTS: set[ServerConnection] = set()


async def relay(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str):
                broadcast(CLIENTS, message)
    except Exception:  # a client that vanished mid-frame: nothing to do but forget it
        pass
    finally:
        CLIENTS.discard(ws)


async def run(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(relay, LOOPBACK, port, compression=None, max_size=1024 * 1024, backlog=4096) as server:
        print(f"ready {port}", flush=True)
        await stop
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; without it both servers fall back to asyncio's loop
        asyncio.run(run(args.port))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(run(args.port))


if __name__ == "__main__":
    main()
