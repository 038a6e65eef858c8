"""Tenant isolation held by PostgreSQL itself, with the application connecting as a role
that does not own the tables: a deliberately unfiltered SELECT over each tenant-owned table
(taken from the model metadata, so a new table is covered) returns only the scoped tenant's
rows; writes into another tenant are refused; the application role cannot switch security
off."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.channels.schemas import Bound, Channel
from control_plane.db.models import Base
from control_plane.settings import load_settings
from tenant_gateway.channels.contract import InboundMessage
from tenant_gateway.contract import USAGE_PATH
from tenant_gateway.metering import new_event_id
from tests import services

pytestmark = pytest.mark.postgres

TENANT_OWNED = sorted(
    table.name
    for table in Base.metadata.tables.values()
    if "tenant_id" in table.columns or table.name == "tenants"
)


def tenant_column(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


@pytest.fixture
def urls(postgres_url: str) -> tuple[str, str]:
    """(owner URL, application URL) of one scratch database."""
    return postgres_url, services.as_role(postgres_url, services.APP_ROLE)


@pytest.fixture
async def two_tenants(urls: tuple[str, str], tmp_path: Path) -> dict[str, str]:
    """Tenants A and B with rows in every tenant-owned table, made through the API by an app
    connected as the application role."""
    owner_url, app_url = urls
    settings = load_settings(
        {"TENANTRY_DATABASE_URL": app_url, "TENANTRY_DATABASE_MIGRATION_URL": owner_url},
        data_dir=str(tmp_path / "data"),
    )
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    ids: dict[str, str] = {}
    async with AsyncTestClient(app=app) as client:
        client.headers["Authorization"] = f"Bearer {tokens[0]}"
        for name in ("a", "b"):
            tenant = await client.post(
                "/api/v1/tenants",
                json={"slug": f"tenant-{name}"},
                headers={"Idempotency-Key": f"key-{name}"},
            )
            assert tenant.status_code == 202, tenant.text
            tenant_id = tenant.json()["id"]
            ids[name] = tenant_id
            email = f"owner@{name}.example"
            made = await client.post(
                "/api/v1/users", json={"email": email, "password": "a long enough password"}
            )
            assert made.status_code == 201, made.text
            for path, body in (
                ("members", {"email": email, "role": "owner"}),
                ("invitations", {"email": f"guest@{name}.example"}),
            ):
                answer = await client.post(f"/api/v1/tenants/{tenant_id}/{path}", json=body)
                assert answer.status_code == 201, answer.text
            stored = await client.put(
                f"/api/v1/tenants/{tenant_id}/credentials/openai", json={"api_key": f"sk-{name}"}
            )
            assert stored.status_code == 200, stored.text
            await _report_usage(client, tenant_id)
            await _bind_a_chat(client, tenant_id, chat_id=len(ids))
    # gateway_identities is kept for compatibility and written by nothing else here.
    await asyncio.to_thread(_add_gateway_identities, owner_url, ids)
    return ids


async def _report_usage(client: AsyncTestClient, tenant_id: str) -> None:
    """One usage event, as the tenant's gateway reports it (usage_events, usage_daily)."""
    identity = await client.app.state["vault"].gateway_identity(tenant_id)
    usage_event = {
        "id": new_event_id(),
        "tenant_id": tenant_id,
        "at": "2026-12-01T12:00:00Z",
        "model": "stub-model",
        "provider": "platform",
        "byok": False,
        "stream": False,
        "outcome": "ok",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "latency": 0.01,
    }
    reported = await client.post(
        USAGE_PATH.format(tenant_id=tenant_id),
        json={"events": [usage_event]},
        headers={"Authorization": f"Bearer {identity}"},
    )
    assert reported.status_code == 200, reported.text


async def _bind_a_chat(client: AsyncTestClient, tenant_id: str, chat_id: int) -> None:
    """A pairing code, redeemed as the platform bot does (pairing_codes, channel_bindings)."""
    issued = await client.post(f"/api/v1/tenants/{tenant_id}/channels/telegram/pairing")
    assert issued.status_code == 201, issued.text
    outcome = await client.app.state["channels"].redeem(
        issued.json()["code"], Channel.TELEGRAM_PLATFORM, chat_id, f"chat {chat_id}"
    )
    assert isinstance(outcome, Bound), outcome
    # A message the tenant's gateway could not take yet (platform_inbound).
    await client.app.state["platform_bot"].forwarder.keep(
        tenant_id,
        InboundMessage(
            channel="telegram_platform",
            message_id=f"{chat_id}:1",
            chat_id=str(chat_id),
            peer_id=str(chat_id),
            chat_type="dm",
            text="hello",
            received_at=datetime.now(UTC),
        ),
    )


def _add_gateway_identities(owner_url: str, ids: dict[str, str]) -> None:
    with psycopg.connect(owner_url) as conn:
        conn.execute("SET app.platform = 'on'")
        for name, tenant_id in ids.items():
            conn.execute(
                "INSERT INTO gateway_identities (tenant_id, digest, created_at)"
                " VALUES (%s, %s, now())",
                (tenant_id, f"digest-{name}"),
            )


def connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url) as conn:
        yield conn


def tenants_seen(conn: psycopg.Connection[Any], table: str) -> list[str]:
    column = tenant_column(table)
    rows = conn.execute(f"SELECT {column} FROM {table}").fetchall()  # no WHERE, on purpose
    return [row[0] for row in rows]


async def test_a_scoped_transaction_sees_only_its_tenant(
    urls: tuple[str, str], two_tenants: dict[str, str]
) -> None:
    _owner_url, app_url = urls
    a, b = two_tenants["a"], two_tenants["b"]
    with psycopg.connect(app_url) as conn:
        for table in TENANT_OWNED:
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (a,))
                seen = tenants_seen(conn, table)
            assert seen, f"{table}: tenant A has rows, and they are visible"
            assert set(seen) == {a}, f"{table} leaked {set(seen) - {a}}"
            with conn.transaction():
                assert tenants_seen(conn, table) == [], f"{table}: nothing without a tenant"
            with conn.transaction():
                conn.execute("SELECT set_config('app.platform', 'on', true)")
                assert {a, b} <= set(tenants_seen(conn, table)), f"{table}: platform sees all"


async def test_writes_into_another_tenant_are_refused(
    urls: tuple[str, str], two_tenants: dict[str, str]
) -> None:
    _owner_url, app_url = urls
    a, b = two_tenants["a"], two_tenants["b"]
    with psycopg.connect(app_url) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (a,))
            renamed = conn.execute("UPDATE tenants SET name = 'pwned' WHERE id = %s", (b,))
            assert renamed.rowcount == 0
            removed = conn.execute("DELETE FROM credentials WHERE tenant_id = %s", (b,))
            assert removed.rowcount == 0
        for statement in (
            "INSERT INTO tenant_events (tenant_id, type, message, data, created_at)"
            " VALUES (%s, 'x', 'planted', '{}', now())",
            "UPDATE gateway_keys SET tenant_id = %s",
        ):
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (a,))
                with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(statement, (b,))  # in a savepoint, rolled back on failure


async def test_the_application_role_cannot_switch_security_off(
    urls: tuple[str, str], two_tenants: dict[str, str]
) -> None:
    _owner_url, app_url = urls
    with psycopg.connect(app_url, autocommit=True) as conn:
        for statement in (
            "ALTER TABLE credentials DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE credentials NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY tenant_isolation ON credentials",
            f"SET ROLE {services.OWNER_ROLE}",
            "UPDATE audit_log SET outcome = 'success'",
            "DELETE FROM audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # With row security off, a query it would filter fails instead of bypassing it.
        conn.execute("SET row_security = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM credentials")
    assert two_tenants


async def test_installation_wide_audit_entries_are_for_the_platform_only(
    urls: tuple[str, str], two_tenants: dict[str, str]
) -> None:
    _owner_url, app_url = urls
    count = "SELECT count(*) FROM audit_log WHERE tenant_id IS NULL"
    with psycopg.connect(app_url) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('app.platform', 'on', true)")
            platform_row = conn.execute(count).fetchone()
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (two_tenants["a"],))
            tenant_row = conn.execute(count).fetchone()
    assert platform_row is not None
    assert platform_row[0] > 0, "creating users is audited, installation-wide"
    assert tenant_row == (0,)
