"""``GET /api/stats/public``: live public streams and users online in chat (all processes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from portal.accounts.deps import current_principal
from portal.accounts.principal import Principal

router = APIRouter(tags=["stats"])
StatProvider = Callable[[], Awaitable[int]]


class PublicStats(BaseModel):
    live_streams: int
    online_users: int


@router.get("/api/stats/public", response_model=PublicStats)
async def public_stats(request: Request, _: Annotated[Principal, Depends(current_principal)]) -> PublicStats:
    """Each figure comes from the domain that owns it; a domain not installed contributes 0."""
    providers: dict[str, StatProvider] = request.app.state.stat_providers
    values = {name: await provider() for name, provider in providers.items()}
    return PublicStats(live_streams=values.get("live_streams", 0), online_users=values.get("online_users", 0))
