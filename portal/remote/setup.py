"""Plugging remote access into the application: state and routes."""

from __future__ import annotations

from fastapi import FastAPI

from portal.config import Settings
from portal.core.services import Services
from portal.remote.context import RemoteAccess
from portal.remote.metrics_router import router as metrics_router
from portal.remote.relays import pty, ssh, tcp, telnet  # noqa: F401 - registers the relays
from portal.remote.router import router as remote_router
from portal.remote.sftp_router import install_sftp
from portal.remote.shells import router as shells_router
from portal.remote.sshkeys_router import router as sshkeys_router
from portal.remote.targets import RemoteTargets
from portal.remote.ws import router as relay_router
from portal.web.remote_pages import router as remote_pages_router


def install_remote(app: FastAPI, settings: Settings, services: Services) -> RemoteAccess:
    targets = RemoteTargets(allow_private=settings.remote_allow_private, allow_loopback=settings.remote_allow_loopback)
    remote = RemoteAccess(db=services.db, keyring=services.keyring, targets=targets, settings=settings)
    app.state.remote = remote
    for router in (remote_router, sshkeys_router, shells_router, relay_router, metrics_router):
        app.include_router(router)
    app.include_router(remote_pages_router)  # the Connections tab and the viewer pages
    install_sftp(app, settings, services)  # the SFTP browser's routes and upload body caps
    return remote
