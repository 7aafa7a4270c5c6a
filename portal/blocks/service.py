"""Blocking: a blocked user's messages never reach the blocker."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.accounts.models import User
from portal.blocks.models import Block
from portal.core.errors import BadRequest

MAX_BLOCKS = 1000


async def blocked_ids(session: AsyncSession, blocker_id: int) -> set[int]:
    return set((await session.scalars(select(Block.blocked_id).where(Block.blocker_id == blocker_id))).all())


async def list_blocks(session: AsyncSession, blocker_id: int) -> list[tuple[Block, User]]:
    rows = list(
        (await session.scalars(select(Block).where(Block.blocker_id == blocker_id).order_by(Block.created_at))).all()
    )
    users = await accounts.users_by_ids(session, {b.blocked_id for b in rows})
    return [(b, users[b.blocked_id]) for b in rows if b.blocked_id in users]


async def check_block(session: AsyncSession, blocker_id: int, blocked_id: int) -> User:
    if blocker_id == blocked_id:
        raise BadRequest("You cannot block yourself", field="user_id")
    target = await accounts.get_user(session, blocked_id)
    if await session.get(Block, (blocker_id, blocked_id)) is None:
        if len(await blocked_ids(session, blocker_id)) >= MAX_BLOCKS:
            raise BadRequest(f"At most {MAX_BLOCKS} blocked users")
        session.add(Block(blocker_id=blocker_id, blocked_id=blocked_id))
        await session.commit()
    return target


async def do_unblock(session: AsyncSession, blocker_id: int, blocked_id: int) -> User:
    target = await accounts.get_user(session, blocked_id)
    await session.execute(delete(Block).where(Block.blocker_id == blocker_id, Block.blocked_id == blocked_id))
    await session.commit()
    return target


async def is_blocked_either_way(session: AsyncSession, a: int, b: int) -> bool:
    row = await session.scalar(
        select(Block.blocker_id).where(
            ((Block.blocker_id == a) & (Block.blocked_id == b)) | ((Block.blocker_id == b) & (Block.blocked_id == a))
        )
    )
    return row is not None
