"""The gateway's HTTP clients to model providers: one shared client per provider kind, with
explicit timeouts and connection limits, behind one small interface.

Calls to the platform's fleet, the gateway's hot path, go through aiohttp by default
(``TENANTRY_GATEWAY_UPSTREAM_CLIENT=httpx`` switches them): ``bench/gateway_latency.py``
measures both clients on that path with everything else equal, and ``bench/RESULTS.md`` has
the figures behind the choice. BYOK providers, reached over the internet where the client's
cost is lost in the network's, are called with httpx. Providers see neither: they
:meth:`ModelClient.build` an :class:`UpstreamRequest`, :meth:`ModelClient.send` it and read an
:class:`UpstreamAnswer` (its status, headers, and its body whole or as
:class:`UpstreamStream`).

Clients are made on first use, so a gateway that never calls Anthropic never pays for that
client, and one whose platform fleet is plain http (the usual case inside a cluster) never
loads CA certificates before it can answer ``/readyz``; aiohttp, which loads them when
imported, is imported then, off the event loop. Transport failures become
:class:`~tenant_gateway.models.errors.UpstreamUnavailable`; whether a failure happened
before the request left (safe to retry) is kept on the error.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec

from tenant_gateway.models.errors import UpstreamUnavailable
from tenant_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

LatencyObserver = Callable[[str, str, float], None]
"""Called as ``observe(provider, endpoint, seconds)`` with the time to a response head."""

_HTTPX_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
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


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """A request to a provider, built by :meth:`ModelClient.build`."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class UpstreamAnswer(Protocol):
    """A provider's answer: its head, and its body read whole (``content``, when sent with
    ``stream=False``) or to be read as it arrives (:class:`UpstreamStream`)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Looked up without regard to case."""
        ...

    @property
    def content(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a broken-off body raises :class:`UpstreamUnavailable`."""
        ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None:
        """Give the connection back (or close it when the body was not read to its end)."""


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


def cause(exc: BaseException, name: str | None = None) -> str:
    text = str(exc).strip()
    name = name or type(exc).__name__
    return f"{name}: {text}" if text else name


def join(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path}"


def _broken_off(url: str, exc: BaseException, name: str | None = None) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"the model endpoint {origin(url)} broke off its answer: {cause(exc, name)}"
    )


def check_url(url: str) -> None:
    """Raise :class:`UpstreamUnavailable` unless ``url`` is an http(s) URL with a host."""
    if not _usable_url(url):
        raise UpstreamUnavailable(
            f"the model endpoint URL is not usable: {origin(url)} is not an http(s) URL "
            "with a host and a port from 0 to 65535"
        )


@functools.lru_cache(maxsize=256)
def _usable_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL with a host (remembered: a gateway calls a few)."""
    parts = urlsplit(url)
    try:
        _ = parts.port
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        usable = usable and not any(c.isspace() or ord(c) < 32 for c in parts.netloc)
    except ValueError:
        usable = False
    return usable


class UpstreamStream:
    """An upstream answer being streamed as it is; iterate :meth:`chunks`, always
    :meth:`aclose`."""

    def __init__(self, response: UpstreamAnswer, base_url: str) -> None:
        self._response = response
        self._base_url = base_url
        self.content_type = response.headers.get("content-type", "text/event-stream")

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_bytes():
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        # Shielded: the surrounding task may be cancelled because the client went away, and
        # the upstream request must still be ended (its connection closed if unfinished).
        with anyio.CancelScope(shield=True):
            await self._response.aclose()


class _Session(Protocol):
    """One provider kind's client."""

    async def send(self, request: UpstreamRequest, *, stream: bool) -> UpstreamAnswer: ...

    async def aclose(self) -> None: ...


# -- httpx ----------------------------------------------------------------------------------


class _HttpxAnswer:
    __slots__ = ("_response", "_url")

    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._url = url

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def content(self) -> bytes:
        return self._response.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise _broken_off(self._url, exc) from None

    async def aread(self) -> bytes:
        try:
            return await self._response.aread()
        except httpx.HTTPError as exc:
            raise _broken_off(self._url, exc) from None

    async def aclose(self) -> None:
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


class _HttpxSession:
    def __init__(self, settings: GatewaySettings) -> None:
        s = settings
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
        self.client = httpx.AsyncClient(
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

    async def send(self, request: UpstreamRequest, *, stream: bool) -> UpstreamAnswer:
        try:
            built = self.client.build_request(
                request.method, request.url, content=request.body or None, headers=request.headers
            )
        except httpx.InvalidURL as exc:
            raise UpstreamUnavailable(
                f"the model endpoint URL is not usable: {cause(exc)}"
            ) from None
        try:
            response = await self.client.send(built, stream=stream)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(request.url)} is unreachable: {cause(exc)}",
                retryable=isinstance(exc, _HTTPX_NOT_SENT),
                provider_fault=not isinstance(exc, httpx.PoolTimeout),
            ) from None
        return _HttpxAnswer(response, request.url)

    async def aclose(self) -> None:
        await self.client.aclose()


# -- aiohttp --------------------------------------------------------------------------------

_AIOHTTP_NAMES = {
    "ClientConnectorError": "ConnectError",
    "ClientConnectorSSLError": "ConnectError",
    "ClientConnectorCertificateError": "ConnectError",
    "ClientConnectorDNSError": "ConnectError",
    "ConnectionTimeoutError": "ConnectTimeout",
    "SocketTimeoutError": "ReadTimeout",
    "ServerTimeoutError": "ReadTimeout",
    "ServerDisconnectedError": "RemoteProtocolError",
    "ClientPayloadError": "RemoteProtocolError",
}
"""aiohttp's failures under the names httpx gives the same ones, so a message says the same
whichever client carried the call."""


def _aiohttp_name(exc: BaseException) -> str:
    for kind in type(exc).__mro__:
        if kind.__name__ in _AIOHTTP_NAMES:
            return _AIOHTTP_NAMES[kind.__name__]
    return "ReadTimeout" if isinstance(exc, TimeoutError) else type(exc).__name__


class _AiohttpAnswer:
    __slots__ = ("_errors", "_response", "_url", "content")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        url: str,
        errors: tuple[type[BaseException], ...],
        content: bytes = b"",
    ) -> None:
        self._response = response
        self._url = url
        self._errors = errors
        self.content = content

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except self._errors as exc:
            raise _broken_off(self._url, exc, _aiohttp_name(exc)) from None

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except self._errors as exc:
            raise _broken_off(self._url, exc, _aiohttp_name(exc)) from None

    async def aclose(self) -> None:
        # Gives the connection back when the body was read to its end, else closes it.
        self._response.release()


class _AiohttpSession:
    def __init__(self, settings: GatewaySettings, module: Any) -> None:
        s = settings
        self._aiohttp = module
        self._errors: tuple[type[BaseException], ...] = (module.ClientError, TimeoutError)
        self._not_sent: tuple[type[BaseException], ...] = (
            module.ClientConnectorError,
            module.ConnectionTimeoutError,
        )
        connector = module.TCPConnector(
            limit=s.upstream_max_connections, limit_per_host=0, keepalive_timeout=30.0
        )
        self.client: aiohttp.ClientSession = module.ClientSession(
            connector=connector,
            timeout=module.ClientTimeout(
                total=None,
                connect=s.upstream_connect_timeout,
                sock_read=s.upstream_read_timeout,
            ),
            # Providers are reached directly; proxy variables and .netrc must not redirect,
            # and no provider's cookies are kept for the next call.
            trust_env=False,
            cookie_jar=module.DummyCookieJar(),
        )

    def _pool_full(self) -> bool:
        """Whether every pooled connection is in use (a wait for one is ours, not the
        provider's, to blame); aiohttp keeps the count on its connector."""
        connector = self.client.connector
        acquired = getattr(connector, "_acquired", None)
        limit = getattr(connector, "limit", 0)
        return acquired is not None and bool(limit) and len(acquired) >= limit

    async def send(self, request: UpstreamRequest, *, stream: bool) -> UpstreamAnswer:
        try:
            response = await self.client.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=request.headers,
                allow_redirects=False,
            )
        except self._aiohttp.InvalidURL as exc:
            raise UpstreamUnavailable(
                f"the model endpoint URL is not usable: {cause(exc, 'InvalidURL')}"
            ) from None
        except self._errors as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(request.url)} is unreachable: "
                f"{cause(exc, _aiohttp_name(exc))}",
                retryable=isinstance(exc, self._not_sent),
                provider_fault=not self._pool_full(),
            ) from None
        if stream:
            return _AiohttpAnswer(response, request.url, self._errors)
        try:
            content = await response.read()
        except self._errors as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(request.url)} is unreachable: "
                f"{cause(exc, _aiohttp_name(exc))}"
            ) from None
        finally:
            response.release()
        return _AiohttpAnswer(response, request.url, self._errors, content)

    async def aclose(self) -> None:
        await self.client.close()


# -- the client -----------------------------------------------------------------------------


class ModelClient:
    """The shared HTTP clients, one per provider kind (``platform``, ``openai``, ...)."""

    def __init__(
        self, settings: GatewaySettings, *, observe: LatencyObserver | None = None
    ) -> None:
        self.settings = settings
        self.observe = observe
        """Told the latency of every upstream call; the app sets it to feed its metrics."""
        self._sessions: dict[str, _Session] = {}
        self._aiohttp: asyncio.Future[Any] | None = None
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.aclose()

    async def _session(self, provider: str) -> _Session:
        """The client of ``provider``'s calls, made on first use."""
        session = self._sessions.get(provider)
        if session is not None:
            return session
        if not self._started:
            raise UpstreamUnavailable("the model client is not started")
        if provider == "platform" and self.settings.upstream_client == "aiohttp":
            if self._aiohttp is None:
                # Importing aiohttp loads CA certificates: done once, on a worker thread.
                self._aiohttp = asyncio.ensure_future(
                    asyncio.to_thread(importlib.import_module, "aiohttp")
                )
            module = await asyncio.shield(self._aiohttp)
            session = self._sessions.get(provider) or _AiohttpSession(self.settings, module)
        else:
            session = _HttpxSession(self.settings)
        self._sessions[provider] = session
        return session

    def build(
        self,
        provider: str,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes = b"",
    ) -> UpstreamRequest:
        """A request to ``provider``; an unusable URL raises :class:`UpstreamUnavailable`."""
        check_url(url)
        return UpstreamRequest(method, url, headers, body)

    async def send(
        self, provider: str, endpoint: str, request: UpstreamRequest, *, stream: bool
    ) -> UpstreamAnswer:
        """Send ``request``; transport failures become :class:`UpstreamUnavailable`."""
        started = time.perf_counter()
        session = self._sessions.get(provider) or await self._session(provider)
        response = await session.send(request, stream=stream)
        if self.observe is not None:
            self.observe(provider, endpoint, time.perf_counter() - started)
        return response

    async def read_error(self, response: UpstreamAnswer) -> bytes:
        """The (short) body of an error answer to a streamed request; closes it."""
        try:
            return await response.aread()
        finally:
            await response.aclose()
