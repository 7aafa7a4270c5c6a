"""``/api/me`` and the profile routes (password, status, nickname, avatar, anonymous mode)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts
from portal.accounts.deps import authenticator, ip_of, require_scope
from portal.accounts.principal import Principal, UserSnapshot
from portal.accounts.roles import Role
from portal.accounts.schemas import (
    AnonymousUpdate,
    Avatar,
    AvatarUpdate,
    Me,
    NicknameUpdate,
    PasswordChange,
    StatusUpdate,
    Success,
)
from portal.core.db import get_session

router = APIRouter(tags=["profile"])
Session = Annotated[AsyncSession, Depends(get_session)]
Writer = Annotated[Principal, Depends(require_scope("profile:write"))]


def me_of(user: UserSnapshot, scopes: str) -> Me:
    return Me(
        id=user.id,
        username=user.username,
        role=user.role,
        is_admin=user.role.at_least(Role.ADMIN),
        scopes=scopes,
        created_at=user.created_at,
        totp_enabled=user.totp_enabled,
        nickname=user.nickname,
        display_name=user.display_name,
        status=user.status,
        status_message=user.status_message,
        avatar=Avatar(color=user.avatar_color, emoji=user.avatar_emoji, initials=user.avatar_initials),
        anonymous=user.anonymous,
    )


@router.get("/api/me", response_model=Me)
async def get_me(request: Request) -> Response:
    """Served from the credential cache, which any change to the user invalidates.

    The hottest authenticated route: the caller is checked without a FastAPI sub-dependency and
    the JSON is rendered once per cached principal.
    """
    principal = await _me_reader(request)
    return Response(_me_json(principal), media_type="application/json")


_me_reader = require_scope("profile:read")


@lru_cache(maxsize=4096)
def _me_json(principal: Principal) -> bytes:
    return me_of(principal.user, principal.scopes).model_dump_json().encode()


async def _updated(request: Request, session: AsyncSession, principal: Principal, **fields: object) -> Me:
    user = await accounts.do_update_profile(session, authenticator(request), principal.user_id, **fields)
    return me_of(UserSnapshot.of(user), principal.scopes)


@router.post("/api/me/password", response_model=Success)
async def change_password(body: PasswordChange, request: Request, principal: Writer, session: Session) -> Success:
    """Other sessions of the user are revoked; the one making this call stays signed in."""
    await accounts.do_change_password(
        session, authenticator(request), principal, body.current_password, body.new_password, ip_of(request)
    )
    return Success()


@router.put("/api/me/status", response_model=Me)
async def set_status(body: StatusUpdate, request: Request, principal: Writer, session: Session) -> Me:
    message = body.status_message.strip() if body.status_message else None
    return await _updated(request, session, principal, status=body.status, status_message=message or None)


@router.put("/api/me/nickname", response_model=Me)
async def set_nickname(body: NicknameUpdate, request: Request, principal: Writer, session: Session) -> Me:
    await accounts.check_nickname_free(session, principal.user_id, body.nickname)
    return await _updated(request, session, principal, nickname=body.nickname)


@router.put("/api/me/avatar", response_model=Me)
async def set_avatar(body: AvatarUpdate, request: Request, principal: Writer, session: Session) -> Me:
    return await _updated(
        request, session, principal, avatar_color=body.color, avatar_emoji=body.emoji, avatar_initials=body.initials
    )


@router.put("/api/me/anonymous", response_model=Me)
async def set_anonymous(body: AnonymousUpdate, request: Request, principal: Writer, session: Session) -> Me:
    return await _updated(request, session, principal, anonymous=body.anonymous)
