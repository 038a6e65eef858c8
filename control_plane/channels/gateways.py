"""The control plane's way into tenant gateways for chat channels.

:class:`GatewayLink` finds a tenant's running gateway and calls its internal channel
endpoints with the tenant's inbound key (derived on demand, never stored): it delivers
messages of the platform's shared bots (:data:`~tenant_gateway.channels.contract.
INBOUND_PATH`) and relays the webhook calls of a tenant's own channel accounts (Telegram,
WhatsApp, Discord) as they came (:data:`~tenant_gateway.channels.contract.WEBHOOK_PATH`),
so a gateway needs no public address of its own. A tenant that is not running, or a gateway
that does not answer, is :class:`~control_plane.errors.GatewayUnavailable` (the channels
retry webhook deliveries that get a 5xx).
"""

from __future__ import annotations

import time
from typing import TypeVar

import httpx
import msgspec
from sqlalchemy import select

from control_plane.db.engine import Database
from control_plane.db.models import TenantRow
from control_plane.errors import GatewayUnavailable, NotFoundError, TenantryError
from control_plane.tenants.states import TenantState
from control_plane.vault.digests import TokenDigests
from tenant_gateway.channels.contract import (
    INBOUND_PATH,
    RELAYED_HEADERS,
    WEBHOOK_PATH,
    InboundMessage,
    InboundReceipt,
)

ENDPOINT_MEMORY = 5.0
"""Seconds a running gateway's endpoint is used without looking at the tenant again."""
T = TypeVar("T")

RELAY_CHANNELS = frozenset({"telegram", "whatsapp", "discord"})
"""Channels whose webhooks the public relay passes on to a tenant's gateway."""


class GatewayRefusal(TenantryError):
    """The tenant's gateway answered a call with a problem (4xx): passed on as it said it."""

    def __init__(self, status: int, title: str, detail: str, problem_type: str) -> None:
        super().__init__(detail)
        self.status_code = status
        self.title = title
        self.problem_type = problem_type


class RelayedAnswer(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    content_type: str


class GatewayLink:
    """Calls tenants' gateways on behalf of channels; :meth:`close` ends its connections."""

    def __init__(self, db: Database, digests: TokenDigests, timeout: float = 30.0) -> None:
        self.db = db
        self.digests = digests
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            trust_env=False,
        )
        self._endpoints: dict[str, tuple[str, float]] = {}
        """Running gateways' endpoints, remembered ``ENDPOINT_MEMORY`` seconds (or until a
        call to one fails)."""

    async def close(self) -> None:
        await self._http.aclose()

    async def endpoint(self, tenant_id: str) -> str:
        remembered = self._endpoints.get(tenant_id)
        if remembered is not None and remembered[1] > time.monotonic():
            return remembered[0]
        endpoint = await self._endpoint(tenant_id)
        self._endpoints[tenant_id] = (endpoint, time.monotonic() + ENDPOINT_MEMORY)
        return endpoint

    async def _endpoint(self, tenant_id: str) -> str:
        """The running gateway's base URL; :class:`GatewayUnavailable` if it has none (yet),
        :class:`NotFoundError` if the tenant is gone or going."""
        async with self.db.transaction(platform="reach a tenant's gateway for a channel") as s:
            found = (
                await s.execute(
                    select(TenantRow.state, TenantRow.endpoint).where(TenantRow.id == tenant_id)
                )
            ).first()
        if found is None:
            raise NotFoundError(f"no tenant {tenant_id!r}")
        state, endpoint = found
        if state in (TenantState.DELETING, TenantState.DELETED):
            raise NotFoundError(f"the tenant is {state}: its channels take no more messages")
        if state != TenantState.RUNNING or not endpoint:
            raise GatewayUnavailable(f"the tenant's gateway is not running (state {state})")
        return str(endpoint).rstrip("/")

    async def deliver(self, tenant_id: str, message: InboundMessage) -> InboundReceipt:
        """Hand ``message`` to the tenant's gateway; it is stored there once answered 2xx."""
        response = await self._call(
            tenant_id,
            "POST",
            INBOUND_PATH,
            msgspec.json.encode(message),
            {"content-type": "application/json"},
        )
        if response.status_code not in (200, 202):
            raise GatewayUnavailable(
                f"the tenant's gateway refused a message: {response.status_code} "
                f"{response.text[:200]}"
            )
        return msgspec.json.decode(response.content, type=InboundReceipt)

    async def call(
        self,
        tenant_id: str,
        method: str,
        path: str,
        payload: object = None,
        answer: type[T] | None = None,
    ) -> T | None:
        """One of the gateway's internal endpoints, with ``payload`` as its JSON body; the
        answer decoded as ``answer`` (None without one). A problem the gateway answers (4xx)
        is raised as a :class:`GatewayRefusal` with its status and detail."""
        body = b"" if payload is None else msgspec.json.encode(payload)
        response = await self._call(
            tenant_id, method, path, body, {"content-type": "application/json"}
        )
        if response.status_code >= 500:
            raise GatewayUnavailable(
                f"the tenant's gateway failed {method} {path}: {response.status_code}"
            )
        if response.status_code >= 400:
            try:
                found = response.json()
            except ValueError:
                found = {}
            raise GatewayRefusal(
                response.status_code,
                str(found.get("title") or "Refused by the gateway"),
                str(found.get("detail") or response.text[:200]),
                str(found.get("type") or "about:blank"),
            )
        if answer is None:
            return None
        try:
            return msgspec.json.decode(response.content, type=answer)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise GatewayUnavailable(f"the tenant's gateway answered {path} oddly: {exc}") from None

    async def relay(
        self,
        tenant_id: str,
        channel: str,
        method: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> RelayedAnswer:
        """Pass a channel's webhook call on to the tenant's gateway and return its answer."""
        path = WEBHOOK_PATH.replace("{channel}", channel)
        if query:
            path = f"{path}?{query}"
        passed = {k.lower(): v for k, v in headers.items() if k.lower() in RELAYED_HEADERS}
        response = await self._call(tenant_id, method, path, body, passed)
        if response.status_code >= 500:
            raise GatewayUnavailable(
                f"the tenant's gateway failed the {channel} webhook: {response.status_code}"
            )
        return RelayedAnswer(
            status=response.status_code,
            body=response.content,
            content_type=response.headers.get("content-type", "application/octet-stream"),
        )

    async def _call(
        self, tenant_id: str, method: str, path: str, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        base = await self.endpoint(tenant_id)
        headers = {**headers, "authorization": f"Bearer {self.digests.inbound_key(tenant_id)}"}
        try:
            return await self._http.request(method, base + path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            self._endpoints.pop(tenant_id, None)
            raise GatewayUnavailable(
                f"the tenant's gateway did not answer: {type(exc).__name__}"
            ) from exc
