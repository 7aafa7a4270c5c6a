"""Settings: the only place that reads the environment (``PORTAL_*`` and an optional ``.env``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from limits import parse
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "portal:"
    secret_key: str | None = None
    bootstrap_admin: str | None = Field(default=None, description="user:password for the first superadmin")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    trusted_proxies: str = "127.0.0.1,::1"

    rate_limit_auth: str = "10/minute"
    rate_limit_api: str = "60/minute"
    login_failures_per_account: str = "5 per 15 minutes"
    login_failures_per_ip: str = "20 per 15 minutes"
    registrations_per_ip_per_day: int = 1

    jwt_ttl_hours: int = 24

    ws_max_per_user: int = 10
    ws_max_pending: int = 1000
    chat_message_rate: str = "5 per 5 seconds"
    chat_retention_days: float = 7.0
    retention_interval_seconds: float = 3600.0
    poll_check_interval_seconds: float = 5.0
    link_preview_cache_seconds: int = 3600
    ssrf_allow_loopback_ports: str = Field(
        default="",
        description=(
            "TEST ONLY. Comma-separated ports on which outbound requests (link previews, webhooks…) may "
            "reach the literal host 127.0.0.1, so tests can serve pages locally. Never set it in production: "
            "any user could then make the portal call services on those local ports."
        ),
    )
    remote_allow_private: bool = Field(
        default=True, description="users' connections may reach private networks (the point of remote access)"
    )
    remote_allow_loopback: bool = Field(
        default=False,
        description="users' connections may reach the portal host itself (127.0.0.0/8, ::1); admin services always may",
    )
    terminal_shells: str = Field(
        default="/bin/bash,/bin/sh,/usr/bin/bash,/usr/bin/zsh,/usr/bin/fish",
        description="shells an admin may open in a local terminal (those that exist on the host)",
    )
    sftp_max_upload_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="largest file one SFTP browser upload may send (streamed, not buffered)"
    )
    sftp_max_concurrent_per_user: int = Field(
        default=4, gt=0, description="SFTP browser operations (each its own SSH connection) one user may run at once"
    )
    cookie_secure: bool | None = None
    log_level: str = "info"

    @field_validator(
        "rate_limit_auth", "rate_limit_api", "login_failures_per_account", "login_failures_per_ip", "chat_message_rate"
    )
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate such as '10/minute': {value!r}") from exc
        return value

    @field_validator("ssrf_allow_loopback_ports")
    @classmethod
    def _valid_ports(cls, value: str) -> str:
        for item in filter(None, (p.strip() for p in value.split(","))):
            if not item.isdigit() or not 0 < int(item) < 65536:
                raise ValueError(f"not a port number: {item!r}")
        return value

    @property
    def ssrf_loopback_ports(self) -> frozenset[int]:
        return frozenset(int(p) for p in self.ssrf_allow_loopback_ports.split(",") if p.strip())

    @cached_property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL: SQLite under the data dir unless a URL is configured."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+asyncpg://" + url.split("://", 1)[1]
            elif url.startswith("sqlite:///"):
                url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'portal.db').resolve()}"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def load_settings() -> Settings:
    return Settings()
