"""``/ws/chat``: the chat protocol of the seed, one handler per client message type."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.authn import AuthFailure
from portal.accounts.deps import WS_UNAUTHORIZED, websocket_principal
from portal.accounts.principal import Principal
from portal.blocks import service as blocks
from portal.chat import channels as chans
from portal.chat import messages as msgs
from portal.chat import moderation
from portal.chat.realtime import ChatSocket
from portal.chat.schemas import (
    CreatePollFrame,
    EditFrame,
    HistoryFrame,
    JoinFrame,
    MessageFrame,
    MessageIdFrame,
    PingFrame,
    PollIdFrame,
    ReactFrame,
    TypingFrame,
    UserFrame,
    VotePollFrame,
)
from portal.chat.service import Chat
from portal.core.errors import NotFound
from portal.core.ws import CLOSE_TOO_MANY, FrameError, HandlerTable, Outbox

router = APIRouter()
table: HandlerTable[ChatCtx] = HandlerTable(max_frame_chars=64 * 1024)
MAX_JOINED = 50
MAX_USERS_LISTED = 200
TYPING_INTERVAL = 2.0


@dataclass
class ChatCtx:
    chat: Chat
    principal: Principal
    sock: ChatSocket
    typing_sent: dict[int, float] = field(default_factory=dict)
    silent: set[int] = field(default_factory=set)  # joined channels the user may not post in

    def reply(self, obj: dict[str, Any]) -> None:
        self.sock.outbox.send(obj)

    def session(self) -> AsyncSession:
        return self.chat.db.sessions()

    def joined_id(self, name: str) -> int:
        for cid, cname in self.sock.channels.items():
            if cname == name.strip().lower():
                return cid
        raise FrameError("Join the channel first", channel=name)


@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket) -> None:
    principal = await websocket_principal(websocket)
    if principal is None:
        return
    app = websocket.app
    chat: Chat = app.state.chat
    slots = app.state.ws_slots
    await websocket.accept()
    if not await slots.acquire(principal.user_id):
        await websocket.send_json({"type": "error", "message": f"At most {slots.limit} connections per user"})
        await websocket.close(CLOSE_TOO_MANY, "too many connections")
        return
    outbox = Outbox(websocket, max_pending=app.state.settings.ws_max_pending)
    sock = ChatSocket(principal.user_id, principal.user.username, outbox)
    ctx = ChatCtx(chat, principal, sock)
    try:
        async with chat.db.sessions() as session:
            sock.blocked = await blocks.blocked_ids(session, principal.user_id)
        outbox.start()
        await chat.realtime.connect(sock)
        ctx.reply(
            {
                "type": "connected",
                "user_id": principal.user_id,
                "username": principal.user.username,
                "display_name": principal.user.display_name,
                "role": principal.role.value,
            }
        )
        while not outbox.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                ctx.reply({"type": "error", "message": "Binary frames are not supported; send JSON text"})
                continue
            if not await _refresh_principal(ctx, websocket):
                break
            await table.dispatch(ctx, raw, ctx.reply)
    except WebSocketDisconnect:
        pass
    finally:
        names = dict(sock.channels)
        left = await chat.realtime.disconnect(sock)
        for channel_id in left:
            await chat.realtime.to_channel(channel_id, _user_left(ctx, channel_id, names[channel_id]))
        await slots.release(principal.user_id)
        await outbox.stop()


async def _refresh_principal(ctx: ChatCtx, websocket: WebSocket) -> bool:
    """Resolve the caller again for each frame (cached; cheap unless the user changed), so
    anonymity, nickname and role changes apply to open sockets and a revoked token ends them."""
    fresh = await websocket.app.state.authn.resolve(websocket.scope)
    if isinstance(fresh, Principal):
        ctx.principal = fresh
        return True
    reason = fresh.message if isinstance(fresh, AuthFailure) else "authentication required"
    ctx.sock.outbox.close(WS_UNAUTHORIZED, reason)
    return False


def _display(principal: Principal) -> dict[str, Any]:
    user = principal.user
    if user.anonymous:
        return {"user_id": None, "username": msgs.ANONYMOUS, "role": "user", "anonymous": True}
    return {"user_id": user.id, "username": user.username, "role": user.role.value, "anonymous": False}


def _user_left(ctx: ChatCtx, channel_id: int, name: str) -> dict[str, Any]:
    return {"type": "user_left", "channel": name, "channel_id": channel_id, **_display(ctx.principal)}


async def _message_and_access(
    ctx: ChatCtx, session: AsyncSession, message_id: int
) -> tuple[msgs.Message, chans.ChannelAccess]:
    message = await msgs.get_message(session, message_id)
    access = await chans.access_channel_by_id(session, ctx.principal, message.channel_id)
    if message.channel_id not in ctx.sock.channels:
        raise FrameError("Join the channel first")
    return message, access


# -- channels -------------------------------------------------------------------------------------
@table.handler("join", JoinFrame)
async def on_join(ctx: ChatCtx, frame: JoinFrame) -> None:
    async with ctx.session() as session:
        access = await chans.access_channel_by_name(session, ctx.principal, frame.channel)
        await moderation.check_may_join(session, ctx.principal.user_id, access.channel.id)
        channel = access.channel
        if channel.id not in ctx.sock.channels and len(ctx.sock.channels) >= MAX_JOINED:
            raise FrameError(f"At most {MAX_JOINED} channels joined at once")
        first = await ctx.chat.realtime.join(ctx.sock, channel.id, channel.name)
        can_send = channel.mode == "open" or chans.can_moderate(ctx.principal, access)
        (ctx.silent.discard if can_send else ctx.silent.add)(channel.id)
        ctx.reply(
            {
                "type": "channel_info",
                "id": channel.id,
                "name": channel.name,
                "description": channel.description,
                "topic": channel.topic,
                "visibility": channel.visibility,
                "mode": channel.mode,
                "is_default": channel.is_default,
                "can_moderate": chans.can_moderate(ctx.principal, access),
                "can_send": can_send,
            }
        )
        await _send_history(ctx, session, channel.id, channel.name, None, 50)
        renderer = ctx.chat.renderer
        ctx.reply(
            {
                "type": "pinned_messages",
                "channel": channel.name,
                "channel_id": channel.id,
                "messages": await msgs.pinned_messages(session, renderer, channel.id),
            }
        )
        ctx.reply(await _users_frame(ctx, session, channel.id, channel.name))
    if first:
        await ctx.chat.realtime.to_channel(
            channel.id,
            {"type": "user_joined", "channel": channel.name, "channel_id": channel.id, **_display(ctx.principal)},
        )


async def _send_history(
    ctx: ChatCtx, session: AsyncSession, channel_id: int, name: str, before_id: int | None, limit: int
) -> None:
    rows = await msgs.history(session, channel_id, blocked=ctx.sock.blocked, before_id=before_id, limit=limit)
    rendered = await msgs.render_many(
        session, ctx.chat.renderer, rows, channel_name=name, viewer_id=ctx.principal.user_id, blocked=ctx.sock.blocked
    )
    ctx.reply(
        {
            "type": "history",
            "channel": name,
            "channel_id": channel_id,
            "messages": rendered,
            "has_more": len(rows) == limit,
        }
    )


async def _users_frame(ctx: ChatCtx, session: AsyncSession, channel_id: int, name: str) -> dict[str, Any]:
    from portal.accounts import service as accounts

    online = sorted(await ctx.chat.realtime.online_in(channel_id))
    users = await accounts.users_by_ids(session, online[:MAX_USERS_LISTED])
    listed = []
    for uid in online[:MAX_USERS_LISTED]:
        user = users.get(uid)
        if user is None:
            continue
        author = msgs.author_fields(user, user.username, user.anonymous)
        listed.append(author)
    return {"type": "users", "channel": name, "channel_id": channel_id, "users": listed, "total": len(online)}


@table.handler("leave", JoinFrame)
async def on_leave(ctx: ChatCtx, frame: JoinFrame) -> None:
    channel_id = ctx.joined_id(frame.channel)
    name = ctx.sock.channels[channel_id]
    if await ctx.chat.realtime.leave(ctx.sock, channel_id):
        await ctx.chat.realtime.to_channel(channel_id, _user_left(ctx, channel_id, name))
    ctx.reply({"type": "left", "channel": frame.channel, "channel_id": channel_id})


@table.handler("history", HistoryFrame)
async def on_history(ctx: ChatCtx, frame: HistoryFrame) -> None:
    channel_id = ctx.joined_id(frame.channel)
    async with ctx.session() as session:
        await _send_history(ctx, session, channel_id, ctx.sock.channels[channel_id], frame.before_id, frame.limit)


# -- messages -------------------------------------------------------------------------------------
@table.handler("message", MessageFrame)
async def on_message(ctx: ChatCtx, frame: MessageFrame) -> None:
    channel_id = ctx.joined_id(frame.channel)
    async with ctx.session() as session:
        access = await chans.access_channel_by_id(session, ctx.principal, channel_id)
        await ctx.chat.send_message(session, ctx.principal, access, frame.message, frame.reply_to, frame.image_url)


@table.handler("delete", MessageIdFrame)
async def on_delete(ctx: ChatCtx, frame: MessageIdFrame) -> None:
    async with ctx.session() as session:
        message, access = await _message_and_access(ctx, session, frame.message_id)
        await ctx.chat.delete(session, ctx.principal, access, message)


@table.handler("react", ReactFrame)
async def on_react(ctx: ChatCtx, frame: ReactFrame) -> None:
    async with ctx.session() as session:
        message, _ = await _message_and_access(ctx, session, frame.message_id)
        await ctx.chat.react(session, ctx.principal, message, frame.emoji)


@table.handler("edit_message", EditFrame)
async def on_edit(ctx: ChatCtx, frame: EditFrame) -> None:
    async with ctx.session() as session:
        message, access = await _message_and_access(ctx, session, frame.message_id)
        await ctx.chat.edit(session, ctx.principal, access, message, frame.message)


@table.handler("pin_message", MessageIdFrame)
async def on_pin(ctx: ChatCtx, frame: MessageIdFrame) -> None:
    async with ctx.session() as session:
        message, access = await _message_and_access(ctx, session, frame.message_id)
        await ctx.chat.pin(session, ctx.principal, access, message)


@table.handler("unpin_message", MessageIdFrame)
async def on_unpin(ctx: ChatCtx, frame: MessageIdFrame) -> None:
    async with ctx.session() as session:
        message, access = await _message_and_access(ctx, session, frame.message_id)
        await ctx.chat.unpin(session, ctx.principal, access, message)


@table.handler("mark_read", MessageIdFrame)
async def on_mark_read(ctx: ChatCtx, frame: MessageIdFrame) -> None:
    async with ctx.session() as session:
        message, _ = await _message_and_access(ctx, session, frame.message_id)
        await msgs.do_mark_read(session, ctx.principal.user_id, message)
    ctx.reply({"type": "marked_read", "channel_id": message.channel_id, "message_id": message.id})


@table.handler("typing", TypingFrame)
async def on_typing(ctx: ChatCtx, frame: TypingFrame) -> None:
    channel_id = ctx.joined_id(frame.channel)
    if channel_id in ctx.silent:
        raise FrameError("This channel is read-only", channel=frame.channel)
    now = time.monotonic()
    if now - ctx.typing_sent.get(channel_id, 0.0) < TYPING_INTERVAL:
        return
    ctx.typing_sent[channel_id] = now
    display = _display(ctx.principal)
    name = msgs.ANONYMOUS if ctx.principal.user.anonymous else ctx.principal.user.display_name
    await ctx.chat.realtime.to_channel(
        channel_id,
        {
            "type": "typing",
            "channel": ctx.sock.channels[channel_id],
            "channel_id": channel_id,
            **display,
            "display_name": name,
        },
        sender=ctx.principal.user_id,
    )


@table.handler("ping", PingFrame)
async def on_ping(ctx: ChatCtx, frame: PingFrame) -> None:
    ctx.reply({"type": "pong"})


# -- blocking -------------------------------------------------------------------------------------
@table.handler("block_user", UserFrame)
async def on_block(ctx: ChatCtx, frame: UserFrame) -> None:
    async with ctx.session() as session:
        target = await blocks.check_block(session, ctx.principal.user_id, frame.user_id)
    ctx.sock.blocked.add(target.id)
    ctx.reply({"type": "user_blocked", "user_id": target.id, "username": target.username})
    await ctx.chat.announce_blocks_changed(ctx.principal.user_id)


@table.handler("unblock_user", UserFrame)
async def on_unblock(ctx: ChatCtx, frame: UserFrame) -> None:
    async with ctx.session() as session:
        target = await blocks.do_unblock(session, ctx.principal.user_id, frame.user_id)
    ctx.sock.blocked.discard(target.id)
    ctx.reply({"type": "user_unblocked", "user_id": target.id, "username": target.username})
    await ctx.chat.announce_blocks_changed(ctx.principal.user_id)


# -- polls ----------------------------------------------------------------------------------------
@table.handler("create_poll", CreatePollFrame)
async def on_create_poll(ctx: ChatCtx, frame: CreatePollFrame) -> None:
    channel_id = ctx.joined_id(frame.channel)
    async with ctx.session() as session:
        access = await chans.access_channel_by_id(session, ctx.principal, channel_id)
        await ctx.chat.create_poll(
            session,
            ctx.principal,
            access,
            question=frame.question,
            options=frame.options,
            allow_multiple=frame.allow_multiple,
            anonymous_votes=frame.anonymous_votes,
            duration=frame.duration,
        )


async def _poll_access(ctx: ChatCtx, session: AsyncSession, poll_id: int) -> chans.ChannelAccess:
    from portal.chat import polls

    poll = await polls.get_poll(session, poll_id)
    if poll.channel_id not in ctx.sock.channels:
        raise NotFound("Poll not found")
    return await chans.access_channel_by_id(session, ctx.principal, poll.channel_id)


@table.handler("vote_poll", VotePollFrame)
async def on_vote(ctx: ChatCtx, frame: VotePollFrame) -> None:
    async with ctx.session() as session:
        await _poll_access(ctx, session, frame.poll_id)
        await ctx.chat.vote(session, ctx.principal, frame.poll_id, frame.option_index)


@table.handler("close_poll", PollIdFrame)
async def on_close_poll(ctx: ChatCtx, frame: PollIdFrame) -> None:
    async with ctx.session() as session:
        access = await _poll_access(ctx, session, frame.poll_id)
        await ctx.chat.close_poll(session, ctx.principal, access, frame.poll_id)


async def on_internal_event(chat: Chat, sock: ChatSocket, event: dict[str, Any]) -> None:
    """Events addressed to the server side of sockets (block lists, renames, lost access)."""
    kind = event.get("type")
    if kind == "_blocks_changed":
        async with chat.db.sessions() as session:
            sock.blocked = await blocks.blocked_ids(session, sock.user_id)
        return
    channel_id = event.get("channel_id")
    joined = False
    if isinstance(channel_id, int) and channel_id in sock.channels:
        joined = True
        if kind == "_channel_renamed":
            sock.channels[channel_id] = str(event["name"])
        elif kind == "_channel_gone":
            await chat.realtime.leave(sock, channel_id)
    deliver = event.get("deliver")
    audience = event.get("audience")
    if deliver and (joined or audience is None or sock.user_id in audience):
        sock.outbox.send(deliver)
