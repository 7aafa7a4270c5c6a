"""Recording and reading the activity feed and the audit log.

``record_activity`` and ``record_audit`` add rows to the caller's session, so the entry is
committed together with the change it describes (or not at all).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.activity.models import Activity, AuditEntry


def record_activity(
    session: AsyncSession,
    action: str,
    *,
    user_id: int | None,
    username: str | None,
    details: str = "",
    ip: str | None = None,
) -> None:
    session.add(Activity(user_id=user_id, username=username, action=action, details=details[:500], ip=ip))


def record_audit(
    session: AsyncSession,
    action: str,
    *,
    actor_id: int | None,
    actor_username: str | None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    target_label: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor_id=actor_id,
            actor_username=actor_username,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            target_label=target_label,
            details=json.dumps(details or {}, separators=(",", ":"), default=str),
        )
    )


async def list_activity(session: AsyncSession, *, limit: int, user_id: int | None) -> list[Activity]:
    """Newest first; ``user_id=None`` means everyone's (admins)."""
    stmt = select(Activity).order_by(Activity.id.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(Activity.user_id == user_id)
    return list((await session.scalars(stmt)).all())


async def list_audit(
    session: AsyncSession,
    *,
    action: str | None = None,
    actor_id: int | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[AuditEntry]:
    stmt = select(AuditEntry)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if target_type:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    if target_id:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    if since:
        stmt = stmt.where(AuditEntry.created_at >= since)
    if until:
        stmt = stmt.where(AuditEntry.created_at <= until)
    stmt = stmt.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    return list((await session.scalars(stmt)).all())
