"""Timeouts, mutes and channel bans, each written to the audit log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.activity.service import record_audit
from portal.chat.models import Channel, Sanction
from portal.core.db import utcnow
from portal.core.errors import BadRequest, Forbidden, NotFound


def _active() -> ColumnElement[bool]:
    return (Sanction.lifted_at.is_(None)) & (or_(Sanction.expires_at.is_(None), Sanction.expires_at > utcnow()))


async def check_may_send(session: AsyncSession, user_id: int, channel_id: int) -> None:
    """Refuse when a timeout, a mute (global or for this channel) or a ban for this channel is active."""
    rows = (
        await session.scalars(
            select(Sanction)
            .where(Sanction.user_id == user_id, _active())
            .where(or_(Sanction.channel_id.is_(None), Sanction.channel_id == channel_id))
        )
    ).all()
    for sanction in rows:
        if sanction.kind == "ban" and sanction.channel_id == channel_id:
            raise Forbidden("You are banned from this channel")
    for sanction in rows:
        until = f" until {sanction.expires_at.isoformat()}" if sanction.expires_at else ""
        if sanction.kind == "timeout":
            raise Forbidden(f"You are timed out{until}")
        if sanction.kind == "mute":
            raise Forbidden(f"You are muted{until}")


async def check_may_join(session: AsyncSession, user_id: int, channel_id: int) -> None:
    banned = await session.scalar(
        select(Sanction.id).where(
            Sanction.user_id == user_id, Sanction.kind == "ban", Sanction.channel_id == channel_id, _active()
        )
    )
    if banned is not None:
        raise Forbidden("You are banned from this channel")


async def do_sanction(
    session: AsyncSession,
    actor: Principal | None,
    *,
    user_id: int,
    kind: str,
    channel_id: int | None,
    minutes: int | None,
    reason: str,
    audit_action: str | None = None,
) -> Sanction:
    """Record a sanction; ``actor=None`` means the automod did it."""
    target = await accounts.get_user(session, user_id)
    if actor is not None:
        if target.id == actor.user_id:
            raise Forbidden("You cannot sanction yourself")
        if Role(target.role).at_least(Role.MODERATOR) and not actor.role.rank > Role(target.role).rank:
            raise Forbidden("You cannot sanction a user with an equal or higher role")
    if kind == "ban" and channel_id is None:
        raise BadRequest("A ban needs a channel_id", field="channel_id")
    if kind == "timeout" and minutes is None:
        raise BadRequest("A timeout needs duration_minutes", field="duration_minutes")
    if channel_id is not None and await session.get(Channel, channel_id) is None:
        raise NotFound("Channel not found")
    sanction = Sanction(
        user_id=user_id,
        kind=kind,
        channel_id=channel_id,
        reason=reason,
        created_by=actor.user_id if actor else None,
        expires_at=utcnow() + timedelta(minutes=minutes) if minutes else None,
    )
    session.add(sanction)
    await session.flush()
    record_audit(
        session,
        audit_action or f"user_{kind}",
        actor_id=actor.user_id if actor else None,
        actor_username=actor.user.username if actor else "automod",
        target_type="user",
        target_id=user_id,
        target_label=target.username,
        details={"sanction_id": sanction.id, "channel_id": channel_id, "minutes": minutes, "reason": reason},
    )
    await session.commit()
    return sanction


async def list_sanctions(session: AsyncSession, *, active_only: bool, user_id: int | None) -> list[Sanction]:
    stmt = select(Sanction).order_by(Sanction.id.desc()).limit(200)
    if active_only:
        stmt = stmt.where(_active())
    if user_id is not None:
        stmt = stmt.where(Sanction.user_id == user_id)
    return list((await session.scalars(stmt)).all())


async def do_lift(session: AsyncSession, actor: Principal, sanction_id: int) -> Sanction:
    sanction = await session.get(Sanction, sanction_id)
    if sanction is None:
        raise NotFound("Sanction not found")
    if sanction.lifted_at is None:
        sanction.lifted_at = utcnow()
        target = await session.get(accounts.User, sanction.user_id)
        record_audit(
            session,
            f"user_un{sanction.kind}",
            actor_id=actor.user_id,
            actor_username=actor.user.username,
            target_type="user",
            target_id=sanction.user_id,
            target_label=target.username if target else None,
            details={"sanction_id": sanction.id, "channel_id": sanction.channel_id},
        )
        await session.commit()
    return sanction


def is_active(sanction: Sanction) -> bool:
    return sanction.lifted_at is None and (sanction.expires_at is None or sanction.expires_at > utcnow())
