"""The gateway's HTTP clients to model providers: one shared ``httpx.AsyncClient`` per
provider kind, with explicit timeouts and connection limits.

Clients are made on first use, so a gateway that never calls Anthropic never pays for that
client, and one whose platform fleet is plain http (the usual case inside a cluster) never
loads CA certificates before it can answer ``/readyz``. Transport failures become
:class:`~tenant_gateway.models.errors.UpstreamUnavailable`; whether a failure happened
before the request left (safe to retry) is kept on the error.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec

from tenant_gateway.models.errors import UpstreamUnavailable
from tenant_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

LatencyObserver = Callable[[str, str, float], None]
"""Called as ``observe(provider, endpoint, seconds)`` with the time to a response head."""

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures that happen before the request reaches the provider: safe to try again."""


class UpstreamReply(msgspec.Struct, frozen=True):
    """A complete (non-streaming) answer of a provider, in OpenAI's shape."""

    status: int
    content: bytes
    content_type: str


class AnswerStream(Protocol):
    """A streamed answer in OpenAI's server-sent-events shape."""

    content_type: str

    def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive."""
        ...

    async def aclose(self) -> None:
        """Close the upstream response, even while the caller is being cancelled."""


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: enough to name it in a message, no credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    return f"{parts.scheme}://{host}{port}"


def cause(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def join(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path}"


class UpstreamStream:
    """An upstream answer being streamed as it is; iterate :meth:`chunks`, always
    :meth:`aclose`."""

    def __init__(self, response: httpx.Response, base_url: str) -> None:
        self._response = response
        self._base_url = base_url
        self.content_type = response.headers.get("content-type", "text/event-stream")

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                if chunk:
                    yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(self._base_url)} broke off its answer: {cause(exc)}"
            ) from None

    async def aclose(self) -> None:
        # Shielded: the surrounding task may be cancelled because the client went away, and
        # the upstream request must still be ended (its connection closed if unfinished).
        with anyio.CancelScope(shield=True):
            await self._response.aclose()


class _LazyTransport(httpx.AsyncBaseTransport):
    """A transport made on first use (an https one loads CA certificates when made)."""

    def __init__(self, make: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._make = make
        self._transport: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = self._make()
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


class ModelClient:
    """The shared HTTP clients, one per provider kind (``platform``, ``openai``, ...)."""

    def __init__(
        self, settings: GatewaySettings, *, observe: LatencyObserver | None = None
    ) -> None:
        self.settings = settings
        self.observe = observe
        """Told the latency of every upstream call; the app sets it to feed its metrics."""
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def http(self, provider: str) -> httpx.AsyncClient:
        """The client of ``provider``'s calls, made on first use."""
        client = self._clients.get(provider)
        if client is None:
            if not self._started:
                raise UpstreamUnavailable("the model client is not started")
            client = self._clients[provider] = self._make_client()
        return client

    def _make_client(self) -> httpx.AsyncClient:
        s = self.settings
        limits = httpx.Limits(
            max_connections=s.upstream_max_connections,
            max_keepalive_connections=min(32, s.upstream_max_connections),
            keepalive_expiry=30.0,
        )
        # Plain http never uses a TLS context, so it gets one without certificates loaded.
        plain = httpx.AsyncHTTPTransport(
            verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), limits=limits
        )
        tls = _LazyTransport(lambda: httpx.AsyncHTTPTransport(verify=True, limits=limits))
        return httpx.AsyncClient(
            transport=plain,
            mounts={"https://": tls},
            timeout=httpx.Timeout(
                connect=s.upstream_connect_timeout,
                read=s.upstream_read_timeout,
                write=30.0,
                pool=s.upstream_connect_timeout,
            ),
            # Providers are reached directly; proxy variables and .netrc must not redirect.
            trust_env=False,
            follow_redirects=False,
        )

    def build(
        self,
        provider: str,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes = b"",
    ) -> httpx.Request:
        try:
            return self.http(provider).build_request(
                method, url, content=body or None, headers=headers
            )
        except httpx.InvalidURL as exc:
            raise UpstreamUnavailable(
                f"the model endpoint URL is not usable: {cause(exc)}"
            ) from None

    async def send(
        self, provider: str, endpoint: str, request: httpx.Request, *, stream: bool
    ) -> httpx.Response:
        """Send ``request``; transport failures become :class:`UpstreamUnavailable`."""
        started = time.perf_counter()
        try:
            response = await self.http(provider).send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(str(request.url))} is unreachable: {cause(exc)}",
                retryable=isinstance(exc, _NOT_SENT),
            ) from None
        if self.observe is not None:
            self.observe(provider, endpoint, time.perf_counter() - started)
        return response

    async def read_error(self, response: httpx.Response) -> bytes:
        """The (short) body of an error answer to a streamed request; closes it."""
        try:
            return await response.aread()
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(str(response.url))} broke off its answer: {cause(exc)}"
            ) from None
        finally:
            await response.aclose()
