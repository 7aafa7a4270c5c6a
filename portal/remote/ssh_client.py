"""Opening an SSH connection for a connection's config: the chosen authentication only (no agent,
no keys from disk, no agent forwarding) and the host key pinned on first use.

The first successful connection to a host stores its key in ``KnownHost`` (per user, or per
service); later connections accept only that key, so a changed host key (a reinstalled server,
or someone in the middle) is refused with :class:`HostKeyChanged` until the pin is removed.
"""

from __future__ import annotations

from typing import Any

import asyncssh
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.core.db import Database
from portal.core.errors import ApiError, BadRequest
from portal.remote.models import KnownHost, SshKey
from portal.remote.sshkeys import fingerprint
from portal.remote.targets import Target

CONNECT_TIMEOUT = 10.0
# AES-GCM first: one AEAD call per packet in ``cryptography`` (AES-NI), where asyncssh's
# chacha20-poly1305 builds three cipher objects per packet, which made it the relay's main CPU cost
# for bulk terminal output (bench/terminal_relay.py). Both are what OpenSSH offers by default.
ENCRYPTION_ALGS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
]


class SshError(ApiError):
    status = 502
    default_message = "SSH connection failed"


class HostKeyChanged(SshError):
    default_message = "The server's host key changed"


class SshAuthFailed(SshError):
    status = 401
    default_message = "SSH authentication failed"


async def _pinned(db: Database, scope: str, target: Target) -> KnownHost | None:
    async with db.sessions() as session:
        found: KnownHost | None = await session.scalar(
            select(KnownHost).where(
                KnownHost.scope == scope, KnownHost.host == target.host, KnownHost.port == target.port
            )
        )
        return found


async def _pin(db: Database, scope: str, target: Target, key: asyncssh.SSHKey) -> bool:
    """Pin ``key`` unless a key is pinned already; True when the pinned key is ``key``.

    Several first connections may race (a user opening a few terminals at once): the unique
    constraint lets one win, and the others must have met the same key."""
    line = key.export_public_key("openssh").decode().strip()
    async with db.sessions() as session:
        existing = await session.scalar(
            select(KnownHost).where(
                KnownHost.scope == scope, KnownHost.host == target.host, KnownHost.port == target.port
            )
        )
        if existing is None:
            session.add(
                KnownHost(
                    scope=scope,
                    host=target.host,
                    port=target.port,
                    key_type=key.get_algorithm(),
                    public_key=line,
                    fingerprint=fingerprint(line),
                )
            )
            try:
                await session.commit()
                return True
            except IntegrityError:
                await session.rollback()
                existing = await session.scalar(
                    select(KnownHost).where(
                        KnownHost.scope == scope, KnownHost.host == target.host, KnownHost.port == target.port
                    )
                )
                if existing is None:
                    raise
        return existing.public_key.split()[:2] == line.split()[:2]


async def pinned_host_key(db: Database, scope: str, host: str, port: int) -> KnownHost | None:
    return await _pinned(db, scope, Target(host, port, host))


async def forget_host_key(db: Database, scope: str, host: str, port: int) -> bool:
    """Drop the pin, so the next connection trusts (and pins) whatever key the server shows."""
    async with db.sessions() as session:
        pin = await session.scalar(
            select(KnownHost).where(KnownHost.scope == scope, KnownHost.host == host, KnownHost.port == port)
        )
        if pin is None:
            return False
        await session.delete(pin)
        await session.commit()
        return True


def _import_key(config: dict[str, Any]) -> asyncssh.SSHKey:
    if not config.get("private_key"):
        raise BadRequest(
            "This connection has no private key: the portal never keeps generated private keys, so paste the "
            "one shown when the key was created into the connection's private_key"
        )
    try:
        return asyncssh.import_private_key(config["private_key"], config.get("passphrase") or None)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise BadRequest(f"The stored private key cannot be read: {exc}") from None


async def _client_keys(db: Database, owner_id: int, config: dict[str, Any]) -> list[asyncssh.SSHKey] | None:
    """The key to log in with, or None for password authentication.

    ``ssh_key`` names one of the user's generated key pairs: its private half lives only in this
    connection's encrypted config, and must match the public key still registered (a deleted,
    i.e. revoked, key cannot be used any more).
    """
    method = config.get("auth_method", "password")
    if method == "key":
        return [_import_key(config)]
    if method == "ssh_key":
        async with db.sessions() as session:
            row = await session.get(SshKey, config.get("ssh_key_id") or 0)
        if row is None or row.owner_id != owner_id:
            raise BadRequest("The SSH key of this connection was deleted (revoked); choose another key")
        key = _import_key(config)
        if key.export_public_key("openssh").decode().split()[:2] != row.public_key.split()[:2]:
            raise BadRequest(f"The private key does not belong to the SSH key {row.name!r}")
        return [key]
    return None


async def connect(
    db: Database, scope: str, owner_id: int, target: Target, config: dict[str, Any]
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to ``target`` (its checked address), host key pinned."""
    pin = await _pinned(db, scope, target)
    keys = await _client_keys(db, owner_id, config)
    options: dict[str, Any] = {
        "username": config.get("username"),
        "known_hosts": None,
        "agent_path": None,
        "agent_forwarding": False,
        "client_keys": keys or [],
        "client_host_keys": [],
        "password": config.get("password") if keys is None else None,
        "preferred_auth": "publickey" if keys else "password,keyboard-interactive",
        "connect_timeout": CONNECT_TIMEOUT,
        "login_timeout": CONNECT_TIMEOUT,
        "keepalive_interval": 30,
        "encryption_algs": ENCRYPTION_ALGS,
    }
    if pin is not None:
        pinned_key = asyncssh.import_public_key(pin.public_key)
        options["known_hosts"] = ([pinned_key], [], [])
        options["server_host_key_algs"] = [pin.key_type]
    try:
        conn = await asyncssh.connect(target.address, target.port, **options)
    except asyncssh.HostKeyNotVerifiable:
        raise HostKeyChanged(
            f"The host key of {target.host}:{target.port} changed (pinned {pin.fingerprint if pin else '?'}); "
            "refusing to connect. If the server was reinstalled, forget the pinned key "
            "(DELETE /api/connections/{id}/host-key; an admin does it for a service) and connect again."
        ) from None
    except asyncssh.PermissionDenied:
        raise SshAuthFailed(f"SSH authentication failed for {config.get('username')}@{target.host}") from None
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise SshError(f"Could not connect to {target.host}:{target.port}: {reason}") from None
    if pin is None:
        server_key = conn.get_server_host_key()
        if server_key is not None and not await _pin(db, scope, target, server_key):
            conn.close()
            raise HostKeyChanged(
                f"The host key of {target.host}:{target.port} changed while it was being pinned; refusing to connect."
            )
    return conn


__all__ = ["HostKeyChanged", "SshAuthFailed", "SshError", "SshKey", "connect"]
