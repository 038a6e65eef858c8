"""``tenantry users create-admin``: a platform admin account, made directly in the database
(for the first person, before anyone can log in)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from control_plane.cli.login_cmd import read_password
from control_plane.db import migrate
from control_plane.db.engine import Database
from control_plane.errors import TenantryError
from control_plane.identity.users import UserService
from control_plane.settings import load_settings
from control_plane.vault.errors import VaultError
from control_plane.vault.loading import load_vault_keys


def add_parser(commands: Any) -> None:
    users = commands.add_parser("users", help="manage accounts directly in the database")
    users.add_argument("--data-dir", help="data dir of the installation (default .tenantry)")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    admin = actions.add_parser("create-admin", help="create a platform admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    admin.set_defaults(run=_create_admin)


def _create_admin(args: argparse.Namespace) -> int:
    password = read_password(args.password_stdin)
    if not args.password_stdin and read_password(False, "Again: ") != password:
        print("tenantry: the passwords differ", file=sys.stderr)
        return 2
    try:
        user = asyncio.run(_create(args, password))
    except (TenantryError, VaultError) as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 1
    print(f"platform admin {user} created")
    return 0


async def _create(args: argparse.Namespace, password: str) -> str:
    settings = load_settings(data_dir=args.data_dir)
    keys = load_vault_keys(settings)
    await asyncio.to_thread(
        migrate.upgrade,
        settings.schema_owner_url,
        rekey_digest=keys.digests.rekey_sha256,
        app_url=settings.database_url,
    )
    db = Database(settings.database_url)
    try:
        user = await UserService(db).create_admin(args.email, password)
    finally:
        await db.close()
    return user.email
