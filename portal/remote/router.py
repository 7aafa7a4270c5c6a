"""REST routes of services (admin-defined) and connections (each user's own)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.activity.service import record_activity, record_audit
from portal.core.db import MAX_ID, get_session
from portal.core.errors import BadRequest
from portal.remote import connections as conns
from portal.remote import services as svcs
from portal.remote import ssh_client, sshkeys
from portal.remote.context import remote_of
from portal.remote.models import Service
from portal.remote.plugins import REGISTRY
from portal.remote.schemas import (
    ConnectInfo,
    ConnectionCreate,
    ConnectionList,
    ConnectionOut,
    ConnectionUpdate,
    Health,
    HostKeyForgotten,
    HostKeyOut,
    PinOut,
    ServiceCreate,
    ServiceList,
    ServiceOut,
    ServiceUpdate,
    Success,
    TypesOut,
)

router = APIRouter(tags=["remote access"])
Session = Annotated[AsyncSession, Depends(get_session)]
ConnReader = Annotated[Principal, Depends(require_scope("connections:read"))]
ConnWriter = Annotated[Principal, Depends(require_scope("connections:write"))]
SvcReader = Annotated[Principal, Depends(require_scope("services:read"))]
SvcAdmin = Annotated[Principal, Depends(require_scope("services:write", Role.ADMIN))]
ServiceId = Annotated[int, Path(ge=1, le=MAX_ID)]


# -- connection types ------------------------------------------------------------------------------
@router.get("/api/connections/types", response_model=TypesOut)
async def connection_types(principal: ConnReader) -> TypesOut:
    """Every connection type with its JSON Schema, for generating forms."""
    admin = principal.role.at_least(Role.ADMIN)
    return TypesOut(types={t: p.describe() for t, p in REGISTRY.items() if admin or not p.admin_only})


# -- user connections ------------------------------------------------------------------------------
def _out(request: Request, row: Any) -> ConnectionOut:
    return ConnectionOut.model_validate(conns.connection_view(remote_of(request).keyring, row))


@router.get("/api/connections", response_model=ConnectionList)
async def list_connections(request: Request, principal: ConnReader, session: Session) -> ConnectionList:
    """The caller's connections, pinned first, then by name."""
    rows = await conns.list_connections(session, principal.user_id)
    return ConnectionList(connections=[_out(request, r) for r in rows])


@router.post("/api/connections", response_model=ConnectionOut, status_code=201)
async def create_connection(
    body: ConnectionCreate, request: Request, principal: ConnWriter, session: Session
) -> ConnectionOut:
    row = await conns.check_create_connection(
        session,
        remote_of(request).keyring,
        principal,
        name=body.name,
        type_=body.type,
        host=body.host,
        port=body.port,
        config=body.config,
    )
    await sshkeys.check_key_reference(session, principal.user_id, conns.full_config(remote_of(request).keyring, row))
    record_activity(
        session,
        "connection_created",
        user_id=principal.user_id,
        username=principal.user.username,
        details=f"{row.type} {row.name}",
    )
    await session.commit()
    return _out(request, row)


@router.get("/api/connections/{connection_id}", response_model=ConnectionOut)
async def get_connection(
    connection_id: str, request: Request, principal: ConnReader, session: Session
) -> ConnectionOut:
    """One connection; secret config fields appear only as ``has_<field>``."""
    return _out(request, await conns.access_connection(session, principal, connection_id))


@router.put("/api/connections/{connection_id}", response_model=ConnectionOut)
async def update_connection(
    connection_id: str, body: ConnectionUpdate, request: Request, principal: ConnWriter, session: Session
) -> ConnectionOut:
    """Config is merged with the stored one: omitted (or empty) secrets keep their value, null clears."""
    row = await conns.access_connection(session, principal, connection_id)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise BadRequest("Nothing to change")
    keyring = remote_of(request).keyring
    conns.check_update_connection(keyring, principal, row, changes)
    await sshkeys.check_key_reference(session, principal.user_id, conns.full_config(keyring, row))
    await session.commit()
    return _out(request, row)


@router.delete("/api/connections/{connection_id}", response_model=Success)
async def delete_connection(connection_id: str, principal: ConnWriter, session: Session) -> Success:
    row = await conns.access_connection(session, principal, connection_id)
    await session.delete(row)
    record_activity(
        session, "connection_deleted", user_id=principal.user_id, username=principal.user.username, details=row.name
    )
    await session.commit()
    return Success()


@router.post("/api/connections/{connection_id}/pin", response_model=PinOut)
async def toggle_pin(connection_id: str, principal: ConnWriter, session: Session) -> PinOut:
    row = await conns.access_connection(session, principal, connection_id)
    pinned = conns.do_toggle_pin(row)
    await session.commit()
    return PinOut(is_pinned=pinned)


@router.get("/api/connections/{connection_id}/host-key", response_model=HostKeyOut)
async def get_host_key(connection_id: str, request: Request, principal: ConnReader, session: Session) -> HostKeyOut:
    """The SSH host key pinned for this connection's host and port on first use, if any."""
    row = await conns.access_connection(session, principal, connection_id)
    pin = await ssh_client.pinned_host_key(remote_of(request).db, f"user:{principal.user_id}", row.host, row.port or 0)
    if pin is None:
        return HostKeyOut(pinned=False)
    return HostKeyOut(
        pinned=True,
        key_type=pin.key_type,
        fingerprint=pin.fingerprint,
        public_key=pin.public_key,
        pinned_at=pin.created_at,
    )


@router.delete("/api/connections/{connection_id}/host-key", response_model=HostKeyForgotten)
async def forget_host_key(
    connection_id: str, request: Request, principal: ConnWriter, session: Session
) -> HostKeyForgotten:
    """Forget the pinned host key (after a reinstall): the next connection pins the key it meets."""
    row = await conns.access_connection(session, principal, connection_id)
    removed = await ssh_client.forget_host_key(
        remote_of(request).db, f"user:{principal.user_id}", row.host, row.port or 0
    )
    if removed:
        record_activity(
            session,
            "ssh_host_key_forgotten",
            user_id=principal.user_id,
            username=principal.user.username,
            details=f"{row.host}:{row.port}",
        )
        await session.commit()
    return HostKeyForgotten(removed=removed)


@router.get("/api/connections/{connection_id}/connect", response_model=ConnectInfo)
async def connect_info(connection_id: str, request: Request, principal: ConnReader, session: Session) -> ConnectInfo:
    """What a viewer needs: the WebSocket URL and the viewer page (or, without one, the address)."""
    keyring = remote_of(request).keyring
    row = await conns.access_connection(session, principal, connection_id)
    plugin = REGISTRY[row.type]
    view = conns.connection_view(keyring, row)
    config = conns.full_config(keyring, row)
    public_key = await sshkeys.public_key_of(session, principal.user_id, config.get("ssh_key_id"))
    info = None
    if plugin.viewer is None:
        address = host_port(row.host, row.port)
        info = {
            "message": f"{plugin.name} has no web viewer: connect your client to {address or 'the portal host'}, "
            f"or tunnel it through {f'/ws/user-connection/{row.id}' if plugin.relay else 'your network'}.",
            "host": row.host,
            "port": row.port,
            "address": address,
        }
    conns.mark_used(row)
    await session.commit()
    return ConnectInfo(
        connection={k: view[k] for k in ("id", "type", "name", "host", "port", "config")},
        websocket_url=f"/ws/user-connection/{row.id}" if plugin.relay else None,
        viewer=plugin.viewer.value if plugin.viewer else None,
        viewer_url=plugin.viewer_url(row.id),
        ssh_public_key=public_key,
        info=info,
    )


def host_port(host: str, port: int | None) -> str | None:
    """``host:port`` as a client takes it (IPv6 literals in brackets); None without a host."""
    if not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


# -- services --------------------------------------------------------------------------------------
def _service_out(request: Request, principal: Principal, service: Service) -> ServiceOut:
    """Admins get host, port, access rules and the redacted config; others lack those fields
    (the routes drop unset fields)."""
    admin = principal.role.at_least(Role.ADMIN)
    return ServiceOut.model_validate(svcs.service_view(remote_of(request).keyring, service, admin=admin))


@router.get("/api/services", response_model=ServiceList, response_model_exclude_unset=True)
async def list_services(request: Request, principal: SvcReader, session: Session) -> ServiceList:
    """Services the caller may use (role and, for API keys, scopes)."""
    rows = await svcs.list_services(session, principal)
    return ServiceList(services=[_service_out(request, principal, s) for s in rows])


@router.get("/api/services/{service_id}", response_model=ServiceOut, response_model_exclude_unset=True)
async def get_service(service_id: ServiceId, request: Request, principal: SvcReader, session: Session) -> ServiceOut:
    return _service_out(request, principal, await svcs.visible_service(session, principal, service_id))


@router.get("/api/services/{service_id}/health", response_model=Health)
async def service_health(service_id: ServiceId, request: Request, principal: SvcReader, session: Session) -> Health:
    """A live probe: TCP connect, and for web services one HTTP request (5 s timeout)."""
    service = await svcs.access_service(session, principal, service_id)
    remote = remote_of(request)
    return Health.model_validate(await svcs.probe(remote.targets, service, remote.keyring))


@router.post("/api/services", response_model=ServiceOut, status_code=201, response_model_exclude_unset=True)
async def create_service(body: ServiceCreate, request: Request, principal: SvcAdmin, session: Session) -> ServiceOut:
    service = await svcs.check_create_service(session, remote_of(request).keyring, body.model_dump())
    _audit(session, principal, "service_created", service, {"plugin": service.plugin, "path": service.path})
    await session.commit()
    return _service_out(request, principal, service)


@router.put("/api/services/{service_id}", response_model=ServiceOut, response_model_exclude_unset=True)
async def update_service(
    service_id: ServiceId, body: ServiceUpdate, request: Request, principal: SvcAdmin, session: Session
) -> ServiceOut:
    service = await svcs.visible_service(session, principal, service_id)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise BadRequest("Nothing to change")
    await svcs.check_update_service(session, remote_of(request).keyring, service, changes)
    _audit(session, principal, "service_updated", service, {"fields": sorted(changes)})
    await session.commit()
    return _service_out(request, principal, service)


@router.delete("/api/services/{service_id}", response_model=Success)
async def delete_service(service_id: ServiceId, principal: SvcAdmin, session: Session) -> Success:
    service = await svcs.visible_service(session, principal, service_id)
    _audit(session, principal, "service_deleted", service, {"plugin": service.plugin})
    await session.delete(service)
    await session.commit()
    return Success()


def _audit(session: AsyncSession, principal: Principal, action: str, service: Service, details: dict[str, Any]) -> None:
    record_audit(
        session,
        action,
        actor_id=principal.user_id,
        actor_username=principal.user.username,
        target_type="service",
        target_id=service.id,
        target_label=service.name,
        details=details,
    )
