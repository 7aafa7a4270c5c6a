"""The shared services of one running portal, handed to each domain's ``install`` function."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from portal.core.crypto import Keyring
from portal.core.db import Database
from portal.core.hub import Hub
from portal.core.jobs import JobRunner
from portal.core.net import NetGuard
from portal.core.presence import Presence
from portal.core.ratelimit import RateLimiter


@dataclass
class Services:
    db: Database
    keyring: Keyring
    limiter: RateLimiter
    hub: Hub
    presence: Presence
    net: NetGuard = field(default_factory=NetGuard)
    jobs: JobRunner = field(default_factory=JobRunner)
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stat_providers: dict[str, Callable[[], Awaitable[int]]] = field(default_factory=dict)
    body_limits: dict[str, int] = field(default_factory=dict)
