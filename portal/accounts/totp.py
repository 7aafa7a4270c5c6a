"""TOTP two-factor authentication (RFC 6238) with single-use backup codes.

Secrets are 160 bits, encrypted at rest. A code is accepted once: the time step it matched is
remembered, so a code seen over someone's shoulder cannot be replayed in the same window.
"""

from __future__ import annotations

import hmac
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import BackupCode, User
from portal.core.crypto import Keyring
from portal.core.db import utcnow
from portal.core.errors import BadRequest, Conflict

ISSUER = "Portal"
BACKUP_CODE_COUNT = 10
_STEP = 30


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_inline(scale=4, omitsize=True, dark="#111827", light="#ffffff"))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (±1 for clock drift) whose code equals ``code``, else None."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // _STEP)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normalise_backup(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def _new_backup_code() -> str:
    raw = secrets.token_hex(5)  # 40 bits, shown as xxxxx-xxxxx
    return f"{raw[:5]}-{raw[5:]}"


async def begin_setup(session: AsyncSession, keyring: Keyring, user: User) -> str:
    if user.totp_enabled:
        raise Conflict("2FA is already enabled; disable it first")
    secret = new_secret()
    user.totp_pending_enc = keyring.encrypt(secret)
    return secret


async def check_totp(user: User, keyring: Keyring, code: str, *, pending: bool = False) -> bool:
    """Verify a TOTP code and burn its time step; ``pending`` checks the not-yet-enabled secret."""
    encrypted = user.totp_pending_enc if pending else user.totp_secret_enc
    if not encrypted:
        return False
    step = matching_step(keyring.decrypt(encrypted), code)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


async def use_backup_code(session: AsyncSession, keyring: Keyring, user: User, code: str) -> bool:
    code_hash = keyring.hash_token(_normalise_backup(code), "backup-code")
    result = await session.execute(
        update(BackupCode)
        .where(BackupCode.user_id == user.id, BackupCode.code_hash == code_hash, BackupCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def do_enable(session: AsyncSession, keyring: Keyring, user: User, code: str) -> list[str]:
    if user.totp_enabled:
        raise Conflict("2FA is already enabled")
    if not user.totp_pending_enc:
        raise BadRequest("Start 2FA setup first")
    if not await check_totp(user, keyring, code, pending=True):
        raise BadRequest("Invalid 2FA code", field="code")
    user.totp_secret_enc, user.totp_pending_enc, user.totp_enabled = user.totp_pending_enc, None, True
    await session.execute(delete(BackupCode).where(BackupCode.user_id == user.id))
    codes = [_new_backup_code() for _ in range(BACKUP_CODE_COUNT)]
    session.add_all(
        BackupCode(user_id=user.id, code_hash=keyring.hash_token(_normalise_backup(c), "backup-code")) for c in codes
    )
    return codes


async def verify_second_factor(session: AsyncSession, keyring: Keyring, user: User, code: str) -> bool:
    """A current TOTP code or an unused backup code."""
    if await check_totp(user, keyring, code):
        return True
    return await use_backup_code(session, keyring, user, code)


async def do_disable(session: AsyncSession, keyring: Keyring, user: User, code: str) -> None:
    if not user.totp_enabled:
        raise BadRequest("2FA is not enabled")
    if not await verify_second_factor(session, keyring, user, code):
        raise BadRequest("Invalid 2FA code", field="code")
    user.totp_enabled, user.totp_secret_enc, user.totp_pending_enc, user.totp_last_step = False, None, None, None
    await session.execute(delete(BackupCode).where(BackupCode.user_id == user.id))


async def backup_codes_remaining(session: AsyncSession, user_id: int) -> int:
    count = await session.scalar(
        select(func.count()).select_from(BackupCode).where(BackupCode.user_id == user_id, BackupCode.used_at.is_(None))
    )
    return int(count or 0)
