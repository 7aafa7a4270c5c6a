"""Users' private connections: create, read (redacted), merge-update, pin, delete, connect info.

``access_connection`` is the one ownership rule: a connection that is not the caller's is
reported as missing, so ids of other users' connections cannot even be confirmed.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.core.crypto import Keyring
from portal.core.db import utcnow
from portal.core.errors import BadRequest, Conflict, Forbidden, NotFound
from portal.remote.crypto_config import load_config, merge_config, redact_config, split_config, validate_config
from portal.remote.models import UserConnection
from portal.remote.plugins import REGISTRY, Plugin, get_plugin
from portal.remote.targets import normalise_host

MAX_CONNECTIONS_PER_USER = 200
ID_BYTES = 12  # 16 url-safe characters, e.g. aB3x_kLm9pQ2rStU


def new_connection_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def plugin_for(type_: str, principal: Principal) -> Plugin:
    plugin = get_plugin(type_)
    if plugin is None:
        raise BadRequest(f"Unknown connection type {type_!r}; see GET /api/connections/types", field="type")
    if plugin.admin_only and not principal.role.at_least(Role.ADMIN):
        raise Forbidden(f"Only admins may use {plugin.name} connections")
    return plugin


def check_host_port(plugin: Plugin, host: str | None, port: int | None) -> tuple[str, int | None]:
    if not plugin.needs_host:
        return "", None
    if not host:
        raise BadRequest("host is required", field="host")
    port = port if port is not None else plugin.default_port
    if port is None:
        raise BadRequest(f"port is required for {plugin.name} connections", field="port")
    if not 0 < port < 65536:
        raise BadRequest("port must be between 1 and 65535", field="port")
    return normalise_host(host), port


async def access_connection(session: AsyncSession, principal: Principal, connection_id: str) -> UserConnection:
    row = await session.get(UserConnection, connection_id)
    if row is None or row.owner_id != principal.user_id:
        raise NotFound("Connection not found")
    return row


async def list_connections(session: AsyncSession, owner_id: int) -> list[UserConnection]:
    rows = await session.scalars(
        select(UserConnection)
        .where(UserConnection.owner_id == owner_id)
        .order_by(UserConnection.is_pinned.desc(), func.lower(UserConnection.name), UserConnection.created_at)
    )
    return list(rows)


async def check_create_connection(
    session: AsyncSession,
    keyring: Keyring,
    principal: Principal,
    *,
    name: str,
    type_: str,
    host: str | None,
    port: int | None,
    config: dict[str, Any],
) -> UserConnection:
    plugin = plugin_for(type_, principal)
    host, port = check_host_port(plugin, host, port)
    clean = validate_config(plugin, merge_config(plugin, {}, config))
    count = await session.scalar(select(func.count()).where(UserConnection.owner_id == principal.user_id))
    if (count or 0) >= MAX_CONNECTIONS_PER_USER:
        raise Conflict(f"At most {MAX_CONNECTIONS_PER_USER} connections per user")
    config_json, secrets_enc = split_config(plugin, keyring, clean)
    row = UserConnection(
        id=new_connection_id(),
        owner_id=principal.user_id,
        name=name.strip(),
        type=plugin.type,
        host=host,
        port=port,
        config_json=config_json,
        secrets_enc=secrets_enc,
    )
    session.add(row)
    await session.flush()
    return row


def check_update_connection(
    keyring: Keyring, principal: Principal, row: UserConnection, changes: dict[str, Any]
) -> None:
    plugin = plugin_for(row.type, principal)
    if "name" in changes and changes["name"] is not None:
        row.name = str(changes["name"]).strip()
    if changes.get("host") is not None or changes.get("port") is not None:
        row.host, row.port = check_host_port(
            plugin, given_or_current(changes, "host", row.host), given_or_current(changes, "port", row.port)
        )
    if changes.get("config") is not None:
        current = load_config(keyring, row.config_json, row.secrets_enc)
        clean = validate_config(plugin, merge_config(plugin, current, changes["config"]))
        row.config_json, row.secrets_enc = split_config(plugin, keyring, clean)
    row.updated_at = utcnow()


def given_or_current(changes: dict[str, Any], name: str, current: Any) -> Any:
    """The new value of a field an update sends, or the current one when it sends none (or null);
    an empty host is a change to check (and refuse), not a way to keep the old one."""
    value = changes.get(name)
    return current if value is None else value


def _not_an_edit(row: UserConnection) -> None:
    """Pinning and connecting change no settings: write ``updated_at`` back as it is, so the
    column's ``onupdate`` does not move it."""
    flag_modified(row, "updated_at")


def do_toggle_pin(row: UserConnection) -> bool:
    row.is_pinned = not row.is_pinned
    _not_an_edit(row)
    return row.is_pinned


def full_config(keyring: Keyring, row: UserConnection) -> dict[str, Any]:
    return load_config(keyring, row.config_json, row.secrets_enc)


def connection_view(keyring: Keyring, row: UserConnection) -> dict[str, Any]:
    plugin = REGISTRY[row.type]
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type,
        "host": row.host,
        "port": row.port,
        "config": redact_config(plugin, full_config(keyring, row)),
        "is_pinned": row.is_pinned,
        "icon": plugin.icon,
        "viewer": plugin.viewer.value if plugin.viewer else None,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "last_used_at": row.last_used_at,
    }


def mark_used(row: UserConnection, when: datetime | None = None) -> None:
    row.last_used_at = when or utcnow()
    _not_an_edit(row)
