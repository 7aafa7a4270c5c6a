"""Moderation routes: sanctions (timeouts, mutes, bans) and auto-moderation rules."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.activity.service import record_audit
from portal.chat import automod, moderation
from portal.chat.models import AutomodRule, Channel, Sanction
from portal.chat.schemas import (
    AutomodRuleIn,
    AutomodRuleList,
    AutomodRuleOut,
    AutomodRuleUpdate,
    SanctionCreate,
    SanctionList,
    SanctionOut,
    Success,
)
from portal.core.db import get_session

router = APIRouter(tags=["moderation"])
Session = Annotated[AsyncSession, Depends(get_session)]
Moderator = Annotated[Principal, Depends(require_scope("moderation", Role.MODERATOR))]
Admin = Annotated[Principal, Depends(require_scope("moderation", Role.ADMIN))]


async def _sanction_out(session: AsyncSession, rows: list[Sanction]) -> list[SanctionOut]:
    users = await accounts.users_by_ids(session, {s.user_id for s in rows})
    return [
        SanctionOut(
            id=s.id,
            user_id=s.user_id,
            username=users[s.user_id].username if s.user_id in users else None,
            kind=s.kind,
            channel_id=s.channel_id,
            reason=s.reason,
            created_by=s.created_by,
            created_at=s.created_at,
            expires_at=s.expires_at,
            lifted_at=s.lifted_at,
            active=moderation.is_active(s),
        )
        for s in rows
    ]


@router.post("/api/chat/moderation/sanctions", response_model=SanctionOut, status_code=201)
async def create_sanction(
    body: SanctionCreate, request: Request, principal: Moderator, session: Session
) -> SanctionOut:
    """Time out, mute or ban a user (moderator+); written to the audit log. A ban also takes the
    user's open sockets out of the channel."""
    sanction = await moderation.do_sanction(
        session,
        principal,
        user_id=body.user_id,
        kind=body.kind,
        channel_id=body.channel_id,
        minutes=body.duration_minutes,
        reason=body.reason,
    )
    if sanction.kind == "ban" and sanction.channel_id is not None:
        channel = await session.get(Channel, sanction.channel_id)
        if channel is not None:
            await request.app.state.chat.announce_access_lost(sanction.user_id, channel.id, channel.name)
    return (await _sanction_out(session, [sanction]))[0]


@router.get("/api/chat/moderation/sanctions", response_model=SanctionList)
async def list_sanctions(
    principal: Moderator, session: Session, active: bool = True, user_id: Annotated[int | None, Query()] = None
) -> SanctionList:
    rows = await moderation.list_sanctions(session, active_only=active, user_id=user_id)
    return SanctionList(sanctions=await _sanction_out(session, rows))


@router.delete("/api/chat/moderation/sanctions/{sanction_id}", response_model=SanctionOut)
async def lift_sanction(sanction_id: int, principal: Moderator, session: Session) -> SanctionOut:
    sanction = await moderation.do_lift(session, principal, sanction_id)
    return (await _sanction_out(session, [sanction]))[0]


def _rule_out(rule: AutomodRule) -> AutomodRuleOut:
    return AutomodRuleOut(
        id=rule.id,
        name=rule.name,
        kind=rule.kind,
        config=json.loads(rule.config),
        action=rule.action,
        timeout_minutes=rule.timeout_minutes,
        enabled=rule.enabled,
        created_at=rule.created_at,
    )


def _audit(session: AsyncSession, principal: Principal, action: str, rule: AutomodRule) -> None:
    record_audit(
        session,
        action,
        actor_id=principal.user_id,
        actor_username=principal.user.username,
        target_type="automod_rule",
        target_id=rule.id,
        target_label=rule.name,
    )


@router.get("/api/admin/automod/rules", response_model=AutomodRuleList)
async def list_rules(principal: Admin, session: Session) -> AutomodRuleList:
    return AutomodRuleList(rules=[_rule_out(r) for r in await automod.list_rules(session)])


@router.post("/api/admin/automod/rules", response_model=AutomodRuleOut, status_code=201)
async def create_rule(body: AutomodRuleIn, principal: Admin, session: Session) -> AutomodRuleOut:
    config = automod.validate_config(body.kind, body.config)
    rule = AutomodRule(
        name=body.name,
        kind=body.kind,
        config=json.dumps(config),
        action=body.action,
        timeout_minutes=body.timeout_minutes,
        enabled=body.enabled,
        created_by=principal.user_id,
    )
    session.add(rule)
    await session.flush()
    _audit(session, principal, "automod_rule_created", rule)
    await session.commit()
    return _rule_out(rule)


@router.put("/api/admin/automod/rules/{rule_id}", response_model=AutomodRuleOut)
async def update_rule(rule_id: int, body: AutomodRuleUpdate, principal: Admin, session: Session) -> AutomodRuleOut:
    rule = await automod.get_rule(session, rule_id)
    changes = body.model_dump(exclude_none=True)
    if "config" in changes:
        changes["config"] = json.dumps(automod.validate_config(rule.kind, changes["config"]))
    for key, value in changes.items():
        setattr(rule, key, value)
    _audit(session, principal, "automod_rule_updated", rule)
    await session.commit()
    return _rule_out(rule)


@router.delete("/api/admin/automod/rules/{rule_id}", response_model=Success)
async def delete_rule(rule_id: int, principal: Admin, session: Session) -> Success:
    rule = await automod.get_rule(session, rule_id)
    _audit(session, principal, "automod_rule_deleted", rule)
    await session.delete(rule)
    await session.commit()
    return Success()
