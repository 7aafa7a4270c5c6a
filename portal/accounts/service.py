"""Users, login, the JWT registry, registration and profiles: the logic behind the routes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import invites, totp
from portal.accounts.authn import Authenticator
from portal.accounts.models import AuthToken, Registration, User
from portal.accounts.passwords import hash_password, needs_rehash, verify_password
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.activity.service import record_activity
from portal.core.db import utcnow
from portal.core.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized
from portal.core.ratelimit import RateLimiter


def normalise_username(username: str) -> str:
    return username.strip().lower()


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


async def find_user(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == normalise_username(username)))


async def users_by_ids(session: AsyncSession, ids: set[int] | list[int]) -> dict[int, User]:
    if not ids:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(list(ids))))
    return {u.id: u for u in rows}


async def search_users(session: AsyncSession, query: str, limit: int = 20) -> list[User]:
    """Username or nickname containing ``query``, case-insensitively (``%`` and ``_`` match literally)."""
    needle = query.strip().lower()
    if not needle:
        return []
    stmt = (
        select(User)
        .where(
            or_(
                func.lower(User.username).contains(needle, autoescape=True),
                func.lower(User.nickname).contains(needle, autoescape=True),
            )
        )
        .order_by(func.length(User.username), User.username)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def do_create_user(session: AsyncSession, username: str, password: str, role: Role = Role.USER) -> User:
    user = User(username=normalise_username(username), password_hash=await hash_password(password), role=role.value)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("Username already taken", field="username") from exc
    return user


def generate_password() -> str:
    return secrets.token_urlsafe(12)


# -- login and the JWT registry ------------------------------------------------------------------
@dataclass(frozen=True)
class LoginPolicy:
    limiter: RateLimiter
    per_account: str
    per_ip: str


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: datetime
    user: User


async def _check_lockout(policy: LoginPolicy, username: str, ip: str) -> None:
    for rate, key in ((policy.per_account, "loginfail:user:" + username), (policy.per_ip, "loginfail:ip:" + ip)):
        state = await policy.limiter.peek(rate, key)
        if not state.allowed:
            raise TooManyRequests("Too many failed logins, try again later", retry_after=state.retry_after)


async def _count_failure(policy: LoginPolicy, username: str, ip: str) -> None:
    await policy.limiter.hit(policy.per_account, "loginfail:user:" + username)
    await policy.limiter.hit(policy.per_ip, "loginfail:ip:" + ip)


async def check_login(
    session: AsyncSession,
    authn: Authenticator,
    policy: LoginPolicy,
    *,
    username: str,
    password: str,
    totp_code: str | None,
    ip: str,
    user_agent: str | None,
    kind: str = "api",
) -> IssuedToken:
    """Verify password (and second factor), then issue a registered JWT."""
    name = normalise_username(username)
    await _check_lockout(policy, name, ip)
    user = await find_user(session, name)
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        await _count_failure(policy, name, ip)
        record_activity(
            session,
            "login_failed",
            user_id=user.id if user else None,
            username=name[:32],
            details="wrong password" if user else "unknown user",
            ip=ip,
        )
        await session.commit()
        raise Unauthorized("Invalid username or password")
    if user.totp_enabled:
        if not totp_code:
            raise Unauthorized("2FA code required", totp_required=True)
        if not await totp.verify_second_factor(session, authn.keyring, user, totp_code):
            await _count_failure(policy, name, ip)
            record_activity(
                session, "login_failed", user_id=user.id, username=user.username, details="wrong 2FA code", ip=ip
            )
            await session.commit()
            raise Unauthorized("Invalid 2FA code", totp_required=True)
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    user.last_login_at = utcnow()
    issued = await do_issue_token(session, authn, user, kind=kind, ip=ip, user_agent=user_agent)
    record_activity(session, "login", user_id=user.id, username=user.username, details=f"signed in ({kind})", ip=ip)
    await session.commit()
    await policy.limiter.clear(policy.per_account, "loginfail:user:" + name)
    return issued


async def do_issue_token(
    session: AsyncSession, authn: Authenticator, user: User, *, kind: str, ip: str | None, user_agent: str | None
) -> IssuedToken:
    token_id = authn.new_token_id()
    expires_at = utcnow() + authn.jwt_ttl
    session.add(
        AuthToken(
            id=token_id,
            user_id=user.id,
            kind=kind,
            expires_at=expires_at,
            ip=ip,
            user_agent=(user_agent or "")[:200] or None,
        )
    )
    return IssuedToken(authn.encode_jwt(token_id, user.id, expires_at), token_id, expires_at, user)


async def list_active_tokens(session: AsyncSession, user_id: int) -> list[AuthToken]:
    stmt = (
        select(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None), AuthToken.expires_at > utcnow())
        .order_by(AuthToken.created_at.desc())
        .limit(200)
    )
    return list((await session.scalars(stmt)).all())


async def do_revoke_token(session: AsyncSession, authn: Authenticator, user_id: int, token_id: str) -> None:
    token = await session.get(AuthToken, token_id)
    if token is None or token.user_id != user_id or token.revoked_at is not None:
        raise NotFound("Token not found")
    token.revoked_at = utcnow()
    await session.commit()
    await authn.invalidate_user(user_id)


async def do_revoke_all_tokens(session: AsyncSession, user_id: int, *, except_token_id: str | None = None) -> None:
    stmt = update(AuthToken).where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
    if except_token_id:
        stmt = stmt.where(AuthToken.id != except_token_id)
    await session.execute(stmt.values(revoked_at=utcnow()))


# -- registration --------------------------------------------------------------------------------
async def check_register(
    session: AsyncSession,
    authn: Authenticator,
    *,
    username: str,
    password: str,
    invite_code: str,
    ip: str,
    per_day: int,
) -> User:
    if not invites.is_valid_invite(authn.keyring, invite_code):
        raise BadRequest("Invalid or expired invite code", field="invite_code")
    since = utcnow() - timedelta(hours=24)
    recent = list(
        (
            await session.scalars(
                select(Registration.created_at)
                .where(Registration.ip == ip, Registration.created_at > since)
                .order_by(Registration.created_at)
            )
        ).all()
    )
    if len(recent) >= per_day:
        retry = int((recent[0] + timedelta(hours=24) - utcnow()).total_seconds())
        raise TooManyRequests("Only one account per IP address per 24 hours", retry_after=retry)
    if await find_user(session, username) is not None:
        raise Conflict("Username already taken", field="username")
    user = await do_create_user(session, username, password, Role.USER)
    session.add(Registration(ip=ip, user_id=user.id))
    record_activity(
        session, "registered", user_id=user.id, username=user.username, details="registered with invite", ip=ip
    )
    await session.commit()
    return user


# -- profile -------------------------------------------------------------------------------------
async def do_change_password(
    session: AsyncSession, authn: Authenticator, principal: Principal, current: str, new: str, ip: str
) -> None:
    """Change the password and end every other session of the user."""
    user = await get_user(session, principal.user_id)
    if not await verify_password(user.password_hash, current):
        raise BadRequest("Current password is incorrect", field="current_password")
    if current == new:
        raise BadRequest("New password must differ from the current one", field="new_password")
    user.password_hash = await hash_password(new)
    await do_revoke_all_tokens(session, user.id, except_token_id=principal.token_id)
    record_activity(
        session, "password_changed", user_id=user.id, username=user.username, details="password changed", ip=ip
    )
    await session.commit()
    await authn.invalidate_user(user.id)


async def do_update_profile(session: AsyncSession, authn: Authenticator, user_id: int, **fields: object) -> User:
    user = await get_user(session, user_id)
    for name, value in fields.items():
        setattr(user, name, value)
    await session.commit()
    await authn.invalidate_user(user_id)
    return user


async def check_nickname_free(session: AsyncSession, user_id: int, nickname: str | None) -> None:
    """A nickname may not be another account's username: display names must not impersonate."""
    if nickname is None:
        return
    other = await find_user(session, nickname)
    if other is not None and other.id != user_id:
        raise Conflict("That nickname is another user's username", field="nickname")
