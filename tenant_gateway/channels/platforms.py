"""What the WhatsApp and Discord adapters share: their errors, their HTTP calls, text splitting.

Both run inside the gateway while the tenant holds their credential (read from the
:class:`~tenant_gateway.credentials.CredentialKeeper` on every call, so a credential stored,
rotated or deleted takes effect without a restart), take their platform's webhook calls
through the control plane's relay and send replies through the platform's HTTP API, whose
base comes with the bundle (``provider_bases``) so tests and air-gapped setups can point it
elsewhere. A webhook call that is refused raises a :class:`~tenant_gateway.settings.GatewayError`
and is answered as an RFC 9457 problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tenant_gateway.contract import GatewayBundle
from tenant_gateway.credentials import CredentialKeeper
from tenant_gateway.settings import GatewayError

SEND_TIMEOUT = httpx.Timeout(15.0)


class ChannelNotConfigured(GatewayError):
    """The tenant holds no credential for the channel (the call is not for us)."""

    status_code = 404
    problem = "channel-not-configured"
    title = "Channel not configured"
    error_type = "invalid_request_error"
    code = "channel_not_configured"


class SignatureRefused(GatewayError):
    """The platform's signature is missing, wrong, stale or replayed."""

    status_code = 401
    problem = "bad-webhook-signature"
    title = "Bad webhook signature"
    error_type = "authentication_error"
    code = "bad_webhook_signature"


class VerificationRefused(GatewayError):
    """A webhook subscription handshake with the wrong verify token."""

    status_code = 403
    problem = "webhook-verification-refused"
    title = "Webhook verification refused"
    error_type = "permission_error"
    code = "webhook_verification_refused"


class BadWebhookCall(GatewayError):
    status_code = 400
    problem = "invalid-webhook-call"
    title = "Invalid webhook call"
    error_type = "invalid_request_error"
    code = "invalid_webhook_call"


class PlatformRefused(GatewayError):
    """The platform's API did not take a reply (the worker tries it again later)."""

    status_code = 502
    problem = "channel-platform-refused"
    title = "Channel platform refused"


class PlatformLink:
    """The credential and API base of one platform, and the client replies go out with."""

    def __init__(
        self,
        provider: str,
        default_base: str,
        keeper: CredentialKeeper,
        bundle: Callable[[], GatewayBundle],
    ) -> None:
        self.provider = provider
        self._default_base = default_base
        self._keeper = keeper
        self._bundle = bundle
        self._client: httpx.AsyncClient | None = None

    @property
    def base(self) -> str:
        return self._bundle().provider_bases.get(self.provider, self._default_base).rstrip("/")

    def credential(self) -> dict[str, str]:
        """The tenant's credential; :class:`ChannelNotConfigured` if it holds none."""
        fields = self._keeper.find(self.provider)
        if fields is None:
            raise ChannelNotConfigured(f"this tenant has no {self.provider} credential")
        return fields

    def keep_secret(self, value: str) -> None:
        """Mask ``value`` in every log line of this process (an interaction token, say)."""
        self._keeper.secret_values.add(value)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self, method: str, path: str, payload: Any, headers: dict[str, str]
    ) -> httpx.Response:
        """``method {base}{path}`` with ``payload`` as JSON; :class:`PlatformRefused` unless
        the platform answers 2xx. Its error text is not quoted: it may echo what was sent."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=SEND_TIMEOUT, follow_redirects=False)
        try:
            response = await self._client.request(
                method, self.base + path, json=payload, headers=headers
            )
        except httpx.HTTPError as exc:
            raise PlatformRefused(
                f"{self.provider} could not be reached: {type(exc).__name__}"
            ) from None
        if not response.is_success:
            what = path.split("/")[1]  # never the rest: a follow-up's path holds its token
            raise PlatformRefused(
                f"{self.provider} answered HTTP {response.status_code} to {method} {what}"
            )
        return response
