"""Fixtures shared by the remote-access tests (services, connections, SSH keys, relays)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import aio
from tests.conftest import UserClient
from tests.portal_server import PortalServer
from tests.remote.terminal_client import TerminalClient, open_terminal


def database_dump(server: PortalServer) -> bytes:
    """Every byte the server's database holds: the SQLite files, or every PostgreSQL row as text."""
    env = server.shared.env()
    if "PORTAL_DATABASE_URL" not in env:
        data = b"".join(
            path.read_bytes()
            for path in (server.shared.data_dir / "portal.db", server.shared.data_dir / "portal.db-wal")
            if path.exists()
        )
        assert data, "no SQLite database found in the data dir"
        return data
    import asyncpg

    async def dump() -> bytes:
        conn = await asyncpg.connect(env["PORTAL_DATABASE_URL"])
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            lines = []
            for table in tables:
                lines += [r["line"] for r in await conn.fetch(f'SELECT t::text AS line FROM "{table["tablename"]}" t')]
            return "\n".join(lines).encode()
        finally:
            await conn.close()

    return aio.run(dump())


@pytest.fixture
def db_dump(portal: PortalServer) -> Callable[[], bytes]:
    """``db_dump()``: the shared test server's database contents, to look for secrets at rest."""
    return lambda: database_dump(portal)


@pytest.fixture
def terminals(portal: PortalServer) -> Iterator[Callable[..., TerminalClient]]:
    """``terminals(user, path, **kw)``: an open terminal relay socket (``user`` None: no token), closed after
    the test."""
    opened: list[TerminalClient] = []

    def open_socket(user: UserClient | None, path: str, **kw: Any) -> TerminalClient:
        client = open_terminal(portal.base_url, path, user.token if user else None, **kw)
        opened.append(client)
        return client

    yield open_socket
    for client in opened:
        client.close()
