"""The control plane's side of tenants' own Telegram bots (the bots run in the gateways).

* **Webhooks.** With a public URL (``TENANTRY_PUBLIC_URL``) the control plane registers each
  tenant's bot webhook, ``{public URL}/webhooks/telegram/{tenant id}``, when the tenant stores
  its ``telegram_bot`` credential (``setWebhook`` with a secret token derived per tenant from
  the token key, stored nowhere), removes it when the credential is deleted, and checks
  ``X-Telegram-Bot-Api-Secret-Token`` on every call before relaying it to the gateway.
  Without a public URL the gateways long-poll and nothing is registered.
* **Access.** Who may talk to a tenant's bot lives on the tenant's volume; the API's
  ``/channels/telegram`` endpoints are passed on to the gateway
  (:data:`~tenant_gateway.channels.contract.TELEGRAM_ACCESS_PATH` and
  ``TELEGRAM_APPROVALS_PATH``), so they answer 503 while it is not running.
"""

from __future__ import annotations

import hmac
import logging
from typing import TypeVar

import httpx

from control_plane.channels.gateways import GatewayLink
from control_plane.errors import AuthenticationError, GatewayUnavailable, TenantryError
from control_plane.vault.digests import TokenDigests
from tenant_gateway.channels.contract import (
    TELEGRAM_ACCESS_PATH,
    TELEGRAM_APPROVALS_PATH,
    ApprovedPeer,
    TelegramAccess,
    TelegramAccessUpdate,
    TelegramApproval,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ALLOWED_UPDATES = ["message"]


class WebhookSecretRefused(AuthenticationError):
    problem_type = "https://tenantry.dev/problems/bad-webhook-secret"
    title = "Bad webhook secret"


def check_secret(presented: str | None, expected: str) -> None:
    """Raise unless ``presented`` (Telegram's ``X-Telegram-Bot-Api-Secret-Token``) is
    ``expected``, compared in constant time."""
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise WebhookSecretRefused(
            "X-Telegram-Bot-Api-Secret-Token is missing or not the registered secret"
        )


class WebhookNotRegistered(TenantryError):
    status_code = 502
    problem_type = "https://tenantry.dev/problems/telegram-webhook-refused"
    title = "Telegram webhook not registered"


class TenantBots:
    def __init__(
        self,
        link: GatewayLink,
        http: httpx.AsyncClient,
        api_base: str,
        digests: TokenDigests,
        public_url: str | None = None,
    ) -> None:
        self.link = link
        self.http = http
        self.api_base = api_base.rstrip("/")
        self.digests = digests
        self.public_url = public_url.rstrip("/") if public_url else None

    def secret(self, tenant_id: str) -> str:
        return self.digests.webhook_secret(f"telegram:{tenant_id}")

    def check_secret(self, tenant_id: str, presented: str | None) -> None:
        """Raise unless ``presented`` is the secret registered with the tenant's webhook."""
        check_secret(presented, self.secret(tenant_id))

    async def register(self, tenant_id: str, token: str) -> None:
        """Point the bot's webhook at the relay (with a public URL; else nothing to do)."""
        if self.public_url is None:
            return
        await self._bot_call(
            token,
            "setWebhook",
            {
                "url": f"{self.public_url}/webhooks/telegram/{tenant_id}",
                "secret_token": self.secret(tenant_id),
                "allowed_updates": ALLOWED_UPDATES,
            },
        )
        log.info("registered the Telegram webhook of tenant %s", tenant_id)

    async def unregister(self, tenant_id: str, token: str) -> None:
        """Remove the bot's webhook (best effort: the credential is gone either way)."""
        if self.public_url is None:
            return
        try:
            await self._bot_call(token, "deleteWebhook", {})
        except WebhookNotRegistered as exc:
            log.warning("could not remove the Telegram webhook of tenant %s: %s", tenant_id, exc)

    async def _bot_call(self, token: str, method: str, payload: dict[str, object]) -> None:
        url = f"{self.api_base}/bot{token}/{method}"
        try:
            response = await self.http.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise WebhookNotRegistered(
                f"Telegram could not be reached for {method}: {type(exc).__name__}; "
                "store the credential again to retry"
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200 or not answer.get("ok"):
            description = str(answer.get("description") or f"HTTP {response.status_code}")
            raise WebhookNotRegistered(
                f"Telegram refused {method}: {description[:200]}; store the credential again "
                "to retry"
            )

    # -- who may talk to a tenant's bot, kept by its gateway --------------------------------

    async def access(self, tenant_id: str) -> TelegramAccess:
        return await self._call(tenant_id, "GET", TELEGRAM_ACCESS_PATH, None, TelegramAccess)

    async def set_access(self, tenant_id: str, change: TelegramAccessUpdate) -> TelegramAccess:
        return await self._call(tenant_id, "PUT", TELEGRAM_ACCESS_PATH, change, TelegramAccess)

    async def approve(self, tenant_id: str, approval: TelegramApproval) -> ApprovedPeer:
        return await self._call(tenant_id, "POST", TELEGRAM_APPROVALS_PATH, approval, ApprovedPeer)

    async def revoke(self, tenant_id: str, user_id: int) -> None:
        await self.link.call(tenant_id, "DELETE", f"{TELEGRAM_APPROVALS_PATH}/{user_id}")

    async def _call(
        self, tenant_id: str, method: str, path: str, payload: object, answer: type[T]
    ) -> T:
        found = await self.link.call(tenant_id, method, path, payload, answer)
        if found is None:
            raise GatewayUnavailable(f"the tenant's gateway gave no answer to {method} {path}")
        return found
