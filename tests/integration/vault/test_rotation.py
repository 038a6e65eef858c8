"""Key rotation under load, on SQLite and PostgreSQL: no read or write fails while it runs,
every credential stays readable afterwards, and an interrupted rotation can be resumed."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from sqlalchemy import select

from control_plane.db.engine import Database
from control_plane.db.models import CredentialRow, TenantDataKeyRow, TenantRow
from control_plane.db.values import new_id, utcnow
from control_plane.vault.digests import TokenDigests
from control_plane.vault.keyring import KekRing, parse_kek_ring
from control_plane.vault.providers import ProviderBases
from control_plane.vault.service import CredentialVault

TENANTS = 6


def vault_with(db: Database, ring: KekRing, http: httpx.AsyncClient) -> CredentialVault:
    return CredentialVault(
        db, ring, http=http, bases=ProviderBases(), digests=TokenDigests.generate()
    )


async def make_tenants(vault: CredentialVault, db: Database) -> list[str]:
    ids = []
    for n in range(TENANTS):
        tenant_id = new_id()
        async with db.transaction(platform="test setup and checks") as session:
            now = utcnow()
            session.add(
                TenantRow(
                    id=tenant_id,
                    slug=f"t{n}",
                    name=f"t{n}",
                    plan="free",
                    state="running",
                    endpoint=None,
                    reason=None,
                    suspended=False,
                    delete_requested=False,
                    generation=1,
                    observed_generation=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            vault.add_tenant_key(session, tenant_id)
        ids.append(tenant_id)
    return ids


def secret(tenant_id: str, n: int) -> str:
    return f"sk-planted-{tenant_id[-8:]}-{n:04d}-{'x' * 20}"


async def test_kek_rotation_under_concurrent_reads_and_writes(
    db: Database, http: httpx.AsyncClient
) -> None:
    old_ring = KekRing.generate("old")
    new_ring = old_ring.with_new_active("new")
    writer = vault_with(db, old_ring, http)
    tenants = await make_tenants(writer, db)
    expected: dict[str, str] = {}
    for tenant_id in tenants:
        await writer.put(tenant_id, "openai", {"api_key": secret(tenant_id, 0)}, validate=False)
        expected[tenant_id] = secret(tenant_id, 0)

    # The control plane now knows both keys (new one active); the rotation runs beside it.
    serving = vault_with(db, new_ring, http)
    rotator = vault_with(db, new_ring, http)
    stop = asyncio.Event()
    failures: list[BaseException] = []
    operations = 0

    async def load(seed: int) -> None:
        nonlocal operations
        rng = random.Random(seed)
        n = 0
        while not stop.is_set():
            tenant_id = rng.choice(tenants)
            try:
                if rng.random() < 0.3:
                    n += 1
                    value = secret(tenant_id, seed * 1000 + n)
                    await serving.put(tenant_id, "openai", {"api_key": value}, validate=False)
                    expected[tenant_id] = value
                else:
                    await serving.reveal(tenant_id, "openai")
                operations += 1
            except Exception as exc:  # every failure is a test failure, reported below
                failures.append(exc)
            await asyncio.sleep(0)

    workers = [asyncio.create_task(load(seed)) for seed in range(4)]
    rewrapped = await rotator.rotate_kek()
    await asyncio.sleep(0.2)  # keep the load on a little after the rotation ends
    stop.set()
    await asyncio.gather(*workers)

    assert failures == [], failures[:3]
    assert operations > TENANTS
    assert rewrapped == TENANTS
    async with db.transaction(platform="test setup and checks") as session:
        kek_ids = set(await session.scalars(select(TenantDataKeyRow.kek_id)))
    assert kek_ids == {"new"}
    # From now on the old key can be dropped from the ring: the new one alone reads all.
    only_new = vault_with(db, parse_kek_ring(new_ring.to_config().split(",")[0]), http)
    assert only_new.ring.ids == ("new",)
    for tenant_id, value in expected.items():
        assert (await only_new.reveal(tenant_id, "openai"))["api_key"] == value
    # Running it again has nothing left to do.
    assert await rotator.rotate_kek() == 0


async def test_dek_rotation_is_resumable(db: Database, http: httpx.AsyncClient) -> None:
    ring = KekRing.generate("k1")
    vault = vault_with(db, ring, http)
    (tenant_id, *_) = await make_tenants(vault, db)
    providers = {
        "openai": {"api_key": "sk-openai-planted-value-0001"},
        "anthropic": {"api_key": "sk-ant-planted-value-0002"},
        "openai_compatible": {
            "api_key": "sk-compat-planted-value-0003",
            "base_url": "http://127.0.0.1:9/v1",
        },
    }
    for name, fields in providers.items():
        await vault.put(tenant_id, name, fields, validate=False)
    async with db.transaction(platform="test setup and checks") as session:
        before = {r.provider: r.ciphertext for r in await session.scalars(select(CredentialRow))}

    class Interrupted(Exception):
        pass

    def interrupt_after_one(done: int, _total: int) -> None:
        if done == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        await vault.rotate_dek(tenant_id, interrupt_after_one)
    # Half-rotated: every credential still reads, and a write lands under the new key.
    for name, fields in providers.items():
        assert await vault.reveal(tenant_id, name) == fields
    async with db.transaction(platform="test setup and checks") as session:
        keys = await session.get(TenantDataKeyRow, tenant_id)
        assert keys is not None
        assert (keys.dek_version, keys.pending_version) == (1, 2)

    assert await vault.rotate_dek(tenant_id) == 2  # the two not yet done
    async with db.transaction(platform="test setup and checks") as session:
        keys = await session.get(TenantDataKeyRow, tenant_id)
        assert keys is not None
        assert (keys.dek_version, keys.pending_version) == (2, None)
        rows = list(await session.scalars(select(CredentialRow)))
    assert {r.dek_version for r in rows} == {2}
    assert all(r.ciphertext != before[r.provider] for r in rows)
    for name, fields in providers.items():
        assert await vault.reveal(tenant_id, name) == fields


async def test_deleting_the_key_shreds_every_credential(
    db: Database, http: httpx.AsyncClient
) -> None:
    vault = vault_with(db, KekRing.generate("k1"), http)
    (tenant_id, other_id, *_) = await make_tenants(vault, db)
    await vault.put(tenant_id, "openai", {"api_key": "sk-shred-me-please-0001"}, validate=False)
    await vault.put(other_id, "openai", {"api_key": "sk-keep-me-please-0002"}, validate=False)
    async with db.transaction(platform="test setup and checks") as session:
        await vault.destroy_tenant_key(session, tenant_id)
    async with db.transaction(platform="test setup and checks") as session:
        keys = await session.get(TenantDataKeyRow, tenant_id)
        assert keys is not None
        assert keys.wrapped_dek is None
        assert keys.destroyed_at is not None
    assert await vault.list_credentials(tenant_id) == []
    assert (await vault.reveal(other_id, "openai"))["api_key"] == "sk-keep-me-please-0002"
