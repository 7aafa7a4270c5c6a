"""``GET /api/activity`` and ``GET /api/admin/audit-log``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.activity import service as activity
from portal.core.db import MAX_ID, get_session

router = APIRouter(tags=["activity"])


class ActivityOut(BaseModel):
    id: int
    user_id: int | None
    username: str | None
    action: str
    details: str
    created_at: datetime


class ActivityList(BaseModel):
    activities: list[ActivityOut]


class AuditOut(BaseModel):
    id: int
    actor_id: int | None
    actor_username: str | None
    action: str
    target_type: str | None
    target_id: str | None
    target_label: str | None
    details: dict[str, object]
    created_at: datetime


class AuditList(BaseModel):
    entries: list[AuditOut]
    limit: int
    offset: int


@router.get("/api/activity", response_model=ActivityList)
async def get_activity(
    principal: Annotated[Principal, Depends(require_scope("activity:read"))],
    session: Annotated[AsyncSession, Depends(get_session)],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> ActivityList:
    """Admins see everyone's activity; others see their own."""
    user_filter = None if principal.role.at_least(Role.ADMIN) else principal.user_id
    rows = await activity.list_activity(session, limit=limit, user_id=user_filter)
    return ActivityList(activities=[ActivityOut.model_validate(r, from_attributes=True) for r in rows])


@router.get("/api/admin/audit-log", response_model=AuditList)
async def get_audit_log(
    principal: Annotated[Principal, Depends(require_scope("audit:read", Role.MODERATOR))],
    session: Annotated[AsyncSession, Depends(get_session)],
    action: str | None = None,
    actor_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> AuditList:
    rows = await activity.list_audit(
        session,
        action=action,
        actor_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    entries = [
        AuditOut(
            id=r.id,
            actor_id=r.actor_id,
            actor_username=r.actor_username,
            action=r.action,
            target_type=r.target_type,
            target_id=r.target_id,
            target_label=r.target_label,
            details=json.loads(r.details or "{}"),
            created_at=r.created_at,
        )
        for r in rows
    ]
    return AuditList(entries=entries, limit=limit, offset=offset)
