"""Channels and their members: who may see, join, send in and manage a channel."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.blocks import service as blocks
from portal.chat.models import Channel, ChannelMember, Message, ReadState
from portal.core.errors import BadRequest, Conflict, Forbidden, NotFound

DEFAULT_CHANNEL = "general"
MAX_CHANNELS_PER_USER = 20


@dataclass(frozen=True)
class ChannelAccess:
    channel: Channel
    member_role: str | None  # "member" | "moderator" | None

    @property
    def is_channel_moderator(self) -> bool:
        return self.member_role == "moderator"


def is_global_moderator(principal: Principal) -> bool:
    return principal.role.at_least(Role.MODERATOR)


async def ensure_default_channel(session: AsyncSession) -> None:
    if await session.scalar(select(Channel.id).where(Channel.is_default.is_(True))) is not None:
        return
    session.add(Channel(name=DEFAULT_CHANNEL, description="General discussion", is_default=True))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()  # another process made it


async def _membership(session: AsyncSession, channel_id: int, user_id: int) -> str | None:
    return await session.scalar(
        select(ChannelMember.role).where(ChannelMember.channel_id == channel_id, ChannelMember.user_id == user_id)
    )


async def access_channel(session: AsyncSession, principal: Principal, channel: Channel | None) -> ChannelAccess:
    """The channel if the caller may see it: public, a member, or admin. Private ones look missing."""
    if channel is None:
        raise NotFound("Channel not found")
    role = await _membership(session, channel.id, principal.user_id)
    if channel.visibility == "private" and role is None and not principal.role.at_least(Role.ADMIN):
        raise NotFound("Channel not found")
    return ChannelAccess(channel, role)


async def access_channel_by_id(session: AsyncSession, principal: Principal, channel_id: int) -> ChannelAccess:
    return await access_channel(session, principal, await session.get(Channel, channel_id))


async def access_channel_by_name(session: AsyncSession, principal: Principal, name: str) -> ChannelAccess:
    channel = await session.scalar(select(Channel).where(Channel.name == name.strip().lower()))
    return await access_channel(session, principal, channel)


def can_moderate(principal: Principal, access: ChannelAccess) -> bool:
    return is_global_moderator(principal) or access.is_channel_moderator


def can_manage_members(principal: Principal, access: ChannelAccess) -> bool:
    return (
        principal.role.at_least(Role.ADMIN)
        or access.channel.created_by == principal.user_id
        or access.is_channel_moderator
    )


async def list_channels(session: AsyncSession, principal: Principal) -> list[tuple[Channel, int]]:
    """Visible channels with the caller's unread count (messages after their last read by others, not
    counting authors they blocked: those messages are never shown to them)."""
    member_ids = select(ChannelMember.channel_id).where(ChannelMember.user_id == principal.user_id)
    stmt = select(Channel).order_by(Channel.is_default.desc(), Channel.name)
    if not principal.role.at_least(Role.ADMIN):
        stmt = stmt.where(or_(Channel.visibility == "public", Channel.id.in_(member_ids)))
    channels = list((await session.scalars(stmt.limit(500))).all())
    hidden = {principal.user_id} | await blocks.blocked_ids(session, principal.user_id)  # own and blocked authors
    unread_stmt = (
        select(Message.channel_id, func.count(Message.id))
        .outerjoin(ReadState, and_(ReadState.channel_id == Message.channel_id, ReadState.user_id == principal.user_id))
        .where(
            Message.id > func.coalesce(ReadState.last_read_id, 0),
            or_(Message.user_id.is_(None), Message.user_id.not_in(hidden)),
        )
        .group_by(Message.channel_id)
    )
    unread = {cid: n for cid, n in (await session.execute(unread_stmt)).all()}
    return [(c, int(unread.get(c.id, 0))) for c in channels]


async def check_create_channel(
    session: AsyncSession, principal: Principal, *, name: str, description: str, topic: str, visibility: str, mode: str
) -> Channel:
    if not principal.role.at_least(Role.ADMIN):
        owned = await session.scalar(
            select(func.count()).select_from(Channel).where(Channel.created_by == principal.user_id)
        )
        if (owned or 0) >= MAX_CHANNELS_PER_USER:
            raise Conflict(f"At most {MAX_CHANNELS_PER_USER} channels per user")
        if mode == "readonly" and not is_global_moderator(principal):
            raise Forbidden("Only moderators can create read-only channels")
    if await session.scalar(select(Channel.id).where(Channel.name == name)) is not None:
        raise Conflict("A channel with that name exists", field="name")
    channel = Channel(
        name=name, description=description, topic=topic, visibility=visibility, mode=mode, created_by=principal.user_id
    )
    session.add(channel)
    await session.flush()
    session.add(
        ChannelMember(channel_id=channel.id, user_id=principal.user_id, role="moderator", added_by=principal.user_id)
    )
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("A channel with that name exists", field="name") from exc
    return channel


async def check_update_channel(session: AsyncSession, channel: Channel, changes: dict[str, object]) -> str | None:
    """Apply changes; returns the old name when the channel was renamed."""
    old_name = channel.name
    new_name = changes.get("name")
    if new_name and new_name != old_name:
        if channel.is_default:
            raise BadRequest("The default channel cannot be renamed", field="name")
        if await session.scalar(select(Channel.id).where(Channel.name == new_name)) is not None:
            raise Conflict("A channel with that name exists", field="name")
    if channel.is_default and changes.get("visibility") == "private":
        raise BadRequest("The default channel stays public", field="visibility")
    for key, value in changes.items():
        setattr(channel, key, value)
    await session.commit()
    return old_name if new_name and new_name != old_name else None


async def do_delete_channel(session: AsyncSession, channel: Channel) -> None:
    if channel.is_default:
        raise BadRequest("The default channel cannot be deleted")
    await session.delete(channel)
    await session.commit()


async def do_clear_channel(session: AsyncSession, channel: Channel) -> int:
    result = await session.execute(delete(Message).where(Message.channel_id == channel.id))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def audience(session: AsyncSession, channel: Channel) -> set[int] | None:
    """Who may hear about a change to the channel: everyone (None) if public, else its members."""
    if channel.visibility == "public":
        return None
    stmt = select(ChannelMember.user_id).where(ChannelMember.channel_id == channel.id)
    return set((await session.scalars(stmt)).all())


async def outsiders(session: AsyncSession, channel: Channel, user_ids: set[int]) -> set[int]:
    """Those of ``user_ids`` who may not see the channel (neither members nor admins)."""
    members = await audience(session, channel)
    if members is None:
        return set()
    users = await accounts.users_by_ids(session, user_ids - members)
    return {uid for uid, user in users.items() if not Role(user.role).at_least(Role.ADMIN)}


async def list_members(session: AsyncSession, channel_id: int) -> list[tuple[ChannelMember, str]]:
    stmt = select(ChannelMember).where(ChannelMember.channel_id == channel_id).order_by(ChannelMember.added_at)
    members = list((await session.scalars(stmt.limit(1000))).all())
    users = await accounts.users_by_ids(session, {m.user_id for m in members})
    return [(m, users[m.user_id].username) for m in members if m.user_id in users]


async def get_member(session: AsyncSession, channel_id: int, user_id: int) -> ChannelMember:
    member = await session.get(ChannelMember, (channel_id, user_id))
    if member is None:
        raise NotFound("Not a member of this channel")
    return member
