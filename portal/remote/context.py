"""The remote-access state of one running portal, kept on ``app.state.remote``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.requests import HTTPConnection

from portal.config import Settings
from portal.core.crypto import Keyring
from portal.core.db import Database
from portal.remote.targets import RemoteTargets


@dataclass
class RemoteAccess:
    db: Database
    keyring: Keyring
    targets: RemoteTargets
    settings: Settings


def remote_of(conn: Request | HTTPConnection) -> RemoteAccess:
    remote: RemoteAccess = conn.app.state.remote
    return remote
