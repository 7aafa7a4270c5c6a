"""API keys: ``portal_`` + 256 random bits, stored only as a keyed hash, scoped, revocable."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.authn import API_KEY_PREFIX, Authenticator
from portal.accounts.models import ApiKey
from portal.accounts.principal import Principal
from portal.accounts.scopes import is_subset, parse_scopes
from portal.activity.service import record_activity
from portal.core.db import utcnow
from portal.core.errors import BadRequest, Conflict, Forbidden, NotFound

MAX_KEYS_PER_USER = 100
PREFIX_LENGTH = len(API_KEY_PREFIX) + 3


@dataclass(frozen=True)
class CreatedKey:
    row: ApiKey
    key: str


async def check_create_key(
    session: AsyncSession,
    authn: Authenticator,
    principal: Principal,
    name: str,
    scopes: str,
    expires_in_days: int | None,
) -> CreatedKey:
    try:
        normalised = ",".join(parse_scopes(scopes))
    except ValueError as exc:
        raise BadRequest(str(exc), field="scopes") from exc
    if not is_subset(normalised, principal.scopes):
        raise Forbidden("An API key cannot grant scopes it does not hold")
    count = await session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.user_id == principal.user_id))
    if (count or 0) >= MAX_KEYS_PER_USER:
        raise Conflict(f"At most {MAX_KEYS_PER_USER} API keys per user; delete unused ones")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        user_id=principal.user_id,
        name=name.strip() or "API key",
        key_prefix=key[:PREFIX_LENGTH],
        key_hash=authn.hash_api_key(key),
        scopes=normalised,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(row)
    record_activity(
        session,
        "api_key_created",
        user_id=principal.user_id,
        username=principal.user.username,
        details=f"created API key '{row.name}' ({normalised})",
    )
    await session.commit()
    return CreatedKey(row, key)


async def list_keys(session: AsyncSession, user_id: int) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc()).limit(MAX_KEYS_PER_USER)
    return list((await session.scalars(stmt)).all())


async def access_key(session: AsyncSession, user_id: int, key_id: int) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        raise NotFound("API key not found")
    return key


async def do_revoke_key(session: AsyncSession, authn: Authenticator, principal: Principal, key_id: int) -> ApiKey:
    key = await access_key(session, principal.user_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record_activity(
            session,
            "api_key_revoked",
            user_id=principal.user_id,
            username=principal.user.username,
            details=f"revoked API key '{key.name}'",
        )
        await session.commit()
        await authn.invalidate_user(principal.user_id)
    return key


async def do_delete_key(session: AsyncSession, authn: Authenticator, principal: Principal, key_id: int) -> None:
    key = await access_key(session, principal.user_id, key_id)
    await session.delete(key)
    record_activity(
        session,
        "api_key_deleted",
        user_id=principal.user_id,
        username=principal.user.username,
        details=f"deleted API key '{key.name}'",
    )
    await session.commit()
    await authn.invalidate_user(principal.user_id)
