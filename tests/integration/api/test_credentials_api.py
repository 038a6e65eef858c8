"""Credentials API: values go in, only metadata and masked hints come out, on SQLite and
PostgreSQL; nothing readable rests in the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import create_engine, text

from tests.integration.api.test_tenants_api import assert_problem, create

OPENAI_KEY = "sk-planted-openai-secret-value-7731"
COMPAT_KEY = "sk-planted-compat-secret-value-8842"
BOT_TOKEN = "123456789:AAplantedTelegramTokenValue_abcdefghijk"


def database_dump(database_url: str, tmp_path: Path) -> bytes:
    """Every byte the database holds for our tables (the SQLite file, or a PG table dump)."""
    if database_url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in tmp_path.glob("tenantry.db*"))
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    chunks = []
    with engine.connect() as connection:
        connection.execute(text("SET app.platform = 'on'"))  # every tenant's rows
        for table in ("tenants", "tenant_events", "credentials", "tenant_data_keys"):
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                chunks.append(repr(tuple(row)).encode())
    engine.dispose()
    return b"\n".join(chunks)


async def test_store_list_replace_delete(client: AsyncTestClient) -> None:
    await create(client, "acme")
    stored = await client.put(
        "/api/v1/tenants/acme/credentials/openai", json={"api_key": OPENAI_KEY}
    )
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["provider"] == "openai"
    assert body["version"] == 1
    assert body["hint"] == "…" + OPENAI_KEY[-4:]
    assert OPENAI_KEY not in stored.text

    compat = await client.put(
        "/api/v1/tenants/acme/credentials/openai_compatible",
        json={"api_key": COMPAT_KEY, "base_url": "http://127.0.0.1:9/v1/"},
    )
    assert compat.json()["fields"] == {"base_url": "http://127.0.0.1:9/v1"}

    replaced = await client.put(
        "/api/v1/tenants/acme/credentials/openai", json={"api_key": OPENAI_KEY + "X"}
    )
    assert replaced.json()["version"] == 2

    listed = await client.get("/api/v1/tenants/acme/credentials")
    assert [c["provider"] for c in listed.json()] == ["openai", "openai_compatible"]
    assert OPENAI_KEY not in listed.text
    assert COMPAT_KEY not in listed.text

    assert (await client.delete("/api/v1/tenants/acme/credentials/openai")).status_code == 204
    assert [
        c["provider"] for c in (await client.get("/api/v1/tenants/acme/credentials")).json()
    ] == ["openai_compatible"]
    assert_problem(await client.delete("/api/v1/tenants/acme/credentials/openai"), 404, "openai")


async def test_bad_credentials_are_refused_clearly(client: AsyncTestClient) -> None:
    await create(client, "acme")
    base = "/api/v1/tenants/acme/credentials"
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("carrier_pigeon", {"api_key": "x" * 20}, 404, "telegram_bot"),
        ("openai", {}, 422, "api_key"),
        ("openai", {"api_key": OPENAI_KEY, "color": "red"}, 422, "color"),
        ("openai_compatible", {"api_key": COMPAT_KEY, "base_url": "ftp://x"}, 422, "base_url"),
        ("telegram_bot", {"token": "not-a-token"}, 422, "token"),
    ]
    for provider, fields, status, detail in cases:
        response = await client.put(f"{base}/{provider}", json=fields)
        assert_problem(response, status, detail)
        assert OPENAI_KEY not in response.text
        assert COMPAT_KEY not in response.text
    assert (await client.get(base)).json() == []
    assert_problem(
        await client.put("/api/v1/tenants/ghost/credentials/openai", json={"api_key": OPENAI_KEY}),
        404,
        "ghost",
    )


async def test_nothing_readable_rests_in_the_database(
    client: AsyncTestClient, database_url: str, tmp_path: Path
) -> None:
    await create(client, "acme")
    await create(client, "globex")
    await client.put("/api/v1/tenants/acme/credentials/openai", json={"api_key": OPENAI_KEY})
    await client.put("/api/v1/tenants/globex/credentials/telegram_bot", json={"token": BOT_TOKEN})
    dump = database_dump(database_url, tmp_path)
    assert dump, "the dump is not empty"
    for planted in (OPENAI_KEY, BOT_TOKEN, BOT_TOKEN.split(":")[1]):
        assert planted.encode() not in dump


async def test_deleting_a_tenant_shreds_its_credentials(client: AsyncTestClient) -> None:
    await create(client, "acme")
    await client.put("/api/v1/tenants/acme/credentials/openai", json={"api_key": OPENAI_KEY})
    await client.delete("/api/v1/tenants/acme")
    assert (await client.get("/api/v1/tenants/acme/credentials")).json() == []
    response = await client.put(
        "/api/v1/tenants/acme/credentials/openai", json={"api_key": OPENAI_KEY}
    )
    assert_problem(response, 409, "being deleted")
