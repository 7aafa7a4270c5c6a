"""Plugging remote access into the application: state and routes."""

from __future__ import annotations

from fastapi import FastAPI

from portal.config import Settings
from portal.core.services import Services
from portal.remote.context import RemoteAccess
from portal.remote.router import router as remote_router
from portal.remote.sftp_router import install_sftp
from portal.remote.sshkeys_router import router as sshkeys_router
from portal.remote.targets import RemoteTargets
from portal.remote.ws import router as relay_router


def install_remote(app: FastAPI, settings: Settings, services: Services) -> RemoteAccess:
    targets = RemoteTargets(allow_private=settings.remote_allow_private, allow_loopback=settings.remote_allow_loopback)
    remote = RemoteAccess(db=services.db, keyring=services.keyring, targets=targets, settings=settings)
    app.state.remote = remote
    for router in (remote_router, sshkeys_router, relay_router):
        app.include_router(router)
    install_sftp(app, settings, services)  # the SFTP browser's routes and upload body caps
    return remote
