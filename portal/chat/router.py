"""Chat REST routes: channels, members, threads and user search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.activity.service import record_audit
from portal.blocks import service as blocks
from portal.chat import channels as chans
from portal.chat import messages as msgs
from portal.chat.models import Channel, ChannelMember
from portal.chat.schemas import (
    ChannelCreate,
    ChannelList,
    ChannelOut,
    ChannelUpdate,
    MemberAdd,
    MemberList,
    MemberOut,
    MemberRole,
    Success,
    UserHit,
    UserSearch,
)
from portal.chat.service import Chat
from portal.core.db import get_session
from portal.core.errors import BadRequest, Conflict, Forbidden

router = APIRouter(tags=["chat"])
Session = Annotated[AsyncSession, Depends(get_session)]
Reader = Annotated[Principal, Depends(require_scope("chat:read"))]
Writer = Annotated[Principal, Depends(require_scope("chat:write"))]


def chat_of(request: Request) -> Chat:
    chat: Chat = request.app.state.chat
    return chat


def channel_out(channel: Channel, unread: int = 0) -> ChannelOut:
    return ChannelOut.model_validate(
        {**{c: getattr(channel, c) for c in ChannelOut.model_fields if c != "unread_count"}, "unread_count": unread}
    )


@router.get("/api/chat/channels", response_model=ChannelList)
async def list_channels(principal: Reader, session: Session) -> ChannelList:
    """Channels the caller can see, with their unread counts."""
    rows = await chans.list_channels(session, principal)
    return ChannelList(channels=[channel_out(c, n) for c, n in rows])


@router.post("/api/chat/channels", response_model=ChannelOut, status_code=201)
async def create_channel(body: ChannelCreate, request: Request, principal: Writer, session: Session) -> ChannelOut:
    channel = await chans.check_create_channel(
        session,
        principal,
        name=body.name,
        description=body.description,
        topic=body.topic,
        visibility=body.visibility,
        mode=body.mode,
    )
    if channel.visibility == "public":
        await chat_of(request).realtime.to_everyone(
            {"type": "channel_created", "channel": channel_out(channel).model_dump(mode="json")}
        )
    return channel_out(channel)


@router.put("/api/chat/channels/{channel_id}", response_model=ChannelOut)
async def update_channel(
    channel_id: int,
    body: ChannelUpdate,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("chat:write", Role.ADMIN))],
    session: Session,
) -> ChannelOut:
    access = await chans.access_channel_by_id(session, principal, channel_id)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise BadRequest("Nothing to change")
    was_public = access.channel.visibility == "public"
    old_name = await chans.check_update_channel(session, access.channel, changes)
    record_audit(
        session,
        "channel_updated",
        actor_id=principal.user_id,
        actor_username=principal.user.username,
        target_type="channel",
        target_id=channel_id,
        target_label=access.channel.name,
        details=changes,
    )
    await session.commit()
    chat = chat_of(request)
    if old_name:
        audience = await chans.audience(session, access.channel)
        await chat.announce_channel_renamed(access.channel, old_name, audience)
    if was_public and access.channel.visibility == "private":
        present = await chat.realtime.online_in(channel_id)
        for user_id in await chans.outsiders(session, access.channel, present):
            await chat.announce_access_lost(user_id, channel_id, access.channel.name)
    return channel_out(access.channel)


@router.delete("/api/chat/channels/{channel_id}", response_model=Success)
async def delete_channel(
    channel_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("chat:write", Role.ADMIN))],
    session: Session,
) -> Success:
    access = await chans.access_channel_by_id(session, principal, channel_id)
    name = access.channel.name
    record_audit(
        session,
        "channel_deleted",
        actor_id=principal.user_id,
        actor_username=principal.user.username,
        target_type="channel",
        target_id=channel_id,
        target_label=name,
    )
    audience = await chans.audience(session, access.channel)
    await chans.do_delete_channel(session, access.channel)
    await chat_of(request).announce_channel_deleted(channel_id, name, audience)
    return Success()


@router.post("/api/chat/channels/{channel_id}/clear", response_model=Success)
async def clear_channel(
    channel_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("chat:write", Role.SUPERADMIN))],
    session: Session,
) -> Success:
    access = await chans.access_channel_by_id(session, principal, channel_id)
    record_audit(
        session,
        "channel_cleared",
        actor_id=principal.user_id,
        actor_username=principal.user.username,
        target_type="channel",
        target_id=channel_id,
        target_label=access.channel.name,
    )
    await chans.do_clear_channel(session, access.channel)
    await chat_of(request).announce_channel_cleared(channel_id, access.channel.name)
    return Success()


def _audit_member(
    session: AsyncSession, principal: Principal, action: str, user_id: int, details: dict[str, object]
) -> None:
    record_audit(
        session,
        action,
        actor_id=principal.user_id,
        actor_username=principal.user.username,
        target_type="user",
        target_id=user_id,
        details=details,
    )


# -- members --------------------------------------------------------------------------------------
@router.get("/api/chat/channels/{channel_id}/members", response_model=MemberList)
async def list_members(channel_id: int, principal: Reader, session: Session) -> MemberList:
    access = await chans.access_channel_by_id(session, principal, channel_id)
    if access.member_role is None and not chans.is_global_moderator(principal):
        raise Forbidden("Only members and moderators can see the member list")
    rows = await chans.list_members(session, channel_id)
    return MemberList(
        members=[MemberOut(user_id=m.user_id, username=name, role=m.role, added_at=m.added_at) for m, name in rows]
    )


@router.post("/api/chat/channels/{channel_id}/members", response_model=Success, status_code=201)
async def add_member(channel_id: int, body: MemberAdd, principal: Writer, session: Session) -> Success:
    access = await chans.access_channel_by_id(session, principal, channel_id)
    if not chans.can_manage_members(principal, access):
        raise Forbidden("Only admins, the channel's creator or its moderators can add members")
    if body.role == "moderator" and not (
        principal.role.at_least(Role.ADMIN) or access.channel.created_by == principal.user_id
    ):
        raise Forbidden("Only admins or the channel's creator can appoint channel moderators")
    await accounts.get_user(session, body.user_id)
    if await session.get(ChannelMember, (channel_id, body.user_id)) is not None:
        raise Conflict("Already a member")
    session.add(ChannelMember(channel_id=channel_id, user_id=body.user_id, role=body.role, added_by=principal.user_id))
    _audit_member(
        session, principal, "channel_member_added", body.user_id, {"channel_id": channel_id, "role": body.role}
    )
    await session.commit()
    return Success()


@router.put("/api/chat/channels/{channel_id}/members/{user_id}", response_model=Success)
async def change_member_role(
    channel_id: int, user_id: int, body: MemberRole, principal: Writer, session: Session
) -> Success:
    access = await chans.access_channel_by_id(session, principal, channel_id)
    if not (principal.role.at_least(Role.ADMIN) or access.channel.created_by == principal.user_id):
        raise Forbidden("Only admins or the channel's creator can change member roles")
    member = await chans.get_member(session, channel_id, user_id)
    member.role = body.role
    _audit_member(session, principal, "channel_member_role", user_id, {"channel_id": channel_id, "role": body.role})
    await session.commit()
    return Success()


@router.delete("/api/chat/channels/{channel_id}/members/{user_id}", response_model=Success)
async def remove_member(
    channel_id: int, user_id: int, request: Request, principal: Writer, session: Session
) -> Success:
    access = await chans.access_channel_by_id(session, principal, channel_id)
    if not chans.can_manage_members(principal, access):
        raise Forbidden("Only admins, the channel's creator or its moderators can remove members")
    member = await chans.get_member(session, channel_id, user_id)
    is_manager = principal.role.at_least(Role.ADMIN) or access.channel.created_by == principal.user_id
    if member.role == "moderator" and not is_manager:
        raise Forbidden("Channel moderators cannot remove other channel moderators")
    if user_id == access.channel.created_by and not principal.role.at_least(Role.ADMIN):
        raise Forbidden("The channel's creator cannot be removed")
    await session.delete(member)
    _audit_member(session, principal, "channel_member_removed", user_id, {"channel_id": channel_id})
    await session.commit()
    if access.channel.visibility == "private":
        await chat_of(request).announce_access_lost(user_id, channel_id, access.channel.name)
    return Success()


# -- threads and people ---------------------------------------------------------------------------
@router.get("/api/chat/thread/{message_id}")
async def get_thread(message_id: int, request: Request, principal: Reader, session: Session) -> dict[str, object]:
    """The reply chain ending at the message, oldest first (at most 20)."""
    message = await msgs.get_message(session, message_id)
    access = await chans.access_channel_by_id(session, principal, message.channel_id)
    blocked = await blocks.blocked_ids(session, principal.user_id)
    chain = [m for m in await msgs.thread(session, message) if m.user_id is None or m.user_id not in blocked]
    rendered = await msgs.render_many(
        session,
        chat_of(request).renderer,
        chain,
        channel_name=access.channel.name,
        viewer_id=principal.user_id,
        blocked=blocked,
    )
    return {"messages": rendered}


@router.get("/api/chat/users/search", response_model=UserSearch)
async def search_users(
    principal: Reader, session: Session, q: Annotated[str, Query(min_length=1, max_length=32)]
) -> UserSearch:
    users = await accounts.search_users(session, q.strip(), limit=20)
    return UserSearch(users=[UserHit(id=u.id, username=u.username, nickname=u.nickname) for u in users])
