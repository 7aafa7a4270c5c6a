"""The relay entry point for each relay kind, filled at import by the relay modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from portal.remote.plugins.base import Relay

if TYPE_CHECKING:
    from portal.remote.relays.session import RelayContext

RelayRunner = Callable[["RelayContext"], Awaitable[None]]
RELAYS: dict[Relay, RelayRunner] = {}


def relay(kind: Relay) -> Callable[[RelayRunner], RelayRunner]:
    def register(fn: RelayRunner) -> RelayRunner:
        if kind in RELAYS:
            raise ValueError(f"duplicate relay for {kind}")
        RELAYS[kind] = fn
        return fn

    return register
