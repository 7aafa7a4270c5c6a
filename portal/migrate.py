"""Running Alembic migrations from the CLI and from ``portal serve``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from portal.config import Settings

HERE = Path(__file__).parent


def alembic_config(settings: Settings) -> Config:
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)
