"""Per-request cost of the layers behind ``GET /api/me``, measured in process (no sockets, no HTTP parsing).

    .venv/bin/python bench/me_breakdown.py [--iterations 2000] [--repeats 7] [--redis]

Builds the portal app (``portal.app.create_app``, SQLite in a temp dir, the rate limits raised as in
``auth_throughput.py``) and the bare app, runs their lifespans, and calls each ASGI app directly with a
synthetic request on a uvloop event loop. Variants of the portal app leave out one of its own middlewares
(by filtering ``app.user_middleware`` in this process; the portal code is not changed), so the difference to
the full app is that middleware's cost. Credential resolution and the rate-limit hit are also timed alone.

Each variant is timed ``--iterations`` calls at a time, ``--repeats`` times, interleaved round-robin with the
others; the table shows the median and the minimum of the per-call means (microseconds of wall time), and the
minimum CPU time per call of this process. The minimum is the least disturbed by other load on the machine.
What the socket layer adds (uvicorn's HTTP parsing, the response write) is the same for every app and is not
in these numbers: ``auth_throughput.py`` reports the whole per-request CPU cost of the real servers.

With ``--redis`` it also times, alone, the Redis round trips that the scale-out mode (PostgreSQL + Redis)
adds to every authenticated request (under a private key prefix, deleted afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from fastapi import Depends, FastAPI  # noqa: E402

from bench.auth_throughput import RATE_OVERRIDES  # noqa: E402
from bench.bare_app import BODY  # noqa: E402
from portal.accounts.deps import require_scope  # noqa: E402
from portal.accounts.principal import Principal  # noqa: E402
from portal.accounts.profile_router import me_of  # noqa: E402
from portal.accounts.profile_router import router as profile_router  # noqa: E402
from portal.accounts.schemas import Me  # noqa: E402

ADMIN, PASSWORD = "root", "root-password-1"
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def base_scope(path: str, authorization: str | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if authorization:
        headers.append((b"authorization", authorization.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class Call:
    """One ASGI request, repeatable; checks the status of every response."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        self.app = app
        self.scope = scope
        self.status = 0
        self.body = b""

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body = message.get("body", b"")

    async def __call__(self) -> None:
        await self.app({**self.scope, "state": {}}, _receive, self._send)
        if self.status != 200:
            raise RuntimeError(f"{self.scope['path']}: HTTP {self.status} {self.body[:200]!r}")


class Lifespan:
    """Drives the ASGI lifespan protocol of an app (startup on enter, shutdown on exit)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lifespan:
        self._task = asyncio.create_task(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, self._inbox.get, self._outbox.put)
        )
        await self._inbox.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self._outbox.get(), 30)
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self._outbox.get(), 30)
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)


def portal_app(exclude: tuple[str, ...] = ()) -> Any:
    from portal.app import create_app

    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if getattr(m.cls, "__name__", "") not in exclude]
    return app


def isolated_apps(full: Any, principal: Any) -> dict[str, Any]:
    """Plain FastAPI apps (like the bare one) holding one piece of the /api/me route, sharing the portal's state."""

    def new() -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.state = full.state
        return app

    only_profile = new()
    only_profile.include_router(profile_router)

    dependency_only = new()

    @dependency_only.get("/api/me")
    async def with_dependency(_: Annotated[Principal, Depends(require_scope("profile:read"))]) -> dict[str, str]:
        return BODY

    model_only = new()

    @model_only.get("/api/me", response_model=Me)
    async def with_model() -> Me:
        return me_of(principal.user, principal.scopes)

    return {
        "only the profile router (portal route, 1 router)": only_profile,
        "require_scope dependency + constant dict": dependency_only,
        "response_model=Me from a resolved principal": model_only,
    }


async def credentials(app: Any) -> tuple[str, str]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        response = await client.post("/api/token", json={"username": ADMIN, "password": PASSWORD})
        response.raise_for_status()
        jwt_token = response.json()["token"]
        response = await client.post(
            "/api/api-keys", json={"name": "bench", "scopes": "*"}, headers={"Authorization": f"Bearer {jwt_token}"}
        )
        response.raise_for_status()
        return jwt_token, response.json()["api_key"]


async def redis_cases(url: str, prefix: str) -> tuple[list[tuple[str, Callable[[], Awaitable[None]]]], Any]:
    """The Redis round trips of the scale-out mode, each alone: what one /api/me pays per request there."""
    import redis.asyncio as aioredis

    from portal.accounts.authn import Generations
    from portal.core.ratelimit import RateLimiter

    client = aioredis.from_url(url)
    generations = Generations(url, prefix)
    limiter = RateLimiter(url, prefix)
    rate = RATE_OVERRIDES["PORTAL_RATE_LIMIT_API"]

    async def raw_get() -> None:
        await client.get(prefix + "bench")

    async def generation() -> None:
        await generations.get(1)

    async def hit() -> None:
        await limiter.hit(rate, "api:user:1")

    async def close() -> None:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await generations.close()
        await limiter.close()
        storage_close = getattr(getattr(limiter.storage, "storage", None), "aclose", None)
        if storage_close is not None:
            await storage_close()

    cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("  Redis: one GET (redis.asyncio, loopback)", raw_get),
        ("  Redis: Generations.get (1 GET, per /api/me)", generation),
        ("  Redis: RateLimiter.hit (EVALSHA incr + GET + TTL, per request)", hit),
    ]
    return cases, close


async def run(
    iterations: int, repeats: int, redis_url: str | None = None
) -> list[tuple[str, list[tuple[float, float]]]]:
    from bench.bare_app import app as bare

    full = portal_app()
    variants = {
        "no RateLimitMiddleware": portal_app(("RateLimitMiddleware",)),
        "no SecurityHeadersMiddleware": portal_app(("SecurityHeadersMiddleware",)),
        "no BodyLimitMiddleware": portal_app(("BodyLimitMiddleware",)),
        "no portal middleware at all": portal_app(
            ("RateLimitMiddleware", "SecurityHeadersMiddleware", "BodyLimitMiddleware")
        ),
    }
    lifespans = [Lifespan(full), *(Lifespan(v) for v in variants.values())]
    for lifespan in lifespans:
        await lifespan.__aenter__()
    try:
        jwt_token, api_key = await credentials(full)
        key_auth, jwt_auth = f"Bearer {api_key}", f"Bearer {jwt_token}"
        authn, limiter = full.state.authn, full.state.limiter
        api_rate = full.state.settings.rate_limit_api
        me_key = base_scope("/api/me", key_auth)

        async def identify_key() -> None:
            await authn.identify({**me_key, "state": {}})

        async def identify_jwt() -> None:
            await authn.identify({**base_scope("/api/me", jwt_auth), "state": {}})

        async def hit() -> None:
            await limiter.hit(api_rate, "api:user:1")

        principal = await authn.resolve({**me_key, "state": {}})
        pieces = isolated_apps(full, principal)
        cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("bare app: GET /bare", Call(bare, base_scope("/bare", None))),
            ("portal: GET /health (no credential)", Call(full, base_scope("/health", None))),
            ("portal: GET /api/me, API key", Call(full, me_key)),
            ("portal: GET /api/me, JWT", Call(full, base_scope("/api/me", jwt_auth))),
            *((f"portal {name}: /api/me, API key", Call(app, me_key)) for name, app in variants.items()),
            *((f"FastAPI app + {name}: /api/me, API key", Call(app, me_key)) for name, app in pieces.items()),
            ("  Authenticator.identify, API key (cached)", identify_key),
            ("  Authenticator.identify, JWT (cached)", identify_jwt),
            ("  RateLimiter.hit (memory storage)", hit),
        ]
        if redis_url:
            extra, close_redis = await redis_cases(redis_url, "portal_bench_" + secrets.token_hex(4) + ":")
            cases += extra
        for _, case in cases:  # warm up: caches, lazily built middleware stacks
            for _ in range(200):
                await case()
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in cases}
        deadline = time.monotonic() + 600
        for _ in range(repeats):
            for name, case in cases:
                if time.monotonic() > deadline:
                    raise RuntimeError("took longer than 10 minutes")
                started, cpu_started = time.perf_counter(), time.process_time()
                for _ in range(iterations):
                    await case()
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                samples[name].append((wall / iterations * 1e6, cpu / iterations * 1e6))
        if redis_url:
            await close_redis()
        return [(name, samples[name]) for name, _ in cases]
    finally:
        for lifespan in reversed(lifespans):
            await lifespan.__aexit__(None, None, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="calls per timing (default 2000)")
    parser.add_argument("--repeats", type=int, default=7, help="timings per variant (default 7)")
    parser.add_argument(
        "--redis",
        nargs="?",
        const="redis://127.0.0.1:6379/0",
        help="also time the Redis round trips of the scale-out mode (default URL redis://127.0.0.1:6379/0)",
    )
    args = parser.parse_args()
    if args.redis and not args.redis.startswith(("redis://127.0.0.1", "redis://localhost")):
        parser.error("--redis must point at a loopback Redis")
    if not (1 <= args.iterations <= 100_000 and 1 <= args.repeats <= 50):
        parser.error("--iterations must be 1..100000 and --repeats 1..50")

    data_dir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    os.environ.update(
        {
            "PORTAL_DATA_DIR": str(data_dir),
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(32),
            "PORTAL_BOOTSTRAP_ADMIN": f"{ADMIN}:{PASSWORD}",
            "PORTAL_LOG_LEVEL": "warning",
            **RATE_OVERRIDES,
        }
    )
    for name in ("PORTAL_DATABASE_URL", "PORTAL_REDIS_URL"):
        os.environ.pop(name, None)
    try:
        import uvloop

        from portal import migrate
        from portal.config import Settings

        migrate.upgrade(Settings())
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run(args.iterations, args.repeats, args.redis))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"in-process ASGI cost per request, microseconds ({args.repeats} x {args.iterations} calls, uvloop)")
    print(f"  {'case':<72}{'median':>8}{'min':>8}{'vs bare':>9}{'CPU min':>9}")
    bare_min = min(wall for wall, _ in results[0][1])
    for name, values in results:
        walls = [wall for wall, _ in values]
        extra = "" if name.startswith("  ") else f"{min(walls) - bare_min:+.1f}"
        cpu_min = min(cpu for _, cpu in values)
        print(f"  {name:<72}{statistics.median(walls):>8.1f}{min(walls):>8.1f}{extra:>9}{cpu_min:>9.1f}")
    print(
        "  median/min: wall-clock microseconds per call; vs bare: min minus the bare app's min;\n"
        "  CPU min: this process's CPU time per call (differs from wall time only where a call waits on Redis)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
