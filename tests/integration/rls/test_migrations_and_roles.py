"""Migrations and the two roles under row-level security: a data migration written after
the policies still reaches every tenant's rows (the migration session is in platform mode),
and the control plane says so loudly when its own role would bypass the policies."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from litestar.testing import AsyncTestClient
from psycopg import sql

from control_plane.app import create_app
from control_plane.db import migrate
from control_plane.settings import load_settings, normalize_database_url
from tests import services

pytestmark = pytest.mark.postgres

BYPASS = "tenantry_bypass"

PROBE = '''"""probe: a data migration after row-level security"""
from alembic import context, op
import sqlalchemy as sa

revision = "probe"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    renamed = op.get_bind().execute(sa.text("UPDATE tenants SET name = name || '+'"))
    context.config.attributes["renamed"] = renamed.rowcount


def downgrade() -> None:
    pass
'''


def add_tenants(owner_url: str, *slugs: str) -> None:
    with psycopg.connect(owner_url) as conn:
        conn.execute("SET app.platform = 'on'")
        for n, slug in enumerate(slugs, 1):
            conn.execute(
                "INSERT INTO tenants (id, slug, name, plan, state, generation,"
                " observed_generation, suspended, delete_requested, created_at, updated_at)"
                " VALUES (%s, %s, %s, 'free', 'running', 1, 1, false, false, now(), now())",
                (f"01a20000-0000-7000-8000-00000000000{n}", slug, slug),
            )


def test_a_data_migration_after_the_policies_reaches_every_tenant(
    postgres_url: str, tmp_path: Path
) -> None:
    url = normalize_database_url(postgres_url)
    migrate.upgrade(url)
    add_tenants(postgres_url, "acme", "globex")
    with psycopg.connect(postgres_url) as conn:  # the owner, outside platform mode
        assert conn.execute("UPDATE tenants SET name = name").rowcount == 0, "FORCE binds it"

    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    config = migrate.alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    (scripts / "versions" / "9999_probe.py").write_text(PROBE.format(head=head))
    config.set_main_option("script_location", str(scripts))
    command.upgrade(config, "head")

    assert config.attributes["renamed"] == 2
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET app.platform = 'on'")
        names = {row[0] for row in conn.execute("SELECT name FROM tenants")}
    assert names == {"acme+", "globex+"}


def superuser_of(server_url: str) -> str:
    admin = services.psycopg_url(server_url)
    with psycopg.connect(admin) as conn:
        row = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row is not None
    if not row[1]:
        pytest.skip("TENANTRY_TEST_DATABASE_URL is not a superuser: no bypassing role to try")
    return str(row[0])


async def start_and_collect_warnings(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> list[str]:
    caplog.clear()
    settings = load_settings(env, data_dir=str(tmp_path / "data"))
    app = create_app(settings, on_first_token=lambda _token: None, reconcile=False)
    with caplog.at_level(logging.WARNING, logger="control_plane.app"):
        async with AsyncTestClient(app=app) as client:
            assert (await client.get("/healthz")).status_code == 200
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_control_plane_warns_when_its_role_bypasses_row_security(
    postgres_server: str, postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    superuser = superuser_of(postgres_server)
    with psycopg.connect(services.psycopg_url(postgres_server), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BYPASS,)).fetchone():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER BYPASSRLS").format(sql.Identifier(BYPASS))
            )
    owner_url = postgres_url
    for role, warned in (
        (services.APP_ROLE, False),
        (superuser, True),
        (BYPASS, True),
    ):
        env = {
            "TENANTRY_DATABASE_URL": services.as_role(owner_url, role),
            "TENANTRY_DATABASE_MIGRATION_URL": owner_url,
        }
        warnings = await start_and_collect_warnings(env, tmp_path / role, caplog)
        named = [w for w in warnings if "TENANTRY_DATABASE_URL" in w and "BYPASSRLS" in w]
        assert bool(named) is warned, (role, warnings)
