"""Route dependencies that resolve and check the caller: every permission rule starts here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, WebSocket

from portal.accounts.authn import CSRF_HEADER, Authenticator, AuthFailure
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.accounts.scopes import grants
from portal.core.errors import Forbidden, Unauthorized
from portal.core.origin import origin_allowed
from portal.core.ratelimit import client_ip

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403


def authenticator(request: Request) -> Authenticator:
    authn: Authenticator = request.app.state.authn
    return authn


async def optional_principal(request: Request) -> Principal | None:
    state = request.scope.setdefault("state", {})
    if "auth" not in state:
        state["auth"] = await authenticator(request).resolve(request.scope)
    result = state["auth"]
    if isinstance(result, AuthFailure):
        raise Unauthorized(result.message)
    if result is not None and result.via == "cookie" and request.method not in SAFE_METHODS:
        check_csrf(request, result)
    return result


def check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated unsafe requests must echo the session's CSRF token and come from here."""
    if not origin_allowed(request.scope, request.app.state.allowed_origins):
        raise Forbidden("Cross-origin request refused")
    sent = request.headers.get(CSRF_HEADER, "")
    expected = authenticator(request).csrf_token(principal.token_id or "")
    if not sent or sent != expected:
        raise Forbidden("Missing or invalid CSRF token")


async def current_principal(request: Request) -> Principal:
    principal = await optional_principal(request)
    if principal is None:
        raise Unauthorized("Authentication required")
    return principal


def require_role(minimum: Role) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        if not principal.role.at_least(minimum):
            raise Forbidden(f"Requires the {minimum.value} role")
        return principal

    return dependency


def require_scope(scope: str, minimum: Role = Role.USER) -> Callable[[Request], Awaitable[Principal]]:
    """The caller must hold ``minimum`` role and, when using an API key, the ``scope``."""
    role_check = require_role(minimum)

    async def dependency(request: Request) -> Principal:
        principal = await role_check(request)
        if not grants(principal.scopes, scope):
            raise Forbidden(f"API key lacks the '{scope}' scope")
        return principal

    return dependency


def ip_of(request: Request) -> str:
    return client_ip(request.scope)


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    """Authenticate a WebSocket upgrade, or close it and return None.

    Every WebSocket route calls this first: the Origin must be this portal's (cross-site
    WebSocket hijacking rides on cookies), and the caller must present valid credentials
    (cookie, bearer, ``X-API-Key`` or ``?token=``). Closes with 4403 / 4401.
    """
    if not origin_allowed(websocket.scope, websocket.app.state.allowed_origins):
        await _refuse(websocket, WS_FORBIDDEN, "origin not allowed")
        return None
    state = websocket.scope.setdefault("state", {})
    if "auth" not in state:
        state["auth"] = await websocket.app.state.authn.resolve(websocket.scope)
    result = state["auth"]
    if not isinstance(result, Principal):
        reason = result.message if isinstance(result, AuthFailure) else "authentication required"
        await _refuse(websocket, WS_UNAUTHORIZED, reason)
        return None
    return result


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` after the handshake: a close before accepting becomes a bare HTTP 403,
    and browsers show scripts neither its status nor a reason."""
    await websocket.accept()
    await websocket.close(code=code, reason=reason)
