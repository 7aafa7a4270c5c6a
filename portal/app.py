"""The application factory: routers, middleware, and the lifespan that starts and stops services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from pydantic import BaseModel

from portal import __version__
from portal.accounts import bootstrap
from portal.accounts.authn import Authenticator, Generations
from portal.accounts.profile_router import router as profile_router
from portal.accounts.router import router as accounts_router
from portal.accounts.service import LoginPolicy
from portal.accounts.users_router import router as users_router
from portal.activity.router import router as activity_router
from portal.chat.setup import install_chat
from portal.config import Settings
from portal.core.bodylimit import BodyLimitMiddleware
from portal.core.crypto import Keyring, load_master_keys
from portal.core.db import Database
from portal.core.errors import install_error_handlers
from portal.core.headers import SecurityHeadersMiddleware
from portal.core.hub import create_hub
from portal.core.net import NetGuard
from portal.core.presence import create_presence
from portal.core.ratelimit import RateLimiter, RateLimitMiddleware
from portal.core.services import Services
from portal.core.ws import WsSlots
from portal.remote.setup import install_remote
from portal.stats.router import router as stats_router
from portal.web.router import mount_static
from portal.web.router import router as web_router

log = logging.getLogger("portal")

AUTH_PATHS = ("/api/token", "/api/register", "/login", "/register")


class Health(BaseModel):
    status: str
    timestamp: datetime
    version: str


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keyring = Keyring(load_master_keys(settings.secret_key, settings.data_dir))
    db = Database(settings.resolved_database_url)
    limiter = RateLimiter(settings.redis_url, settings.redis_prefix)
    generations = Generations(settings.redis_url, settings.redis_prefix)
    authn = Authenticator(db, keyring, generations, timedelta(hours=settings.jwt_ttl_hours))
    hub = create_hub(settings.redis_url, settings.redis_prefix)
    presence = create_presence(settings.redis_url, settings.redis_prefix)
    if settings.ssrf_loopback_ports:
        ports = settings.ssrf_allow_loopback_ports
        log.warning("outbound requests may reach 127.0.0.1 on ports %s (a test-only setting)", ports)
    net = NetGuard(allow_loopback_ports=settings.ssrf_loopback_ports)
    services = Services(db=db, keyring=keyring, limiter=limiter, hub=hub, presence=presence, net=net)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        await presence.start()
        await bootstrap.ensure_first_admin(db, settings)
        for hook in services.startup:
            await hook()
        await services.jobs.start()
        log.info("portal %s ready", __version__)
        try:
            yield
        finally:
            await services.jobs.stop()
            for hook in services.shutdown:
                await hook()
            await presence.stop()
            await hub.stop()
            await generations.close()
            await limiter.close()
            await db.dispose()

    app = FastAPI(
        title="Open Relay Portal",
        version=__version__,
        description="Remote access, live streaming and community chat behind one login.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.keyring = keyring
    app.state.limiter = limiter
    app.state.authn = authn
    app.state.hub = hub
    app.state.allowed_origins = [settings.public_url] if settings.public_url else []
    app.state.login_policy = LoginPolicy(limiter, settings.login_failures_per_account, settings.login_failures_per_ip)
    app.state.ws_slots = WsSlots(presence, settings.ws_max_per_user)
    app.state.stat_providers = services.stat_providers

    install_error_handlers(app)

    @app.get("/health", response_model=Health, tags=["system"])
    async def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok", timestamp=datetime.now(UTC), version=__version__)

    for router in (profile_router, accounts_router, users_router, activity_router, stats_router, web_router):
        app.include_router(router)
    install_chat(app, settings, services)
    install_remote(app, settings, services)
    mount_static(app, settings)

    app.add_middleware(BodyLimitMiddleware, overrides=services.body_limits)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=limiter,
        auth_rate=settings.rate_limit_auth,
        api_rate=settings.rate_limit_api,
        auth_paths=AUTH_PATHS,
        identify=authn.identify,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app
