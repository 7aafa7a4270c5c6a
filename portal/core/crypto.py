"""Key derivation from the one master key, at-rest encryption and keyed hashing of tokens.

Every purpose gets its own HKDF-derived key, so a leak of (say) the invite-code key tells
nothing about the JWT signing key. ``PORTAL_SECRET_KEY`` may list several keys separated by
commas, newest first: data encrypted under an older key stays readable (MultiFernet).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE_NAME = "secret.key"


def _derive(master: bytes, purpose: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=f"portal:{purpose}".encode()).derive(master)


class Keyring:
    """Purpose-bound keys derived from the master key(s)."""

    def __init__(self, master_keys: list[bytes]) -> None:
        if not master_keys:
            raise ValueError("at least one master key is required")
        self._masters = master_keys
        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(_derive(m, "at-rest"))) for m in master_keys])

    def key(self, purpose: str) -> bytes:
        """The current key for ``purpose`` (JWT signing, invite codes, token hashing…)."""
        return _derive(self._masters[0], purpose)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("ciphertext cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key."""
        return self._fernet.rotate(token.encode()).decode()

    def hash_token(self, token: str, purpose: str = "token-hash") -> str:
        """A keyed hash for looking up high-entropy secrets (API keys, backup codes) without storing them."""
        return hmac.new(self.key(purpose), token.encode(), hashlib.sha256).hexdigest()


def load_master_keys(configured: str | None, data_dir: Path) -> list[bytes]:
    """Use the configured key(s), else the key file in the data dir, created 0600 on first start."""
    if configured:
        return [k.strip().encode() for k in configured.split(",") if k.strip()]
    path = data_dir / KEY_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    for _ in range(50):  # another process may have created it a moment ago and not written it yet
        key = path.read_text().strip()
        if key:
            return [key.encode()]
        time.sleep(0.05)
    raise RuntimeError(f"key file {path} is empty")


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
