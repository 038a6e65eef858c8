"""Runs alembic migrations programmatically, on a synchronous engine for the same URL.

On PostgreSQL the schema may belong to one role (the migration URL, the owner) while the
application connects as another that does not own the tables, so row-level security binds
it and it cannot switch security off. After migrating, :func:`upgrade` grants the
application role what it needs on every table and sequence — data access, nothing else —
and nothing but reading and appending on the audit log. It also reports whether the
application role would bypass row security (a superuser, or ``BYPASSRLS``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text

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
    async_url: str,
    revision: str = "head",
    *,
    rekey_digest: RekeyDigest | None = None,
    app_url: str | None = None,
) -> None:
    """Bring the schema to ``revision`` (as the owner, ``async_url``); safe to run on every
    start. With ``app_url`` naming another PostgreSQL role, grant that role data access."""
    command.upgrade(alembic_config(async_url, rekey_digest), revision)
    if app_url is None or not async_url.startswith("postgresql"):
        return
    owner, app = urlsplit(async_url).username, urlsplit(app_url).username
    if app and app != owner:
        grant_application_role(async_url, app)


def grant_application_role(owner_url: str, role: str) -> None:
    engine = create_engine(sync_url(owner_url), poolclass=pool.NullPool)
    quoted = '"' + role.replace('"', '""') + '"'
    with engine.begin() as connection:
        for statement in (
            f"GRANT USAGE ON SCHEMA public TO {quoted}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
            f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {quoted}",
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {quoted}",
        ):
            connection.execute(text(statement))
    engine.dispose()


def bypasses_row_security(url: str) -> bool:
    """Whether the role of ``url`` (PostgreSQL) is a superuser or has ``BYPASSRLS``."""
    if not url.startswith("postgresql"):
        return False
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).first()
    engine.dispose()
    return bool(row and row[0])
