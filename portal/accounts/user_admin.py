"""Admin user management. The one rule: nobody acts on themselves or an equal/higher role."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.authn import Authenticator
from portal.accounts.models import User
from portal.accounts.passwords import hash_password
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.accounts.service import do_create_user, do_revoke_all_tokens, find_user, generate_password, get_user
from portal.activity.service import record_activity, record_audit
from portal.core.errors import Conflict, Forbidden


async def access_managed_user(session: AsyncSession, actor: Principal, user_id: int) -> User:
    """The target user, if ``actor`` outranks them; acting on oneself is refused too."""
    target = await get_user(session, user_id)
    if target.id == actor.user_id:
        raise Forbidden("You cannot change your own account here")
    if not actor.role.rank > Role(target.role).rank:
        raise Forbidden("You cannot manage a user with an equal or higher role")
    return target


def _check_assignable(actor: Principal, role: Role) -> None:
    if not actor.role.rank > role.rank:
        raise Forbidden("You can only assign roles below your own")


async def list_users(session: AsyncSession, *, limit: int, offset: int, q: str | None) -> tuple[list[User], int]:
    stmt = select(User)
    count_stmt = select(func.count()).select_from(User)
    if q:
        match = User.username.contains(q.lower(), autoescape=True)  # "_" and "%" are literal here
        stmt = stmt.where(match)
        count_stmt = count_stmt.where(match)
    users = list((await session.scalars(stmt.order_by(User.id).limit(limit).offset(offset))).all())
    return users, int(await session.scalar(count_stmt) or 0)


def _audit(session: AsyncSession, actor: Principal, action: str, target: User, **details: object) -> None:
    record_audit(
        session,
        action,
        actor_id=actor.user_id,
        actor_username=actor.user.username,
        target_type="user",
        target_id=target.id,
        target_label=target.username,
        details=details,
    )
    record_activity(
        session, action, user_id=actor.user_id, username=actor.user.username, details=f"{action} {target.username}"
    )


async def check_create_user(session: AsyncSession, actor: Principal, username: str, password: str, role: Role) -> User:
    _check_assignable(actor, role)
    if await find_user(session, username) is not None:
        raise Conflict("Username already taken", field="username")
    user = await do_create_user(session, username, password, role)
    _audit(session, actor, "user_created", user, role=role.value)
    await session.commit()
    return user


async def check_change_role(
    session: AsyncSession, authn: Authenticator, actor: Principal, user_id: int, role: Role
) -> User:
    target = await access_managed_user(session, actor, user_id)
    _check_assignable(actor, role)
    old = target.role
    target.role = role.value
    _audit(session, actor, "role_changed", target, old_role=old, new_role=role.value)
    await session.commit()
    await authn.invalidate_user(target.id)
    return target


async def check_reset_password(
    session: AsyncSession, authn: Authenticator, actor: Principal, user_id: int, new_password: str | None
) -> str | None:
    """Set a new password (generated when none is given) and end all the user's sessions."""
    target = await access_managed_user(session, actor, user_id)
    generated = None if new_password else generate_password()
    target.password_hash = await hash_password(new_password or generated or "")
    await do_revoke_all_tokens(session, target.id)
    _audit(session, actor, "password_reset", target)
    await session.commit()
    await authn.invalidate_user(target.id)
    return generated


async def check_delete_user(session: AsyncSession, authn: Authenticator, actor: Principal, user_id: int) -> None:
    target = await access_managed_user(session, actor, user_id)
    _audit(session, actor, "user_deleted", target, role=target.role)
    await session.delete(target)
    await session.commit()
    await authn.invalidate_user(user_id)
