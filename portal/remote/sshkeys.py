"""SSH key pairs generated for a user: the private half is returned once and never stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

import asyncssh
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.core.db import MAX_ID
from portal.core.errors import BadRequest, Conflict, NotFound
from portal.remote.models import SshKey

MAX_KEYS_PER_USER = 50
KeyType = Literal["ed25519", "rsa"]
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_ALGORITHMS = {"ed25519": ("ssh-ed25519", {}), "rsa": ("ssh-rsa", {"key_size": 4096})}


@dataclass(frozen=True)
class GeneratedKey:
    row: SshKey
    private_key: str


def fingerprint(public_key_line: str) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint of an ``authorized_keys`` line."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_comment(name: str) -> str:
    """The comment of the public key line: the name reduced to characters that cannot break an
    ``authorized_keys`` line (a newline in a name would otherwise add a line of the user's choosing)."""
    slug = _COMMENT_UNSAFE.sub("-", name).strip("-")[:64] or "key"
    return f"{slug}@open-relay-portal"


def generate(key_type: KeyType, comment: str) -> tuple[str, str]:
    """(private key in OpenSSH format, public key line); CPU-bound for RSA, run it in a thread."""
    algorithm, options = _ALGORITHMS[key_type]
    key = asyncssh.generate_private_key(algorithm, comment=comment, **options)
    private = key.export_private_key("openssh").decode()
    public = key.export_public_key("openssh").decode().strip()
    return private, public


async def check_create_key(session: AsyncSession, owner_id: int, name: str, key_type: KeyType) -> GeneratedKey:
    count = await session.scalar(select(func.count()).where(SshKey.owner_id == owner_id))
    if (count or 0) >= MAX_KEYS_PER_USER:
        raise Conflict(f"At most {MAX_KEYS_PER_USER} SSH keys per user")
    name = name.strip()
    comment = key_comment(name)
    private, public = await asyncio.to_thread(generate, key_type, comment)
    row = SshKey(owner_id=owner_id, name=name, key_type=key_type, public_key=public, fingerprint=fingerprint(public))
    session.add(row)
    await session.flush()
    return GeneratedKey(row, private)


async def access_key(session: AsyncSession, owner_id: int, key_id: int) -> SshKey:
    row = await session.get(SshKey, key_id)
    if row is None or row.owner_id != owner_id:
        raise NotFound("SSH key not found")
    return row


async def list_keys(session: AsyncSession, owner_id: int) -> list[SshKey]:
    return list(await session.scalars(select(SshKey).where(SshKey.owner_id == owner_id).order_by(SshKey.id)))


def authorized_keys(keys: list[SshKey]) -> str:
    return "".join(f"{k.public_key}\n" for k in keys)


async def check_key_reference(session: AsyncSession, owner_id: int, config: dict[str, Any]) -> None:
    """An ssh connection that names ``ssh_key_id`` must name one of the owner's keys."""
    key_id = config.get("ssh_key_id")
    if key_id is not None:
        row = await session.get(SshKey, key_id) if _valid_id(key_id) else None
        if row is None or row.owner_id != owner_id:
            raise BadRequest("ssh_key_id is not one of your SSH keys", field="config.ssh_key_id")
    if config.get("auth_method") == "ssh_key" and key_id is None:
        raise BadRequest("auth_method ssh_key needs ssh_key_id", field="config.ssh_key_id")


def _valid_id(key_id: Any) -> bool:
    """Ids outside the integer column's range are no one's key (PostgreSQL would refuse the query)."""
    return isinstance(key_id, int) and not isinstance(key_id, bool) and 1 <= key_id <= MAX_ID


async def public_key_of(session: AsyncSession, owner_id: int, key_id: Any) -> str | None:
    if not _valid_id(key_id):
        return None
    row = await session.get(SshKey, key_id)
    return row.public_key if row is not None and row.owner_id == owner_id else None
