"""Messages: sending, history, replies, edits, deletion, reactions, pins, threads.

Bodies are stored encrypted; everything here returns the JSON shapes of the ``/ws/chat``
protocol, so REST and WebSocket speak the same language.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.accounts.models import User
from portal.accounts.principal import UserSnapshot
from portal.chat import polls
from portal.chat.models import Message, Pin, Poll, Reaction, ReadState
from portal.core.crypto import Keyring
from portal.core.db import utcnow
from portal.core.errors import BadRequest, Conflict, Forbidden, NotFound

EDIT_WINDOW = timedelta(minutes=5)
PREVIEW_CHARS = 100
MAX_PINS_PER_CHANNEL = 50
THREAD_DEPTH = 20
ANONYMOUS = "Anonymous"


def author_fields(user: User | UserSnapshot | None, username: str, anonymous: bool) -> dict[str, Any]:
    """How an author is shown: anonymous > nickname > username."""
    if anonymous:
        return {
            "user_id": None,
            "username": ANONYMOUS,
            "nickname": None,
            "role": "user",
            "anonymous": True,
            "avatar": None,
        }
    if user is None:
        return {
            "user_id": None,
            "username": username,
            "nickname": None,
            "role": "user",
            "anonymous": False,
            "avatar": None,
        }
    avatar = None
    if user.avatar_color or user.avatar_emoji or user.avatar_initials:
        avatar = {"color": user.avatar_color, "emoji": user.avatar_emoji, "initials": user.avatar_initials}
    role = user.role.value if hasattr(user.role, "value") else str(user.role)
    return {
        "user_id": user.id,
        "username": user.username,
        "nickname": user.nickname,
        "role": role,
        "anonymous": False,
        "avatar": avatar,
    }


BLOCKED_AUTHOR = "Blocked user"


def preview_of(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class MessageRenderer:
    """Turns rows into protocol dicts, decrypting each body once."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def text(self, message: Message) -> str:
        return self.keyring.decrypt(message.content_enc)

    def render(
        self,
        message: Message,
        author: User | UserSnapshot | None,
        *,
        channel_name: str,
        reply: Message | None = None,
        reactions: dict[str, list[str]] | None = None,
        pinned: bool = False,
        own: bool = False,
        blocked: Collection[int] = (),
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "id": message.id,
            "channel": channel_name,
            "channel_id": message.channel_id,
            **author_fields(author, message.username, message.anonymous),
            "message": self.text(message),
            "kind": message.kind,
            "image_url": message.image_url,
            "reply_to": message.reply_to,
            "created_at": message.created_at.isoformat(),
            "edited_at": message.edited_at.isoformat() if message.edited_at else None,
            "reactions": {e: {"count": len(u), "users": u} for e, u in (reactions or {}).items()},
            "pinned": pinned,
        }
        if own and message.anonymous:
            body["user_id"] = message.user_id
        if reply is not None and reply.user_id is not None and reply.user_id in blocked:
            body["reply_preview"] = {"id": reply.id, "username": BLOCKED_AUTHOR, "message": "", "blocked": True}
        elif reply is not None:
            body["reply_preview"] = {
                "id": reply.id,
                "username": ANONYMOUS if reply.anonymous else reply.username,
                "message": preview_of(self.text(reply)),
            }
        return body


async def get_message(session: AsyncSession, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise NotFound("Message not found")
    return message


async def do_store_message(
    session: AsyncSession,
    keyring: Keyring,
    *,
    channel_id: int,
    author: UserSnapshot,
    content: str,
    reply_to: int | None,
    image_url: str | None,
    kind: str = "text",
) -> tuple[Message, Message | None]:
    reply = None
    if reply_to is not None:
        reply = await session.get(Message, reply_to)
        if reply is None or reply.channel_id != channel_id:
            raise BadRequest("reply_to must be a message in the same channel", field="reply_to")
    message = Message(
        channel_id=channel_id,
        user_id=author.id,
        username=author.username,
        anonymous=author.anonymous,
        kind=kind,
        content_enc=keyring.encrypt(content),
        image_url=image_url,
        reply_to=reply_to,
    )
    session.add(message)
    await session.flush()
    return message, reply


async def reactions_for(session: AsyncSession, message_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    if not message_ids:
        return {}
    rows = await session.execute(
        select(Reaction.message_id, Reaction.emoji, Reaction.user_id)
        .where(Reaction.message_id.in_(message_ids))
        .order_by(Reaction.created_at)
    )
    raw = list(rows.all())
    users = await accounts.users_by_ids(session, {uid for _, _, uid in raw})
    result: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for mid, emoji, uid in raw:
        result[mid][emoji].append(users[uid].username if uid in users else "?")
    return result


async def render_many(
    session: AsyncSession,
    renderer: MessageRenderer,
    messages: list[Message],
    *,
    channel_name: str,
    viewer_id: int,
    blocked: Collection[int] = (),
) -> list[dict[str, Any]]:
    """Protocol dicts for a list of rows, with reactions, reply previews and pin flags; previews
    of messages by users the viewer blocked are masked."""
    ids = [m.id for m in messages]
    reply_ids = {m.reply_to for m in messages if m.reply_to}
    replies = {}
    if reply_ids:
        replies = {m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(reply_ids)))}
    authors = await accounts.users_by_ids(session, {m.user_id for m in messages if m.user_id})
    reactions = await reactions_for(session, ids)
    pinned = set(await session.scalars(select(Pin.message_id).where(Pin.message_id.in_(ids)))) if ids else set()
    poll_ids = [m.id for m in messages if m.kind == "poll"]
    poll_views: dict[int, dict[str, Any]] = {}
    if poll_ids:
        hidden = {m.id for m in messages if m.anonymous and m.user_id != viewer_id}
        for poll in await session.scalars(select(Poll).where(Poll.message_id.in_(poll_ids))):
            counts = await polls.tally(session, poll)
            poll_views[poll.message_id] = polls.render_poll(
                renderer.keyring, poll, counts, anonymous=poll.message_id in hidden
            )
    rendered = [
        renderer.render(
            m,
            authors.get(m.user_id) if m.user_id else None,
            channel_name=channel_name,
            reply=replies.get(m.reply_to) if m.reply_to else None,
            reactions=reactions.get(m.id),
            pinned=m.id in pinned,
            own=m.user_id == viewer_id,
            blocked=blocked,
        )
        for m in messages
    ]
    for item in rendered:
        if item["id"] in poll_views:
            item["poll"] = poll_views[item["id"]]
    return rendered


async def history(
    session: AsyncSession, channel_id: int, *, blocked: set[int], before_id: int | None = None, limit: int = 50
) -> list[Message]:
    """The newest ``limit`` messages (before ``before_id``), oldest first, without blocked authors."""
    stmt = select(Message).where(Message.channel_id == channel_id)
    if before_id is not None:
        stmt = stmt.where(Message.id < before_id)
    if blocked:
        stmt = stmt.where((Message.user_id.is_(None)) | (Message.user_id.not_in(blocked)))
    rows = list((await session.scalars(stmt.order_by(Message.id.desc()).limit(limit))).all())
    rows.reverse()
    return rows


async def pinned_messages(session: AsyncSession, renderer: MessageRenderer, channel_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Pin, Message)
        .join(Message, Message.id == Pin.message_id)
        .where(Pin.channel_id == channel_id)
        .order_by(Pin.pinned_at)
    )
    return [
        {
            "id": m.id,
            "username": ANONYMOUS if m.anonymous else m.username,
            "message": renderer.text(m),
            "pinned_by": p.pinned_by,
            "pinned_by_username": p.pinned_by_username,
            "pinned_at": p.pinned_at.isoformat(),
        }
        for p, m in rows.all()
    ]


async def do_edit(session: AsyncSession, keyring: Keyring, message: Message, user_id: int, text: str) -> datetime:
    if message.user_id != user_id:
        raise Forbidden("You can only edit your own messages")
    if message.kind != "text":
        raise BadRequest("This message cannot be edited")
    if utcnow() - message.created_at > EDIT_WINDOW:
        raise Forbidden("Messages can only be edited within 5 minutes")
    message.content_enc = keyring.encrypt(text)
    message.edited_at = utcnow()
    await session.commit()
    return message.edited_at


async def do_toggle_reaction(session: AsyncSession, message: Message, user_id: int, emoji: str) -> str:
    existing = await session.get(Reaction, (message.id, user_id, emoji))
    if existing is not None:
        await session.delete(existing)
        action = "remove"
    else:
        distinct = await session.scalar(
            select(func.count(func.distinct(Reaction.emoji))).where(Reaction.message_id == message.id)
        )
        if (distinct or 0) >= 20:
            raise Conflict("At most 20 different reactions per message")
        session.add(Reaction(message_id=message.id, user_id=user_id, emoji=emoji))
        action = "add"
    await session.commit()
    return action


async def do_pin(session: AsyncSession, message: Message, user: UserSnapshot) -> Pin:
    if await session.get(Pin, message.id) is not None:
        raise Conflict("Message is already pinned")
    count = await session.scalar(select(func.count()).select_from(Pin).where(Pin.channel_id == message.channel_id))
    if (count or 0) >= MAX_PINS_PER_CHANNEL:
        raise Conflict(f"At most {MAX_PINS_PER_CHANNEL} pinned messages per channel")
    pin = Pin(message_id=message.id, channel_id=message.channel_id, pinned_by=user.id, pinned_by_username=user.username)
    session.add(pin)
    await session.commit()
    return pin


async def do_unpin(session: AsyncSession, message: Message) -> None:
    result = await session.execute(delete(Pin).where(Pin.message_id == message.id))
    if not getattr(result, "rowcount", 0):
        raise NotFound("Message is not pinned")
    await session.commit()


async def do_mark_read(session: AsyncSession, user_id: int, message: Message) -> None:
    state = await session.get(ReadState, (message.channel_id, user_id))
    if state is None:
        session.add(ReadState(channel_id=message.channel_id, user_id=user_id, last_read_id=message.id))
    elif message.id > state.last_read_id:
        state.last_read_id = message.id
    await session.commit()


async def thread(session: AsyncSession, message: Message) -> list[Message]:
    """The reply chain ending at ``message``, oldest first, at most 20 deep."""
    chain = [message]
    seen = {message.id}
    current = message
    while current.reply_to and len(chain) < THREAD_DEPTH:
        parent = await session.get(Message, current.reply_to)
        if parent is None or parent.id in seen:
            break
        chain.append(parent)
        seen.add(parent.id)
        current = parent
    chain.reverse()
    return chain
