"""What every relay shares: the context handed to it, and the per-session record of who relayed
how many bytes to where for how long (admin metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket

from portal.accounts.principal import Principal
from portal.core.db import utcnow
from portal.remote.context import RemoteAccess
from portal.remote.models import RelaySession
from portal.remote.plugins.base import Plugin
from portal.remote.targets import Target

CLOSE_BACKEND_FAILED = 1011  # the backend could not be reached, refused us, or failed
CLOSE_BAD_REQUEST = 4400  # nothing to relay to (no relay for this type, bad config)
CLOSE_NOT_FOUND = 4404


@dataclass
class RelayContext:
    websocket: WebSocket  # accepted (with the ``binary`` subprotocol when the client asked for it)
    principal: Principal
    remote: RemoteAccess
    plugin: Plugin
    config: dict[str, Any]  # decrypted: secrets included, never send it to the client
    target: Target | None  # None for relays that need no network target (local PTY)
    known_hosts_scope: str  # "user:{id}" or "service:{id}": where pinned SSH host keys live
    bytes_in: int = 0  # browser -> backend
    bytes_out: int = 0  # backend -> browser
    close_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


async def open_record(ctx: RelayContext, *, connection_id: str | None, service_id: int | None) -> int:
    target = f"{ctx.target.host}:{ctx.target.port}" if ctx.target else "local"
    async with ctx.remote.db.sessions() as session:
        row = RelaySession(
            user_id=ctx.principal.user_id,
            kind=ctx.plugin.type,
            target=target[:300],
            connection_id=connection_id,
            service_id=service_id,
        )
        session.add(row)
        await session.commit()
        return row.id


async def close_record(ctx: RelayContext, record_id: int) -> None:
    async with ctx.remote.db.sessions() as session:
        row = await session.get(RelaySession, record_id)
        if row is not None:
            row.ended_at = utcnow()
            row.bytes_in = ctx.bytes_in
            row.bytes_out = ctx.bytes_out
            row.close_reason = ctx.close_reason[:200]
            await session.commit()
