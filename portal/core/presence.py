"""Who is connected where, counted across every portal process.

Each process keeps its own counts (``key`` → user id → number of connections). In memory they
are the whole truth; with Redis each process mirrors its counts into hashes that expire unless
refreshed, so a crashed process's users disappear within ``ttl`` seconds, and queries combine
the hashes of all live processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter, defaultdict
from typing import Any


class Presence:
    """In-memory presence; :class:`RedisPresence` extends it across processes."""

    def __init__(self) -> None:
        self._local: dict[str, Counter[int]] = defaultdict(Counter)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def add(self, key: str, user_id: int) -> bool:
        """Count one more connection; True when the user was not present under ``key`` anywhere."""
        self._local[key][user_id] += 1
        return self._local[key][user_id] == 1

    async def remove(self, key: str, user_id: int) -> bool:
        """Count one connection less; True when the user is now gone from ``key`` everywhere."""
        counts = self._local.get(key)
        if not counts or counts[user_id] <= 0:
            return False
        counts[user_id] -= 1
        if counts[user_id] == 0:
            del counts[user_id]
            if not counts:
                self._local.pop(key, None)
            return True
        return False

    async def count(self, key: str, user_id: int) -> int:
        """Connections of ``user_id`` under ``key`` in all processes."""
        return self._local.get(key, Counter())[user_id]

    async def members(self, key: str) -> set[int]:
        return set(self._local.get(key, Counter()))


class RedisPresence(Presence):
    def __init__(self, url: str, prefix: str, ttl: int = 30) -> None:
        super().__init__()
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(url)
        self._prefix = prefix + "presence:"
        self._proc = secrets.token_hex(6)
        self._ttl = ttl
        self._beat: asyncio.Task[None] | None = None

    def _key(self, proc: str, key: str) -> str:
        return f"{self._prefix}{proc}:{key}"

    async def start(self) -> None:
        await self._heartbeat_once()
        self._beat = asyncio.create_task(self._heartbeat(), name="presence-heartbeat")

    async def stop(self) -> None:
        if self._beat:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._prefix + "procs", self._proc)
            for key in self._local:
                pipe.delete(self._key(self._proc, key))
            await pipe.execute()
        await self._redis.aclose()

    async def _heartbeat_once(self) -> None:
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._prefix + "procs", {self._proc: now})
            pipe.zremrangebyscore(self._prefix + "procs", 0, now - self._ttl)
            for key in self._local:
                pipe.expire(self._key(self._proc, key), self._ttl)
            await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            with contextlib.suppress(Exception):
                await self._heartbeat_once()

    async def _other_procs(self) -> list[str]:
        procs = await self._redis.zrangebyscore(self._prefix + "procs", time.time() - self._ttl, "+inf")
        return [p.decode() for p in procs if p.decode() != self._proc]

    async def add(self, key: str, user_id: int) -> bool:
        first_here = await super().add(key, user_id)
        redis_key = self._key(self._proc, key)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(redis_key, str(user_id), 1)
            pipe.expire(redis_key, self._ttl)
            await pipe.execute()
        return first_here and not await self._present_elsewhere(key, user_id)

    async def remove(self, key: str, user_id: int) -> bool:
        gone_here = await super().remove(key, user_id)
        redis_key = self._key(self._proc, key)
        if gone_here:
            await self._redis.hdel(redis_key, str(user_id))
        else:
            await self._redis.hincrby(redis_key, str(user_id), -1)
        return gone_here and not await self._present_elsewhere(key, user_id)

    async def _present_elsewhere(self, key: str, user_id: int) -> bool:
        procs = await self._other_procs()
        if not procs:
            return False
        async with self._redis.pipeline(transaction=False) as pipe:
            for proc in procs:
                pipe.hexists(self._key(proc, key), str(user_id))
            return any(await pipe.execute())

    async def count(self, key: str, user_id: int) -> int:
        total = await super().count(key, user_id)
        procs = await self._other_procs()
        if procs:
            async with self._redis.pipeline(transaction=False) as pipe:
                for proc in procs:
                    pipe.hget(self._key(proc, key), str(user_id))
                total += sum(int(v) for v in await pipe.execute() if v)
        return total

    async def members(self, key: str) -> set[int]:
        result = await super().members(key)
        procs = await self._other_procs()
        if procs:
            async with self._redis.pipeline(transaction=False) as pipe:
                for proc in procs:
                    pipe.hkeys(self._key(proc, key))
                for fields in await pipe.execute():
                    result.update(int(f) for f in fields)
        return result


def create_presence(redis_url: str | None, prefix: str) -> Presence:
    return RedisPresence(redis_url, prefix) if redis_url else Presence()
