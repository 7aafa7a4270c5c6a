"""API-key scopes: ``*`` or a comma-separated list such as ``profile:read,keys``.

A granted scope ``area`` (or ``area:*``) covers ``area:read`` and ``area:write``; ``*`` covers
everything. Routes declare the scope they need with ``require_scope("area:read")``.
"""

from __future__ import annotations

import re

KNOWN_AREAS = (
    "profile",
    "tokens",
    "keys",
    "users",
    "activity",
    "audit",
    "chat",
    "moderation",
    "services",
    "connections",
    "ssh_keys",
)
_SCOPE = re.compile(r"^[a-z][a-z0-9_-]*(:(read|write|\*))?$")


def parse_scopes(raw: str) -> list[str]:
    """Normalise and validate a scopes string; raises ValueError naming the bad entry."""
    items = [s.strip().lower() for s in raw.split(",") if s.strip()]
    if not items:
        raise ValueError("at least one scope is required")
    if "*" in items:
        return ["*"]
    for item in items:
        if not _SCOPE.match(item):
            raise ValueError(f"invalid scope {item!r}")
    return sorted(set(items))


def grants(granted: str, needed: str) -> bool:
    """Whether the scopes string ``granted`` covers the route scope ``needed`` (``area:read``)."""
    area, _, _action = needed.partition(":")
    for scope in granted.split(","):
        scope = scope.strip()
        if scope in ("*", needed, area, f"{area}:*"):
            return True
    return False


def is_subset(requested: str, held: str) -> bool:
    """A key may only mint keys whose every scope it holds itself."""
    if held.strip() == "*":
        return True
    if requested.strip() == "*":
        return False
    for scope in requested.split(","):
        area, _, action = scope.strip().partition(":")
        needed = [f"{area}:read", f"{area}:write"] if action in ("", "*") else [scope.strip()]
        if not all(grants(held, n) for n in needed):
            return False
    return True
