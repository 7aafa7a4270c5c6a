"""The daily invite code: derived from a dedicated key and the UTC date, so nothing is stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, date, datetime, time, timedelta

from portal.core.crypto import Keyring


def invite_code_for(keyring: Keyring, day: date) -> str:
    digest = hmac.new(keyring.key("invite-code"), day.isoformat().encode(), hashlib.sha256).digest()
    raw = base64.b32encode(digest).decode()[:8]
    return f"{raw[:4]}-{raw[4:]}"


def todays_invite(keyring: Keyring, now: datetime | None = None) -> tuple[str, datetime]:
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    expires = datetime.combine(today + timedelta(days=1), time(0, 0), tzinfo=UTC)
    return invite_code_for(keyring, today), expires


def is_valid_invite(keyring: Keyring, code: str) -> bool:
    normalised = code.strip().upper().replace(" ", "")
    if len(normalised) == 8:
        normalised = normalised[:4] + "-" + normalised[4:]
    expected, _ = todays_invite(keyring)
    return hmac.compare_digest(normalised.encode(), expected.encode())
