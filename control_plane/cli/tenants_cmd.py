"""``tenantry tenants …``: the admin API from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from control_plane.cli import login_cmd

TERMINAL = {"running", "failed", "suspended", "deleted"}


class CliError(Exception):
    """Something to tell the user, then exit non-zero."""


def connection_options(parser: argparse.ArgumentParser) -> None:
    """Where the control plane is and who calls it; ``--json`` for raw answers."""
    parser.add_argument("--url", help="control plane URL (default $TENANTRY_URL or the local one)")
    parser.add_argument(
        "--token",
        help="bearer token (default $TENANTRY_TOKEN, `tenantry login`, DIR/admin-token)",
    )
    parser.add_argument("--data-dir", help="data dir of a local `tenantry up` (default .tenantry)")
    parser.add_argument("--json", action="store_true", help="print raw JSON")


def add_parser(commands: Any) -> None:
    tenants = commands.add_parser("tenants", help="create, list, inspect and delete tenants")
    connection_options(tenants)
    actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a tenant")
    create.add_argument("slug")
    create.add_argument("--name")
    create.add_argument("--plan", default="free")
    create.add_argument("--idempotency-key")
    create.add_argument("--wait", action="store_true", help="wait until running, showing progress")
    create.add_argument("--timeout", type=float, default=120.0)
    create.set_defaults(run_action=_create)

    list_ = actions.add_parser("list", help="list tenants")
    list_.add_argument("--state")
    list_.add_argument("--limit", type=int, default=200)
    list_.set_defaults(run_action=_list)

    get = actions.add_parser("get", help="show a tenant by id or slug")
    get.add_argument("tenant")
    get.set_defaults(run_action=_get)

    remove = actions.add_parser("delete", help="delete a tenant")
    remove.add_argument("tenant")
    remove.add_argument("--wait", action="store_true", help="wait until deleted")
    remove.add_argument("--timeout", type=float, default=120.0)
    remove.set_defaults(run_action=_delete)

    tenants.set_defaults(run=dispatch)


def dispatch(args: argparse.Namespace) -> int:
    """Run ``args.run_action(client, args)`` with a client of the control plane."""
    try:
        with _client(args) as client:
            code: int = args.run_action(client, args)
            return code
    except CliError as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 1


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("TENANTRY_DATA_DIR") or ".tenantry")


def _client(args: argparse.Namespace) -> httpx.Client:
    directory = _data_dir(args)
    url = login_cmd.control_plane_url(args.url, directory)
    token = (
        args.token or os.environ.get("TENANTRY_TOKEN") or login_cmd.session_token(directory, url)
    )
    if not token:
        token_file = _data_dir(args) / "admin-token"
        try:
            token = token_file.read_text().strip()
        except OSError:
            raise CliError(
                "no credentials: run `tenantry login`, pass --token, set TENANTRY_TOKEN, "
                f"or run where {token_file} exists"
            ) from None
    return httpx.Client(
        base_url=str(url), headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    )


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise CliError(
            f"cannot reach the control plane at {client.base_url} ({exc}); "
            "is `tenantry up` running?"
        ) from None
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = body.get("detail") or body.get("title")
        except ValueError:
            detail = response.text
        raise CliError(f"{response.status_code}: {detail}")
    return response.json() if response.content else None


def _show(tenant: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(tenant, indent=2))
        return
    for field in ("id", "slug", "name", "plan", "state", "endpoint", "reason", "created_at"):
        if tenant.get(field) is not None:
            print(f"{field + ':':<12} {tenant[field]}")


def _follow(client: httpx.Client, tenant_id: str, goal: set[str], timeout: float) -> dict[str, Any]:
    """Print the tenant's events until it reaches a state in ``goal``; poll with a deadline."""
    deadline = time.monotonic() + timeout
    after = 0

    def show_new_events() -> None:
        nonlocal after
        for event in call(
            client, "GET", f"/api/v1/tenants/{tenant_id}/events", params={"after": after}
        ):
            after = event["id"]
            print(f"  {event['created_at'][11:19]}  {event['type']:<22} {event['message']}")

    while True:
        show_new_events()
        tenant: dict[str, Any] = call(client, "GET", f"/api/v1/tenants/{tenant_id}")
        if tenant["state"] in goal or (tenant["state"] == "failed" and "failed" not in goal):
            # The state may have moved after the events were read: show the event that moved it.
            show_new_events()
            return tenant
        if time.monotonic() > deadline:
            raise CliError(f"tenant still {tenant['state']} after {timeout:g}s")
        time.sleep(0.25)


def _create(client: httpx.Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"slug": args.slug, "plan": args.plan}
    if args.name:
        body["name"] = args.name
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    tenant = call(client, "POST", "/api/v1/tenants", json=body, headers=headers)
    key = tenant.pop("gateway_key", None)
    if args.wait:
        tenant = _follow(client, tenant["id"], {"running"}, args.timeout)
    _show(tenant, args.json)
    if key and not args.json:
        print(f"\nGateway key (shown once): {key['key']}")
    elif key:
        print(json.dumps({"gateway_key": key}, indent=2))
    return 0 if tenant["state"] != "failed" else 1


def _list(client: httpx.Client, args: argparse.Namespace) -> int:
    params = {"limit": args.limit}
    if args.state:
        params["state"] = args.state
    page = call(client, "GET", "/api/v1/tenants", params=params)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    print(f"{'SLUG':<24} {'STATE':<13} {'PLAN':<10} {'ENDPOINT':<28} ID")
    for tenant in page["items"]:
        print(
            f"{tenant['slug']:<24} {tenant['state']:<13} {tenant['plan']:<10} "
            f"{tenant['endpoint'] or '-':<28} {tenant['id']}"
        )
    if page["next_cursor"]:
        print("(more tenants; raise --limit)")
    return 0


def _get(client: httpx.Client, args: argparse.Namespace) -> int:
    _show(call(client, "GET", f"/api/v1/tenants/{args.tenant}"), args.json)
    return 0


def _delete(client: httpx.Client, args: argparse.Namespace) -> int:
    tenant = call(client, "DELETE", f"/api/v1/tenants/{args.tenant}")
    if args.wait:
        tenant = _follow(client, tenant["id"], {"deleted"}, args.timeout)
    _show(tenant, args.json)
    return 0
