"""The control plane's internal API, called by tenant gateways (not by admins)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from control_plane.channels.platform_bot import PlatformBot
from control_plane.errors import InvalidInputError
from control_plane.usage.service import UsageLedger, read_batch
from control_plane.vault.service import CredentialVault
from tenant_gateway.channels.contract import (
    PLATFORM_REPLY_PATH,
    PLATFORM_TYPING_PATH,
    ChatAction,
    OutboundReply,
    ReplyReceipt,
)
from tenant_gateway.contract import UNSEAL_PATH, USAGE_PATH, UnsealResponse, UsageReceipt

T = TypeVar("T")


def _path(template: str) -> str:
    return template.replace("{tenant_id}", "{gateway_tenant:str}")


def _decode(raw: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInputError(f"not a valid {kind.__name__}: {exc}") from None


@post(_path(UNSEAL_PATH), status_code=200, tags=["internal"])
async def unseal_gateway(
    request: Request[Any, Any, Any],
    gateway_tenant: FromPath[str],
    vault: NamedDependency[CredentialVault],
) -> UnsealResponse:
    """A gateway, authenticated by its identity token, fetches its tenant's data keys.

    Refused (403) for a suspended tenant, a tenant being deleted, or a wrong token."""
    return await vault.unseal(gateway_tenant, request.headers.get("authorization"))


@post(_path(USAGE_PATH), status_code=200, tags=["internal"])
async def ingest_usage(
    request: Request[Any, Any, Any],
    gateway_tenant: FromPath[str],
    vault: NamedDependency[CredentialVault],
    usage: NamedDependency[UsageLedger],
) -> UsageReceipt:
    """A gateway, authenticated by its identity token, reports a batch of its tenant's usage
    events; each event id is counted once, however often it is delivered.

    Refused (403) for a wrong token or events of another tenant; 400 for a malformed batch."""
    await vault.verify_gateway(gateway_tenant, request.headers.get("authorization"))
    batch = read_batch(await request.body())
    return await usage.ingest(gateway_tenant, batch.events)


@post(_path(PLATFORM_REPLY_PATH), status_code=200, tags=["internal"])
async def platform_bot_reply(
    request: Request[Any, Any, Any],
    gateway_tenant: FromPath[str],
    vault: NamedDependency[CredentialVault],
    platform_bot: NamedDependency[PlatformBot],
) -> ReplyReceipt:
    """A gateway, authenticated by its identity token, hands over a reply to a chat of the
    platform Telegram bot bound to its tenant.

    ``delivered: false`` (200) when it will never be sent (the chat is not bound to this
    tenant, the person blocked the bot); 503 with ``Retry-After`` when Telegram did not take
    it now; 403 for a wrong token."""
    await vault.verify_gateway(gateway_tenant, request.headers.get("authorization"))
    reply = _decode(await request.body(), OutboundReply)
    return await platform_bot.send_reply(gateway_tenant, reply)


@post(_path(PLATFORM_TYPING_PATH), status_code=200, tags=["internal"])
async def platform_bot_typing(
    request: Request[Any, Any, Any],
    gateway_tenant: FromPath[str],
    vault: NamedDependency[CredentialVault],
    platform_bot: NamedDependency[PlatformBot],
) -> ReplyReceipt:
    """A gateway shows "typing…" in a chat of the platform bot bound to its tenant."""
    await vault.verify_gateway(gateway_tenant, request.headers.get("authorization"))
    action = _decode(await request.body(), ChatAction)
    return await platform_bot.show_typing(gateway_tenant, action.channel, action.chat_id)
