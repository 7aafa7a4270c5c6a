"""Same-origin checks for cookie-authenticated requests and WebSocket upgrades.

Browsers always send ``Origin`` on WebSocket upgrades and cross-site unsafe requests, so a
present Origin must name this portal (its Host, or a configured public URL). A missing Origin
means a non-browser client, which cannot be driven by another site's page.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope


def _host_header(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == b"host":
            return value.decode("latin-1").lower()
    return None


def request_origin(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == b"origin":
            return value.decode("latin-1")
    return None


def origin_allowed(scope: Scope, extra_allowed: Iterable[str] = ()) -> bool:
    """True when the request carries no Origin or an Origin of this portal."""
    origin = request_origin(scope)
    if origin is None:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    netloc = parts.netloc.lower()
    host = _host_header(scope)
    if host is not None and _same_host(netloc, parts.scheme, host):
        return True
    for allowed in extra_allowed:
        allowed_parts = urlsplit(allowed)
        if allowed_parts.scheme == parts.scheme and allowed_parts.netloc.lower() == netloc:
            return True
    return False


def _same_host(origin_netloc: str, scheme: str, host: str) -> bool:
    default = {"http": "80", "https": "443"}[scheme]
    return _with_port(origin_netloc, default) == _with_port(host, default)


def _with_port(netloc: str, default: str) -> str:
    if netloc.startswith("["):
        return netloc if "]:" in netloc else netloc + ":" + default
    return netloc if ":" in netloc else netloc + ":" + default
