"""Admin-defined services: CRUD, who may see them, and the live health probe."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.accounts.scopes import grants
from portal.core.crypto import Keyring
from portal.core.errors import ApiError, BadRequest, Conflict, NotFound
from portal.remote.connections import check_host_port, given_or_current
from portal.remote.crypto_config import load_config, merge_config, redact_config, split_config, validate_config
from portal.remote.models import Service
from portal.remote.plugins import REGISTRY, Plugin, Viewer, get_plugin
from portal.remote.targets import RemoteTargets

_PATH = re.compile(r"^/[a-z0-9][a-z0-9_-]{0,63}$")
PROBE_TIMEOUT = 5.0
HTTP_VIEWERS = frozenset({Viewer.BROWSER, Viewer.PROXMOX, Viewer.MEDIA})


def service_plugin(type_: str) -> Plugin:
    plugin = get_plugin(type_)
    if plugin is None:
        raise BadRequest(f"Unknown plugin {type_!r}; see GET /api/connections/types", field="plugin")
    return plugin


def path_from_name(name: str) -> str:
    """``Home Server`` -> ``/home-server``: always a valid path, however long or exotic the name."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:64].rstrip("-_")
    return "/" + (slug or "service")


def check_path(path: str) -> str:
    path = path.strip().lower()
    if not _PATH.match(path):
        raise BadRequest("path must look like /homeserver (lowercase letters, digits, - and _)", field="path")
    return path


def may_use(principal: Principal, service: Service) -> bool:
    """Enabled, the caller's role is high enough, and an API key holds the service's scope."""
    if not service.enabled and not principal.role.at_least(Role.ADMIN):
        return False
    if not principal.role.at_least(Role(service.min_role)):
        return False
    if not grants(principal.scopes, "services:read"):
        return False
    return not service.scope or grants(principal.scopes, service.scope)


def may_see(principal: Principal, service: Service) -> bool:
    """Admins see every service, whatever its state or ``min_role``, since they manage them (an
    admin could otherwise create a superadmin-only service and lose it); others see what they
    may use. An API key sees only services whose scope it holds."""
    if service.scope and not grants(principal.scopes, service.scope):
        return False
    return principal.role.at_least(Role.ADMIN) or may_use(principal, service)


async def access_service(session: AsyncSession, principal: Principal, service_id: int) -> Service:
    """A service the caller may use (health probe, relays); others are reported missing."""
    service = await session.get(Service, service_id)
    if service is None or not may_use(principal, service):
        raise NotFound("Service not found")
    return service


async def visible_service(session: AsyncSession, principal: Principal, service_id: int) -> Service:
    """A service the caller may see (and, as an admin, change)."""
    service = await session.get(Service, service_id)
    if service is None or not may_see(principal, service):
        raise NotFound("Service not found")
    return service


async def list_services(session: AsyncSession, principal: Principal) -> list[Service]:
    rows = await session.scalars(select(Service).order_by(Service.category, Service.name, Service.id))
    return [s for s in rows if may_see(principal, s)]


async def _path_taken(session: AsyncSession, path: str, except_id: int | None = None) -> bool:
    found = await session.scalar(select(Service.id).where(Service.path == path))
    return found is not None and found != except_id


async def check_create_service(session: AsyncSession, keyring: Keyring, fields: dict[str, Any]) -> Service:
    plugin = service_plugin(fields["plugin"])
    host, port = check_host_port(plugin, fields.get("host"), fields.get("port"))
    path = check_path(fields.get("path") or path_from_name(fields["name"]))
    if await _path_taken(session, path):
        raise Conflict(f"A service already uses the path {path}", field="path")
    clean = validate_config(plugin, merge_config(plugin, {}, fields.get("config") or {}))
    config_json, secrets_enc = split_config(plugin, keyring, clean)
    service = Service(
        name=fields["name"].strip(),
        plugin=plugin.type,
        host=host,
        port=port,
        path=path,
        icon=fields.get("icon") or plugin.icon,
        category=fields.get("category") or plugin.category,
        description=fields.get("description") or "",
        enabled=fields.get("enabled", True),
        min_role=fields.get("min_role") or Role.USER.value,
        scope=fields.get("scope") or None,
        config_json=config_json,
        secrets_enc=secrets_enc,
    )
    session.add(service)
    await session.flush()
    return service


async def check_update_service(
    session: AsyncSession, keyring: Keyring, service: Service, changes: dict[str, Any]
) -> None:
    plugin = service_plugin(service.plugin)
    for name in ("name", "icon", "category", "description", "enabled", "min_role"):
        if changes.get(name) is not None:
            setattr(service, name, changes[name].strip() if isinstance(changes[name], str) else changes[name])
    if "scope" in changes:
        service.scope = changes["scope"] or None
    if changes.get("path") is not None:
        path = check_path(changes["path"])
        if await _path_taken(session, path, service.id):
            raise Conflict(f"A service already uses the path {path}", field="path")
        service.path = path
    if changes.get("host") is not None or changes.get("port") is not None:
        service.host, service.port = check_host_port(
            plugin, given_or_current(changes, "host", service.host), given_or_current(changes, "port", service.port)
        )
    if changes.get("config") is not None:
        current = load_config(keyring, service.config_json, service.secrets_enc)
        clean = validate_config(plugin, merge_config(plugin, current, changes["config"]))
        service.config_json, service.secrets_enc = split_config(plugin, keyring, clean)


def service_config(keyring: Keyring, service: Service) -> dict[str, Any]:
    return load_config(keyring, service.config_json, service.secrets_enc)


def service_view(keyring: Keyring, service: Service, *, admin: bool) -> dict[str, Any]:
    plugin = REGISTRY[service.plugin]
    view: dict[str, Any] = {
        "id": service.id,
        "name": service.name,
        "plugin": service.plugin,
        "path": service.path,
        "icon": service.icon,
        "category": service.category,
        "description": service.description,
        "enabled": service.enabled,
        "websocket_url": f"/ws/{'tunnel' if service.plugin == 'tcp_tunnel' else service.plugin}/{service.id}"
        if plugin.relay
        else None,
    }
    if admin:
        view.update(
            host=service.host,
            port=service.port,
            min_role=service.min_role,
            scope=service.scope,
            config=redact_config(plugin, service_config(keyring, service)),
        )
    return view


async def probe(targets: RemoteTargets, service: Service, keyring: Keyring) -> dict[str, Any]:
    """Connect to the backend (and for web types send one HTTP request); healthy when it answers."""
    plugin = REGISTRY[service.plugin]
    if not plugin.needs_host:
        return {"healthy": True, "latency_ms": 0, "detail": "runs on the portal host"}
    assert service.port is not None
    started = time.perf_counter()
    try:
        target = await targets.resolve(service.host, service.port, trusted=True)
        config = service_config(keyring, service)
        is_http = plugin.viewer in HTTP_VIEWERS
        tls = _tls_context(config) if is_http and web_scheme(plugin, config) == "https" else None
        opened = asyncio.open_connection(
            target.address, target.port, ssl=tls, server_hostname=service.host if tls else None
        )
        reader, writer = await asyncio.wait_for(opened, PROBE_TIMEOUT)
        try:
            detail = "TCP connection accepted"
            if is_http:
                detail = await _http_probe(reader, writer, service.host, config)
        finally:
            writer.close()
    except (TimeoutError, OSError, ApiError, ValueError) as exc:
        return {"healthy": False, "latency_ms": None, "detail": failure_detail(exc)[:200]}
    return {"healthy": True, "latency_ms": round((time.perf_counter() - started) * 1000), "detail": detail}


def failure_detail(exc: Exception) -> str:
    """Why a probe failed, in words an admin can act on (not ``[Errno 111] Connect call failed``)."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens on that port"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ApiError):
        return exc.message
    if isinstance(exc, OSError):
        return f"unreachable: {exc.strerror or exc}"
    return str(exc)


def web_scheme(plugin: Plugin, config: dict[str, Any]) -> str:
    """Proxmox VE serves its UI over HTTPS only (port 8006); the other web types say or default to http."""
    scheme = config.get("scheme") or plugin.presets.get("config", {}).get("scheme")
    return str(scheme or ("https" if plugin.type in ("https", "proxmox") else "http"))


def _tls_context(config: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not config.get("verify_tls", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _http_probe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, config: dict[str, Any]
) -> str:
    path = str(config.get("path") or "/")
    writer.write(f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError("not an HTTP server")
    if int(parts[1]) >= 500:
        raise ValueError(f"HTTP {parts[1]}")
    return f"HTTP {parts[1]}"
