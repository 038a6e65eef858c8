"""Runs alembic migrations programmatically, on a synchronous engine for the same URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sync_url(async_url: str) -> str:
    """The synchronous driver URL for the async one the app uses."""
    return async_url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def alembic_config(async_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(async_url).replace("%", "%%"))
    return config


def upgrade(async_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run on every start."""
    command.upgrade(alembic_config(async_url), revision)
