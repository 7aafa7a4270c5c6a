"""``GET /api/admin/relay-sessions``: recent relay sessions with bytes and durations, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.core.db import MAX_ID, get_session, utcnow
from portal.remote import metrics

router = APIRouter(tags=["remote access"])


class RelaySessionOut(BaseModel):
    id: int
    user_id: int | None
    username: str | None
    kind: str
    target: str
    connection_id: str | None
    service_id: int | None
    started_at: datetime
    ended_at: datetime | None
    active: bool
    duration_seconds: float
    bytes_in: int  # browser -> backend
    bytes_out: int  # backend -> browser
    close_reason: str


class RelayTotals(BaseModel):
    sessions: int
    active: int
    bytes_in: int
    bytes_out: int


class RelaySessionList(BaseModel):
    sessions: list[RelaySessionOut]
    totals: RelayTotals  # over every session matching the filters, not only the listed ones
    limit: int


@router.get("/api/admin/relay-sessions", response_model=RelaySessionList)
async def relay_sessions(
    principal: Annotated[Principal, Depends(require_scope("services:read", Role.ADMIN))],
    session: Annotated[AsyncSession, Depends(get_session)],
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RelaySessionList:
    """The newest relay sessions (open ones too, with their duration so far), newest first."""
    rows = await metrics.recent_sessions(session, user_id=user_id, kind=kind, limit=limit)
    names = await metrics.usernames(session, rows)
    summary = await metrics.totals(session, user_id=user_id, kind=kind)
    now = utcnow()
    return RelaySessionList(
        sessions=[
            RelaySessionOut(
                id=r.id,
                user_id=r.user_id,
                username=names.get(r.user_id) if r.user_id is not None else None,
                kind=r.kind,
                target=r.target,
                connection_id=r.connection_id,
                service_id=r.service_id,
                started_at=r.started_at,
                ended_at=r.ended_at,
                active=r.ended_at is None,
                duration_seconds=round(metrics.duration_seconds(r, now), 3),
                bytes_in=r.bytes_in,
                bytes_out=r.bytes_out,
                close_reason=r.close_reason,
            )
            for r in rows
        ],
        totals=RelayTotals(**vars(summary)),
        limit=limit,
    )
