"""The chat's actions: each checks permissions, changes the database, commits, then publishes.

Used by the ``/ws/chat`` handlers and the REST routes alike. Events go out only after the
commit succeeded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.principal import Principal
from portal.activity.service import record_audit
from portal.chat import automod, moderation, polls
from portal.chat import messages as msgs
from portal.chat.channels import ChannelAccess, can_moderate, is_global_moderator
from portal.chat.models import Channel, Message
from portal.chat.realtime import ChatRealtime
from portal.core.crypto import Keyring
from portal.core.db import Database, utcnow
from portal.core.errors import BadRequest, Forbidden, TooManyRequests
from portal.core.ratelimit import RateLimiter

UPLOAD_URL = re.compile(r"^/static/uploads/chat/([0-9a-f]{32}\.(?:jpg|png|gif|webp))$")
SLOW_DOWN = "Slow down! You're sending messages too fast."


@dataclass
class Chat:
    db: Database
    keyring: Keyring
    realtime: ChatRealtime
    limiter: RateLimiter
    message_rate: str
    uploads_dir: Path
    retention_days: float

    @property
    def renderer(self) -> msgs.MessageRenderer:
        return msgs.MessageRenderer(self.keyring)

    # -- sending -------------------------------------------------------------------------------
    async def _check_can_post(self, session: AsyncSession, principal: Principal, access: ChannelAccess) -> None:
        if access.channel.mode == "readonly" and not can_moderate(principal, access):
            raise Forbidden("This channel is read-only")
        await moderation.check_may_send(session, principal.user_id, access.channel.id)
        state = await self.limiter.hit(self.message_rate, f"chatmsg:{principal.user_id}")
        if not state.allowed:
            raise TooManyRequests(SLOW_DOWN, retry_after=state.retry_after)

    async def _automod(self, session: AsyncSession, principal: Principal, access: ChannelAccess, text: str) -> None:
        if is_global_moderator(principal) or not text:
            return
        hit = await automod.evaluate(session, text)
        if hit is None:
            return
        record_audit(
            session,
            "automod_triggered",
            actor_id=None,
            actor_username="automod",
            target_type="user",
            target_id=principal.user_id,
            target_label=principal.user.username,
            details={
                "rule_id": hit.rule.id,
                "rule": hit.rule.name,
                "reason": hit.reason,
                "action": hit.rule.action,
                "channel_id": access.channel.id,
            },
        )
        if hit.rule.action == "timeout":
            await moderation.do_sanction(
                session,
                None,
                user_id=principal.user_id,
                kind="timeout",
                channel_id=None,
                minutes=hit.rule.timeout_minutes,
                reason=f"automod: {hit.rule.name}",
                audit_action="user_timeout",
            )
        else:
            await session.commit()
        raise Forbidden(f"Message blocked by auto-moderation ({hit.reason})")

    def _check_image(self, image_url: str | None) -> str | None:
        if not image_url:
            return None
        match = UPLOAD_URL.match(image_url)
        if match is None or not (self.uploads_dir / match.group(1)).is_file():
            raise BadRequest("image_url must be an image uploaded with POST /api/chat/upload", field="image_url")
        return image_url

    async def send_message(
        self,
        session: AsyncSession,
        principal: Principal,
        access: ChannelAccess,
        text: str,
        reply_to: int | None,
        image_url: str | None,
    ) -> dict[str, Any]:
        image = self._check_image(image_url)
        if not text.strip() and not image:
            raise BadRequest("A message needs text or an image", field="message")
        await self._check_can_post(session, principal, access)
        await self._automod(session, principal, access, text)
        message, reply = await msgs.do_store_message(
            session,
            self.keyring,
            channel_id=access.channel.id,
            author=principal.user,
            content=text,
            reply_to=reply_to,
            image_url=image,
        )
        await session.commit()
        event = self.renderer.render(message, principal.user, channel_name=access.channel.name, reply=reply)
        own = {**event, "user_id": principal.user_id} if message.anonymous else None
        masked = None
        if reply is not None and reply.user_id is not None and reply.user_id != principal.user_id:
            hidden = self.renderer.render(
                message, principal.user, channel_name=access.channel.name, reply=reply, blocked={reply.user_id}
            )
            masked = (reply.user_id, hidden)
        await self.realtime.to_channel(access.channel.id, event, sender=principal.user_id, own=own, masked=masked)
        return event

    # -- changing messages ---------------------------------------------------------------------
    async def edit(
        self, session: AsyncSession, principal: Principal, access: ChannelAccess, message: Message, text: str
    ) -> None:
        """An edit saves new text, so sanctions and automod apply as when sending."""
        if message.user_id == principal.user_id:
            await moderation.check_may_send(session, principal.user_id, access.channel.id)
            await self._automod(session, principal, access, text)
        edited_at = await msgs.do_edit(session, self.keyring, message, principal.user_id, text)
        await self.realtime.to_channel(
            message.channel_id,
            {
                "type": "message_edited",
                "message_id": message.id,
                "channel_id": message.channel_id,
                "new_text": text,
                "edited_at": edited_at.isoformat(),
            },
            sender=principal.user_id,
        )

    async def delete(
        self, session: AsyncSession, principal: Principal, access: ChannelAccess, message: Message
    ) -> None:
        own = message.user_id == principal.user_id
        if not own and not can_moderate(principal, access):
            raise Forbidden("You can only delete your own messages")
        if not own:
            record_audit(
                session,
                "message_deleted",
                actor_id=principal.user_id,
                actor_username=principal.user.username,
                target_type="message",
                target_id=message.id,
                target_label=message.username,
                details={"channel_id": message.channel_id, "author_id": message.user_id},
            )
        await session.delete(message)
        await session.commit()
        event = {
            "type": "message_deleted",
            "message_id": message.id,
            "channel_id": message.channel_id,
            "deleted_by": principal.user_id,
        }
        hidden = own and message.anonymous  # the deleter's id would unmask the anonymous author
        await self.realtime.to_channel(
            message.channel_id,
            {**event, "deleted_by": None} if hidden else event,
            sender=principal.user_id if hidden else None,
            own=event if hidden else None,
        )

    async def react(self, session: AsyncSession, principal: Principal, message: Message, emoji: str) -> None:
        action = await msgs.do_toggle_reaction(session, message, principal.user_id, emoji)
        await self.realtime.to_channel(
            message.channel_id,
            {
                "type": "reaction_update",
                "message_id": message.id,
                "channel_id": message.channel_id,
                "emoji": emoji,
                "user_id": principal.user_id,
                "username": principal.user.username,
                "action": action,
            },
            sender=principal.user_id,
        )

    async def pin(self, session: AsyncSession, principal: Principal, access: ChannelAccess, message: Message) -> None:
        if not can_moderate(principal, access):
            raise Forbidden("Only moderators can pin messages")
        pin = await msgs.do_pin(session, message, principal.user)
        await self.realtime.to_channel(
            message.channel_id,
            {
                "type": "message_pinned",
                "message_id": message.id,
                "channel_id": message.channel_id,
                "pinned_by": principal.user_id,
                "pinned_by_username": principal.user.username,
                "pinned_at": pin.pinned_at.isoformat(),
            },
        )

    async def unpin(self, session: AsyncSession, principal: Principal, access: ChannelAccess, message: Message) -> None:
        if not can_moderate(principal, access):
            raise Forbidden("Only moderators can unpin messages")
        await msgs.do_unpin(session, message)
        await self.realtime.to_channel(
            message.channel_id, {"type": "message_unpinned", "message_id": message.id, "channel_id": message.channel_id}
        )

    # -- polls ---------------------------------------------------------------------------------
    async def create_poll(
        self,
        session: AsyncSession,
        principal: Principal,
        access: ChannelAccess,
        *,
        question: str,
        options: list[str],
        allow_multiple: bool,
        anonymous_votes: bool,
        duration: int | None,
    ) -> None:
        await self._check_can_post(session, principal, access)
        await self._automod(session, principal, access, question + "\n" + "\n".join(options))
        message, _ = await msgs.do_store_message(
            session,
            self.keyring,
            channel_id=access.channel.id,
            author=principal.user,
            content=question.strip(),
            reply_to=None,
            image_url=None,
            kind="poll",
        )
        poll = polls.do_create_poll(
            session,
            self.keyring,
            message_id=message.id,
            channel_id=access.channel.id,
            creator_id=principal.user_id,
            question=question,
            options=options,
            allow_multiple=allow_multiple,
            anonymous_votes=anonymous_votes,
            duration_minutes=duration,
        )
        await session.flush()
        await session.commit()
        rendered = self.renderer.render(message, principal.user, channel_name=access.channel.name)
        counts = await polls.tally(session, poll)
        poll_view = polls.render_poll(self.keyring, poll, counts, anonymous=message.anonymous)
        own = {
            "type": "poll_created",
            "message": {**rendered, "user_id": principal.user_id},
            "poll": polls.render_poll(self.keyring, poll, counts),
        }
        await self.realtime.to_channel(
            access.channel.id,
            {"type": "poll_created", "message": rendered, "poll": poll_view},
            sender=principal.user_id,
            own=own if message.anonymous else None,
        )

    async def vote(self, session: AsyncSession, principal: Principal, poll_id: int, option_index: int) -> None:
        poll = await polls.get_poll(session, poll_id)
        await polls.do_vote(session, self.keyring, poll, principal.user_id, option_index)
        counts = await polls.tally(session, poll)
        await self.realtime.to_channel(
            poll.channel_id, {"type": "poll_updated", "channel_id": poll.channel_id, **counts}
        )

    async def close_poll(
        self, session: AsyncSession, principal: Principal, access: ChannelAccess, poll_id: int
    ) -> None:
        poll = await polls.get_poll(session, poll_id)
        if poll.creator_id != principal.user_id and not can_moderate(principal, access):
            raise Forbidden("Only the poll's creator or a moderator can close it")
        if not await polls.do_close(session, poll):
            raise BadRequest("This poll is already closed")
        await self._announce_closed(session, poll)

    async def _announce_closed(self, session: AsyncSession, poll: Any) -> None:
        counts = await polls.tally(session, poll)
        await self.realtime.to_channel(
            poll.channel_id, {"type": "poll_closed", "channel_id": poll.channel_id, **counts}
        )

    # -- jobs ----------------------------------------------------------------------------------
    async def close_expired_polls(self) -> int:
        async with self.db.sessions() as session:
            claimed = await polls.claim_expired(session)
            for poll in claimed:
                await self._announce_closed(session, poll)
        return len(claimed)

    async def apply_retention(self) -> int:
        """Delete messages older than the retention age (7 days unless configured)."""
        cutoff = utcnow() - timedelta(days=self.retention_days)
        async with self.db.sessions() as session:
            result = await session.execute(delete(Message).where(Message.created_at < cutoff))
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    # -- channel-wide announcements ---------------------------------------------------------------
    async def announce_channel_renamed(self, channel: Channel, old_name: str, audience: set[int] | None) -> None:
        """Sockets in the channel follow the rename; ``audience`` (None: everyone) is told."""
        await self.realtime.to_everyone(
            {
                "type": "_channel_renamed",
                "channel_id": channel.id,
                "name": channel.name,
                "audience": sorted(audience) if audience is not None else None,
                "deliver": {
                    "type": "channel_renamed",
                    "channel_id": channel.id,
                    "old_name": old_name,
                    "new_name": channel.name,
                },
            }
        )

    async def announce_channel_deleted(self, channel_id: int, name: str, audience: set[int] | None) -> None:
        await self.realtime.to_everyone(
            {
                "type": "_channel_gone",
                "channel_id": channel_id,
                "audience": sorted(audience) if audience is not None else None,
                "deliver": {"type": "channel_deleted", "channel": name, "channel_id": channel_id},
            }
        )

    async def announce_channel_cleared(self, channel_id: int, name: str) -> None:
        await self.realtime.to_channel(
            channel_id, {"type": "channel_cleared", "channel": name, "channel_id": channel_id}
        )

    async def announce_access_lost(self, user_id: int, channel_id: int, name: str) -> None:
        await self.realtime.to_user(
            user_id,
            {
                "type": "_channel_gone",
                "channel_id": channel_id,
                "deliver": {"type": "removed_from_channel", "channel": name, "channel_id": channel_id},
            },
        )

    async def announce_blocks_changed(self, user_id: int) -> None:
        await self.realtime.to_user(user_id, {"type": "_blocks_changed"})
