"""Polls in channels: 2-10 options, single or multiple choice, optional anonymity and duration."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.chat.models import Poll, PollVote
from portal.core.crypto import Keyring
from portal.core.db import utcnow
from portal.core.errors import BadRequest, Conflict, NotFound


async def get_poll(session: AsyncSession, poll_id: int) -> Poll:
    poll = await session.get(Poll, poll_id)
    if poll is None:
        raise NotFound("Poll not found")
    return poll


def do_create_poll(
    session: AsyncSession,
    keyring: Keyring,
    *,
    message_id: int,
    channel_id: int,
    creator_id: int,
    question: str,
    options: list[str],
    allow_multiple: bool,
    anonymous_votes: bool,
    duration_minutes: int | None,
) -> Poll:
    cleaned = [o.strip() for o in options]
    if any(not o for o in cleaned):
        raise BadRequest("Poll options must not be blank", field="options")
    if len({o.lower() for o in cleaned}) != len(cleaned):
        raise BadRequest("Poll options must be different", field="options")
    poll = Poll(
        message_id=message_id,
        channel_id=channel_id,
        creator_id=creator_id,
        question_enc=keyring.encrypt(question.strip()),
        options_enc=keyring.encrypt(json.dumps(cleaned)),
        allow_multiple=allow_multiple,
        anonymous_votes=anonymous_votes,
        closes_at=utcnow() + timedelta(minutes=duration_minutes) if duration_minutes else None,
    )
    session.add(poll)
    return poll


def options_of(keyring: Keyring, poll: Poll) -> list[str]:
    return list(json.loads(keyring.decrypt(poll.options_enc)))


def is_closed(poll: Poll) -> bool:
    return poll.closed_at is not None or (poll.closes_at is not None and poll.closes_at <= utcnow())


async def tally(session: AsyncSession, poll: Poll) -> dict[str, Any]:
    """Vote counts per option index (as strings, like the spec), total voters, and voters by
    option unless the poll is anonymous."""
    rows = (
        await session.execute(select(PollVote.option_index, PollVote.user_id).where(PollVote.poll_id == poll.id))
    ).all()
    votes: dict[str, int] = defaultdict(int)
    voters_by_option: dict[str, list[int]] = defaultdict(list)
    for index, user_id in rows:
        votes[str(index)] += 1
        voters_by_option[str(index)].append(user_id)
    result: dict[str, Any] = {
        "poll_id": poll.id,
        "votes": dict(votes),
        "total_votes": len(rows),
        "total_voters": len({uid for _, uid in rows}),
    }
    if not poll.anonymous_votes:
        names = await accounts.users_by_ids(session, {uid for _, uid in rows})
        result["voters"] = {k: [names[u].username for u in v if u in names] for k, v in voters_by_option.items()}
    return result


def render_poll(keyring: Keyring, poll: Poll, counts: dict[str, Any], *, anonymous: bool = False) -> dict[str, Any]:
    """``anonymous``: the poll's message was sent anonymously, so its creator is not shown."""
    return {
        "id": poll.id,
        "message_id": poll.message_id,
        "channel_id": poll.channel_id,
        "creator_id": None if anonymous else poll.creator_id,
        "question": keyring.decrypt(poll.question_enc),
        "options": options_of(keyring, poll),
        "allow_multiple": poll.allow_multiple,
        "anonymous_votes": poll.anonymous_votes,
        "closes_at": poll.closes_at.isoformat() if poll.closes_at else None,
        "closed": is_closed(poll),
        **{k: v for k, v in counts.items() if k != "poll_id"},
    }


async def do_vote(session: AsyncSession, keyring: Keyring, poll: Poll, user_id: int, option_index: int) -> None:
    """Single choice: the vote moves to the option. Multiple choice: the option toggles."""
    if is_closed(poll):
        raise Conflict("This poll is closed")
    if option_index >= len(options_of(keyring, poll)):
        raise BadRequest("option_index is out of range", field="option_index")
    existing = set(
        (
            await session.scalars(
                select(PollVote.option_index).where(PollVote.poll_id == poll.id, PollVote.user_id == user_id)
            )
        ).all()
    )
    if poll.allow_multiple:
        if option_index in existing:
            await session.execute(
                delete(PollVote).where(
                    PollVote.poll_id == poll.id, PollVote.user_id == user_id, PollVote.option_index == option_index
                )
            )
        else:
            session.add(PollVote(poll_id=poll.id, user_id=user_id, option_index=option_index))
    else:
        if existing == {option_index}:
            return
        await session.execute(delete(PollVote).where(PollVote.poll_id == poll.id, PollVote.user_id == user_id))
        session.add(PollVote(poll_id=poll.id, user_id=user_id, option_index=option_index))
    await session.commit()


async def do_close(session: AsyncSession, poll: Poll) -> bool:
    """Close the poll; False when it was already closed (by someone else, or another process)."""
    result = await session.execute(
        update(Poll).where(Poll.id == poll.id, Poll.closed_at.is_(None)).values(closed_at=utcnow())
    )
    await session.commit()
    return bool(getattr(result, "rowcount", 0))


async def claim_expired(session: AsyncSession, limit: int = 100) -> list[Poll]:
    """Polls whose time is up, each closed by exactly one caller even with several processes."""
    due = (
        await session.scalars(
            select(Poll)
            .where(Poll.closed_at.is_(None), Poll.closes_at.is_not(None), Poll.closes_at <= utcnow())
            .limit(limit)
        )
    ).all()
    claimed = []
    for poll in due:
        result = await session.execute(
            update(Poll).where(Poll.id == poll.id, Poll.closed_at.is_(None)).values(closed_at=utcnow())
        )
        if getattr(result, "rowcount", 0):
            claimed.append(poll)
    await session.commit()
    return claimed
