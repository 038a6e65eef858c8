"""The platform's model fleet as the gateway sees it: an OpenAI-compatible HTTP API.

One shared ``httpx.AsyncClient`` (explicit timeouts and connection limits) serves every
request of the process; it is made at app startup and closed at shutdown. Request bodies are
forwarded as the client sent them, so fields the gateway does not know (``tools``,
``response_format``, ...) reach the model untouched. Transport failures become
:class:`UpstreamUnavailable` (502), error answers :class:`UpstreamFailed` (passed through).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec

from tenant_gateway.settings import GatewayError, GatewaySettings

log = logging.getLogger(__name__)

LatencyObserver = Callable[[str, float], None]
"""Called as ``observe(endpoint, seconds)`` with the time to the upstream's response head."""


class ModelCard(msgspec.Struct, frozen=True):
    """One entry of an OpenAI model list."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "platform"


class ModelList(msgspec.Struct, frozen=True):
    """Body of ``GET /v1/models``."""

    data: list[ModelCard]
    object: str = "list"


class UpstreamUnavailable(GatewayError):
    """The model endpoint could not be reached, or broke off its answer."""

    status_code = 502
    problem = "upstream-unreachable"
    title = "Model endpoint unreachable"
    error_type = "upstream_error"
    code = "upstream_unreachable"


class UpstreamBadAnswer(GatewayError):
    """The model endpoint answered something the gateway cannot use."""

    status_code = 502
    problem = "upstream-bad-answer"
    title = "Bad answer from the model endpoint"
    error_type = "upstream_error"
    code = "upstream_bad_answer"


class UpstreamFailed(GatewayError):
    """The model endpoint answered an error status; its status and body go to the client."""

    problem = "upstream-error"
    title = "Model endpoint error"
    error_type = "upstream_error"
    code = "upstream_error"

    def __init__(self, status: int, content: bytes, content_type: str | None) -> None:
        super().__init__(f"the model endpoint answered {status}")
        self.status = status
        self.content = content
        self.content_type = content_type or "application/json"


class UpstreamReply(msgspec.Struct, frozen=True):
    """A complete (non-streaming) answer of the model endpoint."""

    status: int
    content: bytes
    content_type: str


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


def _cause(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _endpoint(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path}"


class UpstreamStream:
    """An upstream answer being streamed; iterate :meth:`chunks`, always :meth:`aclose`."""

    def __init__(self, response: httpx.Response, base_url: str) -> None:
        self._response = response
        self._base_url = base_url
        self.content_type = response.headers.get("content-type", "text/event-stream")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive."""
        try:
            async for chunk in self._response.aiter_bytes():
                if chunk:
                    yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(self._base_url)} broke off its answer: {_cause(exc)}"
            ) from None

    async def aclose(self) -> None:
        """Close the upstream response (and its connection, if unfinished), even when the
        surrounding task is being cancelled because the client went away."""
        with anyio.CancelScope(shield=True):
            await self._response.aclose()


class _LazyTransport(httpx.AsyncBaseTransport):
    """A transport made on first use.

    An https transport loads the CA certificates when it is made, which costs tens of
    milliseconds; a gateway whose model endpoint is plain http (the usual case inside a
    cluster) should not pay that before it can answer ``/readyz``.
    """

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
    """Calls the OpenAI-compatible model endpoint at a base URL ending in ``/v1``."""

    def __init__(
        self, settings: GatewaySettings, *, observe: LatencyObserver | None = None
    ) -> None:
        self.settings = settings
        self.observe = observe
        """Told the latency of every upstream call; the app sets it to feed its metrics."""
        self._http: httpx.AsyncClient | None = None
        self._models: dict[str, tuple[float, ModelList]] = {}

    async def start(self) -> None:
        if self._http is not None:
            return
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
        self._http = httpx.AsyncClient(
            transport=plain,
            mounts={"https://": tls},
            timeout=httpx.Timeout(
                connect=s.upstream_connect_timeout,
                read=s.upstream_read_timeout,
                write=30.0,
                pool=s.upstream_connect_timeout,
            ),
            # The fleet is reached directly; proxy variables and .netrc must not redirect it.
            trust_env=False,
            follow_redirects=False,
        )

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            raise UpstreamUnavailable("the model client is not started")
        return self._http

    async def _send(
        self, base_url: str, endpoint: str, request: httpx.Request, *, stream: bool
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._client().send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the model endpoint {origin(base_url)} is unreachable: {_cause(exc)}"
            ) from None
        if self.observe is not None:
            self.observe(endpoint, time.perf_counter() - started)
        return response

    def _build(
        self, method: str, base_url: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> httpx.Request:
        try:
            return self._client().build_request(
                method, _endpoint(base_url, path), content=body or None, headers=headers
            )
        except httpx.InvalidURL as exc:
            raise UpstreamUnavailable(
                f"the model endpoint URL is not usable: {_cause(exc)}"
            ) from None

    def _chat_request(self, base_url: str, body: bytes, accept: str) -> httpx.Request:
        headers = {
            "content-type": "application/json",
            "accept": accept,
            "accept-encoding": "identity",
        }
        return self._build("POST", base_url, "chat/completions", headers, body)

    async def complete(self, base_url: str, body: bytes) -> UpstreamReply:
        """``POST /chat/completions`` without streaming; error statuses raise."""
        request = self._chat_request(base_url, body, "application/json")
        response = await self._send(base_url, "chat", request, stream=False)
        content_type = response.headers.get("content-type", "application/json")
        if response.status_code >= 400:
            raise UpstreamFailed(response.status_code, response.content, content_type)
        return UpstreamReply(
            status=response.status_code, content=response.content, content_type=content_type
        )

    async def stream(self, base_url: str, body: bytes) -> UpstreamStream:
        """``POST /chat/completions`` with streaming; the head is read, the body is not.

        An error status raises (with the whole, short, error body read).
        """
        request = self._chat_request(base_url, body, "text/event-stream")
        response = await self._send(base_url, "chat", request, stream=True)
        if response.status_code >= 400:
            try:
                content = await response.aread()
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(
                    f"the model endpoint {origin(base_url)} broke off its answer: {_cause(exc)}"
                ) from None
            finally:
                await response.aclose()
            raise UpstreamFailed(
                response.status_code, content, response.headers.get("content-type")
            )
        return UpstreamStream(response, base_url)

    async def list_models(self, base_url: str) -> ModelList:
        """``GET /models``, reused for ``models_cache_ttl`` seconds."""
        now = time.monotonic()
        cached = self._models.get(base_url)
        if cached is not None and cached[0] > now:
            return cached[1]
        request = self._build("GET", base_url, "models", {"accept": "application/json"})
        response = await self._send(base_url, "models", request, stream=False)
        if response.status_code != 200:
            raise UpstreamBadAnswer(
                f"the model endpoint {origin(base_url)} answered {response.status_code} "
                "to GET /models"
            )
        try:
            models = msgspec.json.decode(response.content, type=ModelList)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamBadAnswer(
                f"the model endpoint {origin(base_url)} sent a model list the gateway "
                f"cannot read: {exc}"
            ) from None
        self._models[base_url] = (time.monotonic() + self.settings.models_cache_ttl, models)
        return models
