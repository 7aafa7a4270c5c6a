"""A real portal process for tests and benchmarks: uvicorn on a free loopback port, own data dir.

With ``PORTAL_TEST_BACKEND=postgres`` each server gets a fresh PostgreSQL database and a
private Redis key prefix, so the same tests cover the scale-out mode.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.peers.base import stop_process

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = os.environ.get("PORTAL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend() -> str:
    return os.environ.get("PORTAL_TEST_BACKEND", "sqlite")


def _pg(sql: str) -> None:
    """Run one statement on the PostgreSQL server, from a thread of its own: the caller may be
    inside a running event loop (Playwright's sync API keeps one in the main thread)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


class SharedBackend:
    """A database (and Redis prefix) that one or more portal processes share."""

    def __init__(self, kind: str | None = None) -> None:
        self.kind = kind or backend()
        self.data_dir = Path(tempfile.mkdtemp(prefix="portal-test-"))
        self.name = "portal_test_" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(32)
        if self.kind == "postgres":
            _pg(f'CREATE DATABASE "{self.name}"')

    def env(self) -> dict[str, str]:
        env = {"PORTAL_DATA_DIR": str(self.data_dir), "PORTAL_SECRET_KEY": self.secret_key}
        if self.kind == "postgres":
            dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + self.name
            env["PORTAL_DATABASE_URL"] = dsn
            env["PORTAL_REDIS_URL"] = REDIS_URL
            env["PORTAL_REDIS_PREFIX"] = self.name + ":"
        return env

    def close(self) -> None:
        if self.kind == "postgres":
            _pg(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            _drop_redis_prefix(self.name + ":")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _drop_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class PortalServer:
    """One ``portal serve`` process."""

    admin_user = "root"
    admin_password = "root-password-1"

    def __init__(self, shared: SharedBackend | None = None, env: dict[str, str] | None = None) -> None:
        self.shared = shared or SharedBackend()
        self._owns_shared = shared is None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.shared.data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> PortalServer:
        env = {
            **os.environ,
            "PORTAL_BOOTSTRAP_ADMIN": f"{self.admin_user}:{self.admin_password}",
            "PORTAL_RATE_LIMIT_AUTH": "100000/minute",
            "PORTAL_RATE_LIMIT_API": "100000/minute",
            "PORTAL_LOG_LEVEL": "warning",
            # the test peers (sshd, VNC, echo servers) listen on 127.0.0.1
            "PORTAL_REMOTE_ALLOW_LOOPBACK": "true",
            **self.shared.env(),
            **self.extra_env,
        }
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portal", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"portal exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"portal did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        if self._owns_shared:
            self.shared.close()

    def __enter__(self) -> PortalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
