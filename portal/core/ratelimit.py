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

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
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
    """Counts hits per (rate, key) in memory or Redis."""

    def __init__(self, redis_url: str | None = None, prefix: str = "portal:") -> None:
        self.storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix=prefix + "rl")
        else:
            self.storage = MemoryStorage()
        self._strategy = FixedWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    def item(self, rate: str) -> RateLimitItem:
        parsed = self._items.get(rate)
        if parsed is None:
            parsed = self._items[rate] = parse(rate)
        return parsed

    async def hit(self, rate: str, key: str) -> RateResult:
        item = self.item(rate)
        allowed = await self._strategy.hit(item, key)
        stats = await self._strategy.get_window_stats(item, key)
        return RateResult(allowed, item.amount, max(0, stats.remaining), int(stats.reset_time))

    async def peek(self, rate: str, key: str) -> RateResult:
        """The state of a window without counting a hit (used for login-failure lockouts)."""
        item = self.item(rate)
        allowed = await self._strategy.test(item, key)
        stats = await self._strategy.get_window_stats(item, key)
        return RateResult(allowed, item.amount, max(0, stats.remaining), int(stats.reset_time))

    async def clear(self, rate: str, key: str) -> None:
        await self._strategy.clear(self.item(rate), key)

    async def close(self) -> None:
        # MemoryStorage runs a timer task for expiry; Redis keeps a pool. Neither needs more than this.
        reset = getattr(self.storage, "reset", None)
        if isinstance(self.storage, MemoryStorage) and reset is not None:
            await reset()


Identify = Callable[[Scope], Awaitable[str | None]]


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
            user_key = await self.identify(scope)
            key = "api:user:" + user_key if user_key else "api:ip:" + client_ip(scope)
            result = await self.limiter.hit(self.api_rate, key)

        if not result.allowed:
            await _reject(scope, receive, send, result)
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
