"""``tenantry vault …``: key rotation, run beside (or without) a live control plane.

Both commands work on the database directly, one row per transaction, so they can run
while the control plane serves traffic and can simply be run again if interrupted.

KEK rotation: with ``TENANTRY_KEK`` set, put the new key first in it (keeping the old ones)
for every control-plane process, then run ``rotate-kek``. On the embedded default, where the
ring lives in ``DIR/kek``, ``rotate-kek --new-key`` adds the new key to that file first; the
running control plane takes the file again before it next wraps a data key, and when it meets
a data key wrapped by a key it does not know yet.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import httpx

from control_plane.cli import logs
from control_plane.db import migrate
from control_plane.db.engine import Database
from control_plane.errors import TenantryError
from control_plane.settings import load_settings
from control_plane.tenants.service import find_tenant
from control_plane.vault.errors import VaultError
from control_plane.vault.keyring import load_or_create_ring, write_ring
from control_plane.vault.loading import load_vault_keys
from control_plane.vault.providers import provider_bases_from_env
from control_plane.vault.service import CredentialVault


def add_parser(commands: Any) -> None:
    vault = commands.add_parser("vault", help="rotate the vault's keys")
    vault.add_argument("--data-dir", help="data dir of the control plane (default .tenantry)")
    actions = vault.add_subparsers(dest="action", required=True, metavar="ACTION")
    kek = actions.add_parser("rotate-kek", help="rewrap every tenant's DEK under the active KEK")
    kek.add_argument(
        "--new-key",
        action="store_true",
        help="first add a new active key to DIR/kek (embedded default only)",
    )
    kek.set_defaults(run=_run, job=_rotate_kek)
    dek = actions.add_parser("rotate-dek", help="re-encrypt one tenant's credentials")
    dek.add_argument("tenant", help="tenant id or slug")
    dek.set_defaults(run=_run, job=_rotate_dek)


def _progress(label: str) -> Any:
    def show(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="" if done < total else "\n", flush=True)

    return show


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_with_vault(args))
    except (TenantryError, VaultError) as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 1


async def _with_vault(args: argparse.Namespace) -> int:
    settings = load_settings(data_dir=args.data_dir)
    logs.configure(settings.log_level, settings.log_format)  # secrets masked here too
    if getattr(args, "new_key", False):
        if settings.kek:
            print(
                "tenantry: TENANTRY_KEK is set: put the new key first in it instead of --new-key",
                file=sys.stderr,
            )
            return 2
        ring, _ = load_or_create_ring(None, settings.kek_file)
        write_ring(ring.with_new_active(), settings.kek_file)
    keys = load_vault_keys(settings)
    await asyncio.to_thread(
        migrate.upgrade,
        settings.schema_owner_url,
        rekey_digest=keys.digests.rekey_sha256,
        app_url=settings.database_url,
    )
    db = Database(settings.database_url)
    async with httpx.AsyncClient() as http:
        vault = CredentialVault(
            db,
            keys.ring,
            http=http,
            bases=provider_bases_from_env(settings.provider_env),
            digests=keys.digests,
        )
        try:
            code: int = await args.job(vault, db, args)
            return code
        finally:
            await db.close()


async def _rotate_kek(vault: CredentialVault, _db: Database, _args: argparse.Namespace) -> int:
    rewrapped = await vault.rotate_kek(_progress("rewrapping data keys"))
    print(f"{rewrapped} data key(s) rewrapped under {vault.ring.active_id}")
    return 0


async def _rotate_dek(vault: CredentialVault, db: Database, args: argparse.Namespace) -> int:
    async with db.transaction(platform="vault: find tenant") as session:
        tenant = await find_tenant(session, args.tenant)
    count = await vault.rotate_dek(tenant.id, _progress("re-encrypting credentials"))
    print(f"{count} credential(s) of {tenant.slug} re-encrypted under a new data key")
    return 0
