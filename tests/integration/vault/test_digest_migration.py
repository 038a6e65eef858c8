"""Migration 0003 turns the plain SHA-256 digests of earlier versions into keyed ones, so
tokens and gateway keys issued before it keep working (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import create_engine, select, text

from control_plane.db import migrate
from control_plane.db.engine import Database
from control_plane.db.models import AdminTokenRow, GatewayKeyRow
from control_plane.identity.admin_tokens import AdminTokens
from control_plane.settings import normalize_database_url
from control_plane.vault.digests import TokenDigests

TENANT = "01a20000-0000-7000-8000-000000000001"


def seed_version_0002(url: str) -> None:
    migrate.upgrade(url, "0002")
    engine = create_engine(migrate.sync_url(url))
    now = "2026-11-01 00:00:00+00:00"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tenants (id, slug, name, plan, state, endpoint, reason, generation,"
                " observed_generation, suspended, delete_requested, created_at, updated_at)"
                " VALUES (:id, 'acme', 'acme', 'free', 'running', NULL, NULL, 1, 1, false,"
                " false, :now, :now)"
            ),
            {"id": TENANT, "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO admin_tokens (id, name, digest, created_at)"
                " VALUES ('a1', 'initial', :digest, :now)"
            ),
            {"digest": hashlib.sha256(b"tnt_admin_old").hexdigest(), "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO gateway_keys (id, tenant_id, name, digest, hint, created_at)"
                " VALUES ('k1', :tenant, 'default', :digest, 'tgk_…0ld0', :now)"
            ),
            {"tenant": TENANT, "digest": hashlib.sha256(b"tgk_old").hexdigest(), "now": now},
        )
    engine.dispose()


async def test_old_digests_are_rekeyed_and_old_tokens_still_work(
    database_url: str, app_database_url: str
) -> None:
    url = normalize_database_url(database_url)
    app_url = normalize_database_url(app_database_url)
    await asyncio.to_thread(seed_version_0002, url)
    digests = TokenDigests.generate()
    await asyncio.to_thread(
        migrate.upgrade, url, rekey_digest=digests.rekey_sha256, app_url=app_url
    )

    db = Database(app_url)
    try:
        assert await AdminTokens(db, digests).verify("Bearer tnt_admin_old") == "a1"
        async with db.transaction(platform="test: read every tenant's keys") as session:
            admin = await session.scalar(select(AdminTokenRow))
            key = await session.scalar(select(GatewayKeyRow))
        assert admin is not None
        assert key is not None
        assert admin.digest != hashlib.sha256(b"tnt_admin_old").hexdigest()
        assert key.digest == digests.gateway_key_digest(TENANT, "tgk_old")
    finally:
        await db.close()


async def test_without_the_key_the_migration_refuses_rather_than_locking_everyone_out(
    database_url: str,
) -> None:
    url = normalize_database_url(database_url)
    await asyncio.to_thread(seed_version_0002, url)
    with pytest.raises(RuntimeError, match="token hash key"):
        await asyncio.to_thread(migrate.upgrade, url)
