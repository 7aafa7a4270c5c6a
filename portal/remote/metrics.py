"""Relay session metrics for admins: who relayed how many bytes to where, for how long."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.core.db import utcnow
from portal.remote.models import RelaySession


@dataclass(frozen=True)
class SessionTotals:
    sessions: int
    active: int
    bytes_in: int
    bytes_out: int


def _filters(user_id: int | None, kind: str | None) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if user_id is not None:
        found.append(RelaySession.user_id == user_id)
    if kind is not None:
        found.append(RelaySession.kind == kind)
    return found


async def recent_sessions(
    session: AsyncSession, *, user_id: int | None = None, kind: str | None = None, limit: int = 50
) -> list[RelaySession]:
    """The newest sessions first (open ones included)."""
    query = select(RelaySession).where(*_filters(user_id, kind))
    rows = await session.scalars(query.order_by(RelaySession.started_at.desc(), RelaySession.id.desc()).limit(limit))
    return list(rows)


async def totals(session: AsyncSession, *, user_id: int | None = None, kind: str | None = None) -> SessionTotals:
    """Over every session matching the filters, not only the listed ones."""
    query = select(
        func.count(RelaySession.id),
        func.count(RelaySession.id).filter(RelaySession.ended_at.is_(None)),
        func.coalesce(func.sum(RelaySession.bytes_in), 0),
        func.coalesce(func.sum(RelaySession.bytes_out), 0),
    ).where(*_filters(user_id, kind))
    row = (await session.execute(query)).one()
    return SessionTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def usernames(session: AsyncSession, rows: list[RelaySession]) -> dict[int, str]:
    users = await accounts.users_by_ids(session, {r.user_id for r in rows if r.user_id is not None})
    return {uid: user.username for uid, user in users.items()}


def duration_seconds(row: RelaySession, now: datetime | None = None) -> float:
    """Until the end, or until now for a session still open."""
    end = row.ended_at or now or utcnow()
    return max(0.0, (end - row.started_at).total_seconds())
