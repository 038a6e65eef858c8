"""A :data:`~tenant_gateway.channels.worker.ReplySink` that POSTs each reply as JSON to a URL.

Until the channel adapters run inside the gateway, replies go to whatever listens at
``TENANTRY_GATEWAY_REPLY_URL`` (an adapter process, or a test's recording server). Any
status but 2xx, or no answer within the timeout, counts as not delivered.
"""

from __future__ import annotations

import httpx
import msgspec

from tenant_gateway.channels.contract import OutboundReply
from tenant_gateway.settings import GatewayError


class ReplyNotDelivered(GatewayError):
    """The reply URL did not take a reply."""

    status_code = 502
    problem = "reply-not-delivered"
    title = "Reply not delivered"


class HttpReplySink:
    """POSTs replies to ``url``; :meth:`close` ends its connections."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self._client = httpx.AsyncClient(timeout=timeout)

    async def __call__(self, reply: OutboundReply) -> None:
        try:
            response = await self._client.post(
                self.url,
                content=msgspec.json.encode(reply),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ReplyNotDelivered(f"cannot reach {self.url}: {exc!r}") from None
        if not response.is_success:
            raise ReplyNotDelivered(f"{self.url} answered {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()
