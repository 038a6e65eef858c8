"""``tenantry channels …``: a tenant's chat channels from the command line.

* ``pair TENANT``: a code that pairs a Telegram chat with the platform bot;
  ``list TENANT`` the chats bound; ``unbind TENANT BINDING``.
* ``telegram show|set|approve|revoke TENANT …``: who may talk to the tenant's own bot.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from control_plane.cli.tenants_cmd import call, connection_options, dispatch

POLICIES = ("pairing", "allowlist", "open")


def add_parser(commands: Any) -> None:
    channels = commands.add_parser("channels", help="pair chats, and say who may talk to bots")
    connection_options(channels)
    actions = channels.add_subparsers(dest="action", required=True, metavar="ACTION")

    pair = actions.add_parser("pair", help="a code pairing a Telegram chat (platform bot)")
    pair.add_argument("tenant")
    pair.set_defaults(run_action=_pair)
    listed = actions.add_parser("list", help="the chats bound to a tenant")
    listed.add_argument("tenant")
    listed.set_defaults(run_action=_list)
    unbind = actions.add_parser("unbind", help="unbind a chat")
    unbind.add_argument("tenant")
    unbind.add_argument("binding", help="binding id (see `list`)")
    unbind.set_defaults(run_action=_unbind)

    telegram = actions.add_parser("telegram", help="the tenant's own Telegram bot")
    bot = telegram.add_subparsers(dest="bot_action", required=True, metavar="ACTION")
    show = bot.add_parser("show", help="DM policy, allowlist, approved people, bot status")
    show.add_argument("tenant")
    show.set_defaults(run_action=_show)
    change = bot.add_parser("set", help="change the DM policy and/or the allowlist")
    change.add_argument("tenant")
    change.add_argument("--dm-policy", choices=POLICIES)
    change.add_argument(
        "--allow",
        type=int,
        nargs="*",
        metavar="USER_ID",
        help="the whole allowlist, Telegram user ids (none: empty it)",
    )
    change.set_defaults(run_action=_set)
    approve = bot.add_parser("approve", help="let in the person the bot gave this code")
    approve.add_argument("tenant")
    approve.add_argument("code")
    approve.set_defaults(run_action=_approve)
    revoke = bot.add_parser("revoke", help="let an approved person out again")
    revoke.add_argument("tenant")
    revoke.add_argument("user_id", type=int)
    revoke.set_defaults(run_action=_revoke)

    channels.set_defaults(run=dispatch)


def _base(args: argparse.Namespace) -> str:
    return f"/api/v1/tenants/{args.tenant}/channels"


def _print(value: Any, args: argparse.Namespace, text: str) -> int:
    print(json.dumps(value, indent=2) if args.json else text)
    return 0


def _pair(client: httpx.Client, args: argparse.Namespace) -> int:
    issued = call(client, "POST", f"{_base(args)}/telegram/pairing")
    return _print(issued, args, f"code: {issued['code']}\n{issued['instructions']}")


def _list(client: httpx.Client, args: argparse.Namespace) -> int:
    bindings = call(client, "GET", f"{_base(args)}/")
    lines = [
        f"{b['id']}  {b['channel']:<18} {b['chat_id']:<16} {b['status']:<12} {b['display_name']}"
        for b in bindings
    ]
    return _print(bindings, args, "\n".join(lines) or "no chats bound")


def _unbind(client: httpx.Client, args: argparse.Namespace) -> int:
    call(client, "DELETE", f"{_base(args)}/{args.binding}")
    return _print({"unbound": args.binding}, args, f"unbound {args.binding}")


def _access_text(access: dict[str, Any]) -> str:
    bot = f"@{access['username']}" if access.get("username") else "-"
    approved = ", ".join(f"{p['display_name'] or '?'} ({p['user_id']})" for p in access["approved"])
    return "\n".join(
        [
            f"bot:        {bot} ({access['mode']})",
            f"dm policy:  {access['dm_policy']}",
            f"allowlist:  {', '.join(map(str, access['allowlist'])) or '-'}",
            f"approved:   {approved or '-'}",
        ]
    )


def _show(client: httpx.Client, args: argparse.Namespace) -> int:
    access = call(client, "GET", f"{_base(args)}/telegram")
    return _print(access, args, _access_text(access))


def _set(client: httpx.Client, args: argparse.Namespace) -> int:
    change: dict[str, Any] = {}
    if args.dm_policy is not None:
        change["dm_policy"] = args.dm_policy
    if args.allow is not None:
        change["allowlist"] = args.allow
    if not change:
        raise SystemExit("tenantry: say what to change: --dm-policy and/or --allow")
    access = call(client, "PUT", f"{_base(args)}/telegram", json=change)
    return _print(access, args, _access_text(access))


def _approve(client: httpx.Client, args: argparse.Namespace) -> int:
    peer = call(client, "POST", f"{_base(args)}/telegram/approvals", json={"code": args.code})
    name = peer["display_name"] or "them"
    return _print(peer, args, f"approved {name} (Telegram user {peer['user_id']})")


def _revoke(client: httpx.Client, args: argparse.Namespace) -> int:
    call(client, "DELETE", f"{_base(args)}/telegram/approvals/{args.user_id}")
    return _print({"revoked": args.user_id}, args, f"revoked Telegram user {args.user_id}")
