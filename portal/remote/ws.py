"""The relay WebSocket routes: each authenticates (Origin included), checks ownership or service
access, takes one of the user's WebSocket slots, resolves the target through the remote-access
policy and hands over to the relay of the connection's type."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket

from portal.accounts.deps import WS_FORBIDDEN, websocket_principal
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.core.db import MAX_ID
from portal.core.errors import ApiError
from portal.core.ws import CLOSE_TOO_MANY
from portal.remote import connections as conns
from portal.remote import services as svcs
from portal.remote.context import remote_of
from portal.remote.plugins import REGISTRY, Plugin, Relay
from portal.remote.relays.registry import RELAYS
from portal.remote.relays.session import (
    CLOSE_BACKEND_FAILED,
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    RelayContext,
    close_record,
    open_record,
)

router = APIRouter()
BINARY_SUBPROTOCOL = "binary"


async def _accept(websocket: WebSocket, plugin: Plugin | None) -> None:
    """noVNC (and websockify clients) ask for the ``binary`` subprotocol; echo it when offered."""
    offered = websocket.scope.get("subprotocols") or []
    binary = plugin is not None and plugin.relay == Relay.TCP and BINARY_SUBPROTOCOL in offered
    await websocket.accept(subprotocol=BINARY_SUBPROTOCOL if binary else None)


async def _refuse(websocket: WebSocket, code: int, reason: str, plugin: Plugin | None = None) -> None:
    await _accept(websocket, plugin)
    if plugin is None or plugin.relay != Relay.TCP:
        with contextlib.suppress(Exception):
            await websocket.send_json({"type": "error", "message": reason})
    await websocket.close(code, reason[:120])


async def _run(
    websocket: WebSocket,
    principal: Principal,
    plugin: Plugin,
    host: str,
    port: int | None,
    config: dict[str, Any],
    *,
    trusted: bool,
    known_hosts_scope: str,
    connection_id: str | None = None,
    service_id: int | None = None,
) -> None:
    remote = remote_of(websocket)
    runner = RELAYS.get(plugin.relay) if plugin.relay else None
    if runner is None:
        await _refuse(websocket, CLOSE_BAD_REQUEST, f"{plugin.name} has no WebSocket relay", plugin)
        return
    if plugin.admin_only and not principal.role.at_least(Role.ADMIN):
        await _refuse(websocket, WS_FORBIDDEN, f"Only admins may use {plugin.name}", plugin)
        return
    slots = websocket.app.state.ws_slots
    if not await slots.acquire(principal.user_id):
        await _refuse(websocket, CLOSE_TOO_MANY, f"At most {slots.limit} connections per user", plugin)
        return
    try:
        target = None
        if plugin.needs_host:
            try:
                target = await remote.targets.resolve(host, port or 0, trusted=trusted)
            except ApiError as err:
                await _refuse(websocket, CLOSE_BACKEND_FAILED, err.message, plugin)
                return
        await _accept(websocket, plugin)
        ctx = RelayContext(websocket, principal, remote, plugin, config, target, known_hosts_scope)
        record_id = await open_record(ctx, connection_id=connection_id, service_id=service_id)
        try:
            await runner(ctx)
        finally:
            await close_record(ctx, record_id)
    finally:
        await slots.release(principal.user_id)


@router.websocket("/ws/user-connection/{connection_id}")
async def user_connection_socket(websocket: WebSocket, connection_id: str) -> None:
    """One of the caller's own connections, relayed by its type's relay."""
    principal = await websocket_principal(websocket)
    if principal is None:
        return
    remote = remote_of(websocket)
    async with remote.db.sessions() as session:
        try:
            row = await conns.access_connection(session, principal, connection_id)
        except ApiError as err:
            await _refuse(websocket, CLOSE_NOT_FOUND, err.message)
            return
        conns.mark_used(row)
        await session.commit()
        config = conns.full_config(remote.keyring, row)
        plugin, host, port = REGISTRY[row.type], row.host, row.port
    await _run(
        websocket,
        principal,
        plugin,
        host,
        port,
        config,
        trusted=False,
        known_hosts_scope=f"user:{principal.user_id}",
        connection_id=connection_id,
    )


@router.websocket("/ws/terminal/local")
async def local_terminal_socket(websocket: WebSocket) -> None:
    """A shell on the portal host: admins only; ``?shell=`` must be one of GET /api/shells."""
    principal = await websocket_principal(websocket)
    if principal is None:
        return
    shell = websocket.query_params.get("shell")
    await _run(
        websocket,
        principal,
        REGISTRY["terminal"],
        "",
        None,
        {"shell": shell} if shell else {},
        trusted=True,
        known_hosts_scope="local",
    )


async def _service_socket(websocket: WebSocket, service_id: int, plugin_name: str) -> None:
    principal = await websocket_principal(websocket)
    if principal is None:
        return
    if not 0 < service_id <= MAX_ID:  # an id no row can have (and PostgreSQL's integer cannot hold)
        await _refuse(websocket, CLOSE_NOT_FOUND, "Service not found")
        return
    remote = remote_of(websocket)
    async with remote.db.sessions() as session:
        try:
            service = await svcs.access_service(session, principal, service_id)
        except ApiError as err:
            await _refuse(websocket, CLOSE_NOT_FOUND, err.message)
            return
        config = svcs.service_config(remote.keyring, service)
    plugin = REGISTRY[service.plugin]
    tunnel = plugin_name == "tunnel"
    if not service.enabled or (not tunnel and plugin_name != service.plugin) or (tunnel and plugin.relay != Relay.TCP):
        await _refuse(websocket, CLOSE_BAD_REQUEST, f"Service {service_id} is not a {plugin_name} service", plugin)
        return
    await _run(
        websocket,
        principal,
        REGISTRY["tcp_tunnel"] if tunnel else plugin,
        service.host,
        service.port,
        config,
        trusted=True,
        known_hosts_scope=f"service:{service.id}",
        service_id=service.id,
    )


@router.websocket("/ws/tunnel/{service_id}")
async def tunnel_socket(websocket: WebSocket, service_id: int) -> None:
    """A raw TCP tunnel (binary frames) to a service whose traffic is relayed as TCP."""
    await _service_socket(websocket, service_id, "tunnel")


@router.websocket("/ws/{plugin}/{service_id}")
async def service_socket(websocket: WebSocket, plugin: str, service_id: int) -> None:
    """``/ws/ssh/1``, ``/ws/vnc/2``…: the service's own relay; the plugin must match the service."""
    await _service_socket(websocket, service_id, plugin)
