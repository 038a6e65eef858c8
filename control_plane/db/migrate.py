"""Runs alembic migrations programmatically, on a synchronous engine for the same URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sync_url(async_url: str) -> str:
    """The synchronous driver URL for the async one the app uses."""
    return async_url.replace("sqlite+aiosqlite://", "sqlite://", 1)


RekeyDigest = Callable[[str, str | None], str]
"""``rekey(sha256_hex, tenant_id)``: the keyed digest for a plain SHA-256 token digest (tenant
id for gateway keys, None for installation-wide tokens). Migration 0003 needs it when there
are rows to convert."""


def alembic_config(async_url: str, rekey_digest: RekeyDigest | None = None) -> Config:
    config = Config()
    if rekey_digest is not None:
        config.attributes["rekey_digest"] = rekey_digest
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(async_url).replace("%", "%%"))
    return config


def upgrade(
    async_url: str, revision: str = "head", *, rekey_digest: RekeyDigest | None = None
) -> None:
    """Bring the schema to ``revision``; safe to run on every start."""
    command.upgrade(alembic_config(async_url, rekey_digest), revision)
