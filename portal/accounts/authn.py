"""Resolving credentials (JWT, API key, session cookie) into a :class:`Principal`.

Resolution happens once per request, in the rate-limit middleware's ``identify`` hook, and the
result is kept in the ASGI scope for the route dependencies. Resolved credentials are cached in
process; every change to a user or their credentials bumps that user's *generation* (in memory,
or in Redis so that all processes see it), and a cached entry from an older generation is
discarded. That keeps revocation immediate without a database read per request.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import jwt
from sqlalchemy import select, update
from starlette.types import Scope

from portal.accounts.models import ApiKey, AuthToken, User
from portal.accounts.principal import Principal, UserSnapshot
from portal.core.crypto import Keyring
from portal.core.db import Database, utcnow
from portal.core.ratelimit import Caller

API_KEY_PREFIX = "portal_"
SESSION_COOKIE = "portal_session"
CSRF_COOKIE = "portal_csrf"
CSRF_HEADER = "x-csrf-token"
LAST_USED_WRITE_INTERVAL = 60.0
_CACHE_SIZE = 10_000


class Generations:
    """Per-user counters; bumping one invalidates every cached credential of that user."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self._local: dict[int, int] = {}
        self._redis: Any = None
        self._prefix = prefix + "authgen:"
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(redis_url)

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def key(self, user_id: int) -> str:
        return self._prefix + str(user_id)

    async def get(self, user_id: int) -> int:
        if self._redis is None:
            return self._local.get(user_id, 0)
        value = await self._redis.get(self._prefix + str(user_id))
        return int(value) if value else 0

    async def bump(self, user_id: int) -> None:
        if self._redis is None:
            self._local[user_id] = self._local.get(user_id, 0) + 1
        else:
            await self._redis.incr(self._prefix + str(user_id))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


@dataclass(slots=True)
class _Cached:
    principal: Principal
    generation: int
    last_used_written: float


class AuthFailure:
    """Credentials were presented but are not valid (expired, revoked, malformed)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class Authenticator:
    def __init__(self, db: Database, keyring: Keyring, generations: Generations, jwt_ttl: timedelta) -> None:
        self.db = db
        self.keyring = keyring
        self.generations = generations
        self.jwt_ttl = jwt_ttl
        self._jwt_key = keyring.key("jwt-signing")
        self._csrf_key = keyring.key("csrf")
        self._cache: OrderedDict[str, _Cached] = OrderedDict()

    # -- issuing -------------------------------------------------------------------------------
    def new_token_id(self) -> str:
        return secrets.token_urlsafe(16)

    def encode_jwt(self, token_id: str, user_id: int, expires_at: datetime) -> str:
        now = datetime.now(UTC)
        claims = {"sub": str(user_id), "jti": token_id, "iat": int(now.timestamp()), "exp": int(expires_at.timestamp())}
        return jwt.encode(claims, self._jwt_key, algorithm="HS256")

    def csrf_token(self, token_id: str) -> str:
        return self.keyring.hash_token(token_id, "csrf")[:43]

    def hash_api_key(self, key: str) -> str:
        return self.keyring.hash_token(key, "api-key")

    # -- resolving -----------------------------------------------------------------------------
    async def identify(self, scope: Scope) -> Caller:
        """The rate-limit hook: resolve once and remember the result in the scope.

        With Redis, a cached credential's generation check rides along the limiter's round
        trip (``probe``/``settle``) instead of costing a round trip of its own.
        """
        state = scope.setdefault("state", {})
        if self.generations.shared:
            credential, via = _credential(scope)
            kind = _kind(credential, via) if credential else None
            cache_key = f"{kind}:{credential}" if kind else None
            hit = self._cache.get(cache_key) if cache_key else None
            if hit is not None and cache_key is not None and not _expired(hit.principal):
                entry, key = hit, cache_key

                async def settle(value: bytes | None) -> None:
                    if (int(value) if value else 0) == entry.generation:
                        state["auth"] = await self._accept(key, entry)
                    else:
                        self._cache.pop(key, None)
                        state["auth"] = await self.resolve(scope)

                user_id = hit.principal.user_id
                return Caller(str(user_id), self.generations.key(user_id), settle)
        result = state["auth"] = await self.resolve(scope)
        return Caller(str(result.user_id) if isinstance(result, Principal) else None)

    async def resolve(self, scope: Scope) -> Principal | AuthFailure | None:
        credential, via = _credential(scope)
        if credential is None:
            return None
        kind = _kind(credential, via)
        if kind is None:
            return AuthFailure("Invalid session")
        return await self._resolve_cached(credential, kind)

    async def _accept(self, cache_key: str, hit: _Cached) -> Principal:
        self._cache.move_to_end(cache_key)
        now = time.monotonic()
        if now - hit.last_used_written >= LAST_USED_WRITE_INTERVAL:
            hit.last_used_written = now
            await self._touch(hit.principal)
        return hit.principal

    async def _resolve_cached(self, credential: str, via: str) -> Principal | AuthFailure:
        cache_key = via + ":" + credential
        hit = self._cache.get(cache_key)
        now = time.monotonic()
        if hit is not None:
            if _expired(hit.principal):
                self._cache.pop(cache_key, None)
                return AuthFailure("Token expired")
            if await self.generations.get(hit.principal.user_id) == hit.generation:
                return await self._accept(cache_key, hit)
            self._cache.pop(cache_key, None)

        if via == "api_key":
            key_hash = self.hash_api_key(credential)
            result = await self._load_api_key(key_hash)
        else:
            try:
                claims = jwt.decode(
                    credential, self._jwt_key, algorithms=["HS256"], options={"require": ["exp", "jti", "sub"]}
                )
            except jwt.ExpiredSignatureError:
                return AuthFailure("Token expired")
            except jwt.PyJWTError:
                return AuthFailure("Invalid token")
            result = await self._load_jwt(str(claims["jti"]), int(claims["sub"]), via)
        if isinstance(result, AuthFailure):
            return result
        principal, generation = result
        await self._touch(principal)
        self._cache[cache_key] = _Cached(principal, generation, now)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    async def _load_jwt(self, token_id: str, user_id: int, via: str) -> tuple[Principal, int] | AuthFailure:
        generation = await self.generations.get(user_id)
        async with self.db.sessions() as session:
            row = (
                await session.execute(
                    select(AuthToken, User).join(User, User.id == AuthToken.user_id).where(AuthToken.id == token_id)
                )
            ).first()
        if row is None:
            return AuthFailure("Invalid token")
        token, user = row
        if token.revoked_at is not None:
            return AuthFailure("Token revoked")
        if token.expires_at <= utcnow():
            return AuthFailure("Token expired")
        if (via == "cookie") != (token.kind == "web"):
            return AuthFailure("Invalid token")
        principal = Principal(UserSnapshot.of(user), via, "*", token_id=token.id, expires_at=token.expires_at)
        return principal, generation

    async def _load_api_key(self, key_hash: str) -> tuple[Principal, int] | AuthFailure:
        async with self.db.sessions() as session:
            row = (
                await session.execute(
                    select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == key_hash)
                )
            ).first()
        if row is None:
            return AuthFailure("Invalid API key")
        key, user = row
        if key.revoked_at is not None:
            return AuthFailure("API key revoked")
        if key.expires_at is not None and key.expires_at <= utcnow():
            return AuthFailure("API key expired")
        generation = await self.generations.get(user.id)
        principal = Principal(
            UserSnapshot.of(user), "api_key", key.scopes, api_key_id=key.id, expires_at=key.expires_at
        )
        return principal, generation

    async def _touch(self, principal: Principal) -> None:
        """Record ``last_used_at`` (at most once a minute per credential per process)."""
        async with self.db.sessions() as session:
            if principal.api_key_id is not None:
                stmt = update(ApiKey).where(ApiKey.id == principal.api_key_id).values(last_used_at=utcnow())
            else:
                stmt = update(AuthToken).where(AuthToken.id == principal.token_id).values(last_used_at=utcnow())
            await session.execute(stmt)
            await session.commit()

    async def invalidate_user(self, user_id: int) -> None:
        await self.generations.bump(user_id)
        for key in [k for k, v in self._cache.items() if v.principal.user_id == user_id]:
            self._cache.pop(key, None)


def _kind(credential: str, via: str) -> str | None:
    """How a credential is checked: an API key, a session cookie, or a bearer JWT."""
    if credential.startswith(API_KEY_PREFIX):
        return None if via == "cookie" else "api_key"
    return "cookie" if via == "cookie" else "jwt"


def _expired(principal: Principal) -> bool:
    return principal.expires_at is not None and principal.expires_at <= datetime.now(UTC)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope.get("headers") or [])


def _credential(scope: Scope) -> tuple[str | None, str]:
    headers = _headers(scope)
    auth = headers.get(b"authorization")
    if auth:
        scheme, _, value = auth.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), "bearer"
    api_key = headers.get(b"x-api-key")
    if api_key:
        return api_key.decode("latin-1").strip(), "header"
    query = scope.get("query_string") or b""
    if b"token=" in query:
        values = parse_qs(query.decode("latin-1")).get("token")
        if values and values[0]:
            return values[0], "query"
    cookie = headers.get(b"cookie")
    if cookie:
        session_cookie = _cookie_value(cookie.decode("latin-1"), SESSION_COOKIE)
        if session_cookie:
            return session_cookie, "cookie"
    return None, ""


def _cookie_value(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None
