"""Rate limiting for every route, with ``X-RateLimit-*`` headers on every response.

Windows are fixed (the ``X-RateLimit-Reset`` epoch is then exact) and counted in memory, or in
Redis when configured so that several portal processes share one budget. The middleware is
plain ASGI: it sits on the hot path of every request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from limits import parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class RateResult:
    allowed: bool
    limit: int
    remaining: int
    reset: int

    @property
    def retry_after(self) -> int:
        return max(1, self.reset - int(time.time()))

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


class RateLimiter:
    """Fixed-window counters in memory, or in Redis so that every process shares one budget.

    The window's index is part of the key, so the reset time needs no extra query: one Redis
    round trip per hit (an INCR script), which can also fetch a ``probe`` key on the way —
    the authenticator uses that to check its cache without a second round trip.
    """

    _SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local probe = false
if #KEYS > 1 then probe = redis.call('GET', KEYS[2]) end
return {count, probe}
"""

    def __init__(self, redis_url: str | None = None, prefix: str = "portal:") -> None:
        self._prefix = prefix + "rl:"
        self._redis: Any = None
        self._script: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(redis_url)
            self._script = self._redis.register_script(self._SCRIPT)
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window index, count), memory mode
        self._items: dict[str, tuple[int, int]] = {}

    def item(self, rate: str) -> tuple[int, int]:
        """(amount, period in seconds) of a rate string such as ``10/minute``."""
        parsed = self._items.get(rate)
        if parsed is None:
            limit = parse(rate)
            parsed = self._items[rate] = (limit.amount, limit.get_expiry())
        return parsed

    async def hit(self, rate: str, key: str, probe: str | None = None) -> RateResult:
        result, _ = await self.hit_and_probe(rate, key, probe)
        return result

    async def hit_and_probe(self, rate: str, key: str, probe: str | None = None) -> tuple[RateResult, bytes | None]:
        amount, period = self.item(rate)
        window = int(time.time()) // period
        reset = (window + 1) * period
        if self._redis is None:
            stored = self._counts.get(key)
            count = stored[1] + 1 if stored is not None and stored[0] == window else 1
            self._counts[key] = (window, count)
            if len(self._counts) > 100_000:
                self._sweep(window)
            probed = None
        else:
            keys = [f"{self._prefix}{key}:{period}:{window}"] + ([probe] if probe else [])
            count, probed = await self._script(keys=keys, args=[period * 1000 + 1000])
            count = int(count)
        return RateResult(count <= amount, amount, max(0, amount - count), reset), probed

    async def peek(self, rate: str, key: str) -> RateResult:
        """The state of a window without counting a hit (used for login-failure lockouts)."""
        amount, period = self.item(rate)
        window = int(time.time()) // period
        if self._redis is None:
            stored = self._counts.get(key)
            count = stored[1] if stored is not None and stored[0] == window else 0
        else:
            value = await self._redis.get(f"{self._prefix}{key}:{period}:{window}")
            count = int(value) if value else 0
        return RateResult(count < amount, amount, max(0, amount - count), (window + 1) * period)

    async def clear(self, rate: str, key: str) -> None:
        _, period = self.item(rate)
        if self._redis is None:
            self._counts.pop(key, None)
        else:
            await self._redis.delete(f"{self._prefix}{key}:{period}:{int(time.time()) // period}")

    def _sweep(self, window: int) -> None:
        for key in [k for k, (w, _) in self._counts.items() if w < window - 1]:
            del self._counts[key]

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom a request is charged to: a user key (else the client IP), plus an optional Redis key
    to read in the limiter's round trip and a coroutine that receives its value."""

    key: str | None
    probe: str | None = None
    settle: Callable[[bytes | None], Awaitable[None]] | None = None


Identify = Callable[[Scope], Awaitable[Caller]]


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


class RateLimitMiddleware:
    """Charges each request to the auth bucket (per IP) or the API bucket (per user, else per IP)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        auth_rate: str,
        api_rate: str,
        auth_paths: Iterable[str],
        identify: Identify,
        exempt_prefixes: tuple[str, ...] = ("/static/",),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.auth_rate = auth_rate
        self.api_rate = api_rate
        self.auth_paths = frozenset(auth_paths)
        self.identify = identify
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.auth_paths and scope.get("method", "GET") == "POST":
            result = await self.limiter.hit(self.auth_rate, "auth:" + client_ip(scope))
        else:
            caller = await self.identify(scope)
            key = "api:user:" + caller.key if caller.key else "api:ip:" + client_ip(scope)
            result, probed = await self.limiter.hit_and_probe(self.api_rate, key, caller.probe)
            if caller.settle is not None:
                await caller.settle(probed)

        if not result.allowed:
            await _reject(scope, receive, send, result)
            return

        if scope["type"] == "websocket":  # the headers are for HTTP responses: leave WebSocket sends alone
            await self.app(scope, receive, send)
            return
        extra = result.headers()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _reject(scope: Scope, receive: Receive, send: Send, result: RateResult) -> None:
    body = {
        "error": "Too many requests, retry later",
        "status": 429,
        "retry_after": result.retry_after,
    }
    if scope["type"] == "websocket":
        await receive()  # the websocket.connect message
        await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})
        return
    payload = json.dumps(body).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"retry-after", str(result.retry_after).encode()),
        *result.headers(),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def rate_headers(result: RateResult) -> dict[str, Any]:
    return {k.decode(): v.decode() for k, v in result.headers()}
