"""Key rotation under load, on SQLite and PostgreSQL: no read or write fails while it runs,
every credential stays readable afterwards, an interrupted rotation can be resumed, KEK
rotation changes wrapped DEKs only, and a running vault follows a ring file rotated beside
it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from control_plane.db.engine import Database
from control_plane.db.models import CredentialRow, TenantDataKeyRow, TenantRow
from control_plane.db.values import new_id, utcnow
from control_plane.vault.digests import TokenDigests
from control_plane.vault.errors import UnknownKek
from control_plane.vault.keyring import (
    KekRing,
    load_or_create_ring,
    parse_kek_ring,
    read_ring_file,
    write_ring,
)
from control_plane.vault.providers import ProviderBases
from control_plane.vault.service import CredentialVault

TENANTS = 6
LOADED_TENANTS = 24
"""Tenants whose DEKs a rotation under load rewraps: enough rows for the load to overlap."""


def vault_with(db: Database, ring: KekRing, http: httpx.AsyncClient) -> CredentialVault:
    return CredentialVault(
        db, ring, http=http, bases=ProviderBases(), digests=TokenDigests.generate()
    )


async def make_tenants(vault: CredentialVault, db: Database, count: int = TENANTS) -> list[str]:
    ids = []
    for _ in range(count):
        tenant_id = new_id()
        slug = f"t-{tenant_id[-12:].lower()}"
        async with db.transaction(platform="test setup and checks") as session:
            now = utcnow()
            session.add(
                TenantRow(
                    id=tenant_id,
                    slug=slug,
                    name=slug,
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
    tenants = await make_tenants(writer, db, LOADED_TENANTS)
    latest: dict[str, tuple[int, str]] = {}  # tenant -> (version, value) of its last write
    for tenant_id in tenants:
        stored = await writer.put(
            tenant_id, "openai", {"api_key": secret(tenant_id, 0)}, validate=False
        )
        latest[tenant_id] = (stored.version, secret(tenant_id, 0))

    # The control plane now knows both keys (new one active); the rotation runs beside it.
    serving = vault_with(db, new_ring, http)
    rotator = vault_with(db, new_ring, http)
    midway, finished = asyncio.Event(), asyncio.Event()
    failures: list[BaseException] = []
    during = {"read": 0, "write": 0}
    """Operations completed while some DEKs were under the new KEK and some under the old."""

    async def load(seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        while True:
            last_round = finished.is_set()  # one more operation after the rotation ended
            tenant_id = rng.choice(tenants)
            try:
                if rng.random() < 0.3:
                    n += 1
                    value = secret(tenant_id, seed * 1000 + n)
                    stored = await serving.put(
                        tenant_id, "openai", {"api_key": value}, validate=False
                    )
                    latest[tenant_id] = max(latest[tenant_id], (stored.version, value))
                    kind = "write"
                else:
                    await serving.reveal(tenant_id, "openai")
                    kind = "read"
                if midway.is_set() and not finished.is_set():
                    during[kind] += 1
                    if during["read"] and during["write"]:
                        overlapped.set()
            except Exception as exc:  # every failure is a test failure, reported below
                failures.append(exc)
            if last_round:
                return

    overlapped = asyncio.Event()

    async def both_kinds_during() -> None:
        # The rotation waits here, half done, until a read and a write have gone through.
        await asyncio.wait_for(overlapped.wait(), timeout=60)

    def progress(done: int, total: int) -> Awaitable[None] | None:
        if done == total:
            finished.set()
        if done == 1:
            midway.set()  # the first DEK is rewrapped, the others not yet
            return both_kinds_during()
        return None

    workers = [asyncio.create_task(load(seed)) for seed in range(4)]
    rewrapped = await rotator.rotate_kek(progress)
    await asyncio.gather(*workers)

    assert failures == [], failures[:3]
    assert during["read"] > 0, "reads overlapped the rotation"
    assert during["write"] > 0, "writes overlapped the rotation"
    assert rewrapped == LOADED_TENANTS
    async with db.transaction(platform="test setup and checks") as session:
        kek_ids = set(await session.scalars(select(TenantDataKeyRow.kek_id)))
    assert kek_ids == {"new"}
    # From now on the old key can be dropped from the ring: the new one alone reads all.
    only_new = vault_with(db, parse_kek_ring(new_ring.to_config().split(",")[0]), http)
    assert only_new.ring.ids == ("new",)
    for tenant_id, (_, value) in latest.items():
        assert (await only_new.reveal(tenant_id, "openai"))["api_key"] == value
    # Running it again has nothing left to do.
    assert await rotator.rotate_kek() == 0


class Interrupted(Exception):
    pass


def interrupt_after(rows: int) -> Callable[[int, int], None]:
    """A progress callback that stops the rotation once ``rows`` rows are done."""

    def progress(done: int, _total: int) -> None:
        if done == rows:
            raise Interrupted

    return progress


async def credential_rows(db: Database) -> list[tuple[Any, ...]]:
    """Every column of every credential row, as stored."""
    async with db.transaction(platform="test setup and checks") as session:
        rows = await session.execute(select(CredentialRow.__table__).order_by(CredentialRow.id))
        return [tuple(row) for row in rows]


async def data_keys(db: Database) -> dict[str, TenantDataKeyRow]:
    async with db.transaction(platform="test setup and checks") as session:
        rows = await session.scalars(select(TenantDataKeyRow))
        return {row.tenant_id: row for row in rows}


async def test_kek_rotation_is_resumable_and_changes_only_wrapped_data_keys(
    db: Database, http: httpx.AsyncClient
) -> None:
    old_ring = KekRing.generate("old")
    new_ring = old_ring.with_new_active("new")
    vault = vault_with(db, old_ring, http)
    tenants = await make_tenants(vault, db)
    fields = {
        "openai": {"api_key": "sk-kek-rotation-planted-0001"},
        "anthropic": {"api_key": "sk-ant-kek-rotation-planted-0002"},
    }
    for tenant_id in tenants:
        for name, values in fields.items():
            await vault.put(tenant_id, name, values, validate=False)
    # One tenant is half-way through a DEK rotation: its pending DEK is rewrapped too.
    with pytest.raises(Interrupted):
        await vault.rotate_dek(tenants[0], interrupt_after(1))
    credentials_before = await credential_rows(db)
    keys_before = await data_keys(db)
    assert keys_before[tenants[0]].pending_version == 2

    rotator = vault_with(db, new_ring, http)
    with pytest.raises(Interrupted):
        await rotator.rotate_kek(interrupt_after(2))
    half = await data_keys(db)
    assert sorted(row.kek_id or "" for row in half.values()) == ["new"] * 2 + ["old"] * (
        TENANTS - 2
    )
    for tenant_id in tenants:  # every credential reads, whichever KEK wraps its DEK now
        for name, values in fields.items():
            assert await rotator.reveal(tenant_id, name) == values

    assert await rotator.rotate_kek() == TENANTS - 2  # the rest
    assert await rotator.rotate_kek() == 0
    assert await credential_rows(db) == credentials_before, "credential rows are untouched"
    for tenant_id, after in (await data_keys(db)).items():
        before = keys_before[tenant_id]
        assert after.kek_id == "new"
        assert (after.dek_version, after.pending_version) == (
            before.dek_version,
            before.pending_version,
        )
        for attr, version in (("wrapped_dek", after.dek_version), ("pending_wrapped_dek", 2)):
            old_wrapped, new_wrapped = getattr(before, attr), getattr(after, attr)
            if old_wrapped is None:
                assert new_wrapped is None
                continue
            assert new_wrapped != old_wrapped
            same_dek = old_ring.unwrap_dek(old_wrapped, tenant_id=tenant_id, dek_version=version)
            assert new_ring.unwrap_dek(new_wrapped, tenant_id=tenant_id, dek_version=version) == (
                same_dek
            )

    # The interrupted DEK rotation finishes under the new KEK; the new key alone reads all.
    assert await rotator.rotate_dek(tenants[0]) == 1
    only_new = vault_with(db, parse_kek_ring(new_ring.to_config().split(",")[0]), http)
    for tenant_id in tenants:
        for name, values in fields.items():
            assert await only_new.reveal(tenant_id, name) == values


async def test_a_running_vault_follows_the_ring_file_rotated_beside_it(
    db: Database, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    ring_file = tmp_path / "kek"
    ring, _ = load_or_create_ring(None, ring_file)
    serving = CredentialVault(
        db,
        ring,
        http=http,
        bases=ProviderBases(),
        digests=TokenDigests.generate(),
        ring_file=ring_file,
    )
    (first, *_) = await make_tenants(serving, db)
    await serving.put(first, "openai", {"api_key": "sk-follow-the-ring-0001"}, validate=False)

    # `tenantry vault rotate-kek --new-key`, in another process: a new key in the file, then
    # every DEK rewrapped under it.
    write_ring(ring.with_new_active("second"), ring_file)
    cli = vault_with(db, read_ring(ring_file), http)
    assert await cli.rotate_kek() == TENANTS
    # Meeting a DEK under a KEK it did not know, the serving vault takes the file again.
    assert (await serving.reveal(first, "openai"))["api_key"] == "sk-follow-the-ring-0001"
    assert serving.ring.active_id == "second"

    # Another new key: DEKs the serving vault wraps from now on are under it at once.
    write_ring(serving.ring.with_new_active("third"), ring_file)
    (newcomer,) = await make_tenants(serving, db, 1)
    assert (await data_keys(db))[newcomer].kek_id == "third"

    # A DEK under a key in no ring it can find stays unreadable; the file is not recreated.
    rotated = read_ring(ring_file).with_new_active("fourth")
    await vault_with(db, rotated, http).rotate_kek()
    ring_file.unlink()
    with pytest.raises(UnknownKek):
        await serving.reveal(first, "openai")
    assert not ring_file.exists()


def read_ring(ring_file: Path) -> KekRing:
    ring = read_ring_file(ring_file)
    assert ring is not None
    return ring


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

    with pytest.raises(Interrupted):
        await vault.rotate_dek(tenant_id, interrupt_after(1))
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


async def test_concurrent_writes_of_one_credential_take_distinct_versions(
    db: Database, http: httpx.AsyncClient
) -> None:
    vault = vault_with(db, KekRing.generate("k"), http)
    [tenant_id] = await make_tenants(vault, db, 1)
    await vault.put(tenant_id, "openai", {"api_key": secret(tenant_id, 0)}, validate=False)
    values = [secret(tenant_id, n) for n in range(1, 21)]
    stored = await asyncio.gather(
        *(vault.put(tenant_id, "openai", {"api_key": v}, validate=False) for v in values)
    )
    versions = [s.version for s in stored]
    assert sorted(versions) == list(range(2, 22)), "no two writers share a version"
    last = values[versions.index(max(versions))]
    assert (await vault.reveal(tenant_id, "openai"))["api_key"] == last
