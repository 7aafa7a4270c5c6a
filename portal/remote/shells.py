"""The shells an admin may open in a local terminal: ``PORTAL_TERMINAL_SHELLS``, limited to those
that exist (and are executable) on this host. ``GET /api/shells`` lists them for the viewer."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.accounts.roles import Role
from portal.config import Settings
from portal.remote.context import remote_of

router = APIRouter(tags=["remote access"])
Admin = Annotated[Principal, Depends(require_scope("connections:read", Role.ADMIN))]


def allowed_shells(settings: Settings) -> list[str]:
    """The configured shells present on this host, in the configured order (the first is the default)."""
    shells: list[str] = []
    for item in settings.terminal_shells.split(","):
        path = item.strip()
        if path and os.path.isabs(path) and path not in shells and os.path.isfile(path) and os.access(path, os.X_OK):
            shells.append(path)
    return shells


class ShellsOut(BaseModel):
    shells: list[str]
    default: str | None


@router.get("/api/shells", response_model=ShellsOut)
async def list_shells(request: Request, principal: Admin) -> ShellsOut:
    """The shells ``/ws/terminal/local?shell=`` accepts (admins only)."""
    shells = allowed_shells(remote_of(request).settings)
    return ShellsOut(shells=shells, default=shells[0] if shells else None)
