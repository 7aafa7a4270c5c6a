"""argon2id password hashing, run off the event loop (each verify costs tens of milliseconds)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id, 46 MiB and two passes: above OWASP's recommended minimum (46 MiB, one pass) and close
# to RFC 9106's low-memory profile, while a login verify stays near 90 ms on a 2-core machine
# (the 64 MiB / three-pass default took ~180 ms, over the 150 ms budget). Older hashes are
# upgraded at their next login (``needs_rehash``).
_hasher = PasswordHasher(time_cost=2, memory_cost=46 * 1024, parallelism=4)
MIN_LENGTH = 8
MAX_LENGTH = 256

# Verified against when the user does not exist, so a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("portal-timing-equaliser")


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; ``stored_hash=None`` burns the same time and says no."""
    return await asyncio.to_thread(_verify, stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
