"""Publish/subscribe between the parts of one portal, and between portal processes.

Topics are strings (``channel:{id}``, ``user:{id}``, ``auth``…); events are JSON-able dicts.
:class:`MemoryHub` serves a single process; :class:`RedisHub` fans events out to every process
sharing the Redis server, including the publisher itself, so a handler never needs to care
where an event came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("portal.hub")

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


class Hub(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...
    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(topic, event)`` for every event on ``topic``; returns an unsubscribe function."""
        ...


class _Subscribers:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def add(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._handlers[topic].append(handler)

        def remove() -> None:
            handlers = self._handlers.get(topic)
            if handlers and handler in handlers:
                handlers.remove(handler)
                if not handlers:
                    del self._handlers[topic]

        return remove

    def topics(self) -> list[str]:
        return list(self._handlers)

    def has(self, topic: str) -> bool:
        return topic in self._handlers

    async def deliver(self, topic: str, event: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(topic, ())):
            try:
                await handler(topic, event)
            except Exception:
                log.exception("hub handler for %s failed", topic)


class MemoryHub:
    """In-process delivery; the default when no Redis is configured."""

    def __init__(self) -> None:
        self._subs = _Subscribers()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await self._subs.deliver(topic, event)

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        return self._subs.add(topic, handler)


class RedisHub:
    """Delivery through Redis pub/sub so that several portal processes see each other's events."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self._prefix = prefix + "hub:"
        self._subs = _Subscribers()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.psubscribe(self._prefix + "*")
        self._reader = asyncio.create_task(self._read(), name="redis-hub-reader")

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._redis.aclose()

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + topic, json.dumps(event, separators=(",", ":")))

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        return self._subs.add(topic, handler)

    async def _read(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    topic = message["channel"].decode()[len(self._prefix) :]
                    if self._subs.has(topic):
                        await self._subs.deliver(topic, json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis hub reader failed; reconnecting")
                await asyncio.sleep(1)


def create_hub(redis_url: str | None, prefix: str) -> Hub:
    return RedisHub(redis_url, prefix) if redis_url else MemoryHub()
