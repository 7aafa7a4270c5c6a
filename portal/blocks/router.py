"""``/api/blocks``: the caller's block list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.blocks import service as blocks
from portal.core.db import get_session

router = APIRouter(tags=["blocks"])
Session = Annotated[AsyncSession, Depends(get_session)]


class BlockedUser(BaseModel):
    id: int
    username: str
    blocked_at: datetime


class BlockList(BaseModel):
    blocked_users: list[BlockedUser]


class Success(BaseModel):
    success: bool = True


async def _announce(request: Request, user_id: int) -> None:
    chat = getattr(request.app.state, "chat", None)
    if chat is not None:
        await chat.announce_blocks_changed(user_id)


@router.get("/api/blocks", response_model=BlockList)
async def list_blocks(
    principal: Annotated[Principal, Depends(require_scope("chat:read"))], session: Session
) -> BlockList:
    rows = await blocks.list_blocks(session, principal.user_id)
    return BlockList(
        blocked_users=[BlockedUser(id=u.id, username=u.username, blocked_at=b.created_at) for b, u in rows]
    )


@router.post("/api/blocks/{user_id}", response_model=Success)
async def block_user(
    user_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("chat:write"))],
    session: Session,
) -> Success:
    await blocks.check_block(session, principal.user_id, user_id)
    await _announce(request, principal.user_id)
    return Success()


@router.delete("/api/blocks/{user_id}", response_model=Success)
async def unblock_user(
    user_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("chat:write"))],
    session: Session,
) -> Success:
    await blocks.do_unblock(session, principal.user_id, user_id)
    await _announce(request, principal.user_id)
    return Success()
