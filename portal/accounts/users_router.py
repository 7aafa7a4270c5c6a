"""Admin user management routes (``/api/users``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import user_admin
from portal.accounts.deps import authenticator, require_scope
from portal.accounts.models import User
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.accounts.schemas import (
    PasswordReset,
    PasswordResetDone,
    RoleUpdate,
    Success,
    UserCreate,
    UserList,
    UserOut,
)
from portal.core.db import MAX_ID, get_session

router = APIRouter(tags=["users"])
Session = Annotated[AsyncSession, Depends(get_session)]
AdminReader = Annotated[Principal, Depends(require_scope("users:read", Role.ADMIN))]
AdminWriter = Annotated[Principal, Depends(require_scope("users:write", Role.ADMIN))]
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]


def user_out(user: User) -> UserOut:
    role = Role(user.role)
    return UserOut(
        id=user.id,
        username=user.username,
        role=role,
        is_admin=role.at_least(Role.ADMIN),
        nickname=user.nickname,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        totp_enabled=user.totp_enabled,
    )


@router.get("/api/users", response_model=UserList)
async def list_users(
    _: AdminReader,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    q: Annotated[str | None, Query(max_length=64)] = None,
) -> UserList:
    users, total = await user_admin.list_users(session, limit=limit, offset=offset, q=q)
    return UserList(users=[user_out(u) for u in users], total=total, limit=limit, offset=offset)


@router.post("/api/users", response_model=UserOut, status_code=201)
async def create_user(body: UserCreate, principal: AdminWriter, session: Session) -> UserOut:
    return user_out(await user_admin.check_create_user(session, principal, body.username, body.password, body.role))


@router.put("/api/users/{user_id}/role", response_model=UserOut)
async def change_role(
    user_id: UserId, body: RoleUpdate, request: Request, principal: AdminWriter, session: Session
) -> UserOut:
    return user_out(await user_admin.check_change_role(session, authenticator(request), principal, user_id, body.role))


@router.post("/api/users/{user_id}/reset-password", response_model=PasswordResetDone)
async def reset_password(
    user_id: UserId, request: Request, principal: AdminWriter, session: Session, body: PasswordReset | None = None
) -> PasswordResetDone:
    """Without ``new_password`` a temporary password is generated and returned once."""
    generated = await user_admin.check_reset_password(
        session, authenticator(request), principal, user_id, body.new_password if body else None
    )
    return PasswordResetDone(temporary_password=generated)


@router.delete("/api/users/{user_id}", response_model=Success)
async def delete_user(
    user_id: UserId,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("users:write", Role.SUPERADMIN))],
    session: Session,
) -> Success:
    await user_admin.check_delete_user(session, authenticator(request), principal, user_id)
    return Success()
