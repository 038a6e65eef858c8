"""The gateway's HTTP surface: an OpenAI-compatible API for one tenant, plus probes and metrics.

``create_app`` takes everything the app works with (settings, the bundle source, the
conversation store, the model client), so tests can build several apps in one process; each
app has its own Prometheus registry. Every error becomes a body that is at once an RFC 9457
problem and an OpenAI error, in :func:`_gateway_error` and its siblings; errors of the model
endpoint are passed through with their status and body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, asgi, get
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, MethodNotAllowedException
from litestar.handlers import BaseRouteHandler
from litestar.types import ExceptionHandlersMap, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from tenant_gateway.asgi_io import header, read_body, send_body, send_stream
from tenant_gateway.budgets import BudgetKeeper, Ledger, LocalLedger, RedisLedger
from tenant_gateway.channels.assistant import Assistant
from tenant_gateway.channels.discord import DiscordChannel
from tenant_gateway.channels.inbox import INBOX_FILE, Inbox
from tenant_gateway.channels.pipeline import ChannelAdapter, ChannelPipeline
from tenant_gateway.channels.platform import PlatformBotChannel
from tenant_gateway.channels.routes import inbound_routes
from tenant_gateway.channels.telegram.bot import TelegramChannel
from tenant_gateway.channels.telegram.routes import telegram_routes
from tenant_gateway.channels.whatsapp import WhatsAppChannel
from tenant_gateway.channels.worker import ReplySink
from tenant_gateway.chat import CONVERSATION_HEADER, CallRecord, ChatService, ChatStream
from tenant_gateway.contract import Readiness
from tenant_gateway.credentials import CredentialKeeper
from tenant_gateway.keys import BundleSource
from tenant_gateway.memory import MEMORY_FILE, EmbeddingsClient, MemoryStore
from tenant_gateway.memory_api import memory_routes
from tenant_gateway.metering import USAGE_FILE, UsageMeter
from tenant_gateway.models import ModelClient, ModelList, ModelRouter, UpstreamFailed
from tenant_gateway.sessions import SESSIONS_FILE, SessionStore, reset_policy
from tenant_gateway.settings import PROBLEM_BASE, GatewayError, GatewaySettings
from tenant_gateway.store import ConversationStore

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_CONVERSATION_HEADER = CONVERSATION_HEADER.lower().encode()
CHAT_PATH = "/v1/chat/completions"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayMetrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self, bundles: BundleSource) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[object, ...]], Any] = {}
        self.requests = Counter(
            "tenant_gateway_http_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "tenant_gateway_upstream_latency_seconds",
            "Time from sending a request to a model provider to its response head",
            ["provider", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.chat_completions = Counter(
            "tenant_gateway_chat_completions",
            "Chat completion requests that reached for a model, by outcome",
            ["stream", "outcome"],
            registry=self.registry,
        )
        self.completion_seconds = Histogram(
            "tenant_gateway_completion_seconds",
            "Time from a chat completion request to its last byte, by provider",
            ["provider", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "tenant_gateway_time_to_first_token_seconds",
            "Time from a streamed request to its first content or tool-call fragment",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "tenant_gateway_tokens",
            "Tokens providers reported, by provider, BYOK or platform, and kind",
            ["provider", "byok", "kind"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "tenant_gateway_upstream_errors",
            "Failed attempts to call a model provider, by provider and reason",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.budget_refusals = Counter(
            "tenant_gateway_budget_refusals",
            "Calls refused because a limit of the plan was reached, by limit",
            ["limit"],
            registry=self.registry,
        )
        keys = Gauge(
            "tenant_gateway_keys", "Gateway keys currently accepted", registry=self.registry
        )
        keys.set_function(lambda: len(bundles.keys))

    def _child(self, metric: Any, *values: object) -> Any:
        """``metric.labels(*values)``, looked up once: the labels are few, the calls many."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*(str(v) for v in values))
        return child

    def observe_upstream(self, provider: str, endpoint: str, seconds: float) -> None:
        self._child(self.upstream_latency, provider, endpoint).observe(seconds)

    def observe_call(self, call: CallRecord) -> None:
        stream = "true" if call.stream else "false"
        self._child(self.chat_completions, stream, call.outcome).inc()
        if call.provider is None:
            return
        self._child(self.completion_seconds, call.provider, stream).observe(call.latency)
        if call.time_to_first_token is not None:
            self._child(self.time_to_first_token, call.provider).observe(call.time_to_first_token)
        byok = "true" if call.byok else "false"
        for kind, count in (("prompt", call.prompt_tokens), ("completion", call.completion_tokens)):
            if count:
                self._child(self.tokens, call.provider, byok, kind).inc(count)

    def observe_failure(self, provider: str, reason: str) -> None:
        self.upstream_errors.labels(provider, reason).inc()

    def count_response(self, scope: Scope, status: int, route: str | None = None) -> None:
        """Count a response as its head goes out (error responses included)."""
        method = scope.get("method", "OTHER")
        if method not in _METHODS:
            method = "OTHER"
        route = route or scope.get("path_template") or "unmatched"
        self._child(self.requests, method, route, status).inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s", method, scope.get("path", ""), status)

    def counting(self, scope: Scope, send: Send, route: str | None = None) -> Send:
        """``send``, counting the response when its head goes out."""

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.count_response(scope, message["status"], route)
            await send(message)

        return counted


def raw_response(
    content: bytes, status: int, content_type: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    """``content`` sent as is, under exactly ``content_type`` (Litestar would append a second
    charset to a ``text/...`` type that already has one)."""
    return Response(
        content, status_code=status, headers={**(headers or {}), "content-type": content_type}
    )


def problem_response(
    status: int,
    problem_type: str,
    title: str,
    detail: str,
    error_type: str,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """A body that is both an RFC 9457 problem and an OpenAI error."""
    body = {
        "type": problem_type,
        "title": title,
        "status": status,
        "detail": detail,
        "error": {"message": detail, "type": error_type, "code": code},
    }
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _retry_after(exc: GatewayError) -> dict[str, str]:
    seconds = getattr(exc, "retry_after", None)
    return {} if seconds is None else {"Retry-After": str(max(1, math.ceil(seconds)))}


def _gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[bytes]:
    if isinstance(exc, UpstreamFailed):
        return raw_response(exc.content, exc.status, exc.content_type, _retry_after(exc))
    headers = _retry_after(exc) or None
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="tenant-gateway"'}
    elif exc.status_code >= 500 and exc.status_code != 503:
        log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
    return problem_response(
        exc.status_code, exc.problem_type, exc.title, exc.detail, exc.error_type, exc.code, headers
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "HTTP error"
    detail = exc.detail or phrase
    if status == 404 and detail == phrase:
        detail = f"no such resource: {request.url.path}"
    return problem_response(
        status,
        "about:blank",
        phrase,
        detail,
        "invalid_request_error" if status < 500 else "server_error",
        phrase.lower().replace(" ", "_"),
        dict(exc.headers or {}),
    )


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        PROBLEM_BASE + "internal-error",
        "Internal error",
        "the gateway failed to handle this request; see its log",
        "server_error",
        "internal_error",
    )


def hot_path(
    routed: Callable[[Scope, Receive, Send], Awaitable[None]],
    serve_chat: Callable[[Scope, Receive, Send], Awaitable[None]],
    metrics: GatewayMetrics,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app's ASGI handler: chat completions go straight to ``serve_chat``; the rest
    through the framework (``routed``: its router inside its exception handling).

    Each message of a streamed answer would otherwise pass two wrappers of ``send`` and the
    router per request; errors raised before the answer starts become the same problem
    bodies as on every other route."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != CHAT_PATH or scope.get("method") != "POST":
            await routed(scope, receive, metrics.counting(scope, send))
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                metrics.count_response(scope, message["status"], CHAT_PATH)
            await send(message)

        try:
            await serve_chat(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            request: Request[Any, Any, Any] = Request(scope, receive)
            response = _error_response(request, exc)
            await response.to_asgi_response(None, request)(scope, receive, sending)

    return handle


def _error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, GatewayError):
        return _gateway_error(request, exc)
    if isinstance(exc, HTTPException):
        return _http_error(request, exc)
    return _unexpected_error(request, exc)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    GatewayError: _gateway_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}


def _ledger(settings: GatewaySettings, tenant_id: str, data_dir: Path) -> Ledger:
    """Redis when the gateway has one (budgets shared by replicas), else this process."""
    if settings.redis_url is None:
        return LocalLedger(data_dir)
    import redis.asyncio

    return RedisLedger(redis.asyncio.from_url(settings.redis_url), tenant_id)


class _Flag:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = False


def create_app(
    settings: GatewaySettings,
    bundles: BundleSource,
    store: ConversationStore,
    models: ModelClient,
    credentials: CredentialKeeper | None = None,
    budgets: BudgetKeeper | None = None,
    meter: UsageMeter | None = None,
    sessions: SessionStore | None = None,
    memory: MemoryStore | None = None,
    reply_sink: ReplySink | None = None,
) -> Litestar:
    """The gateway app of one tenant. Startup opens the store, starts the model client and
    the bundle watcher; shutdown undoes that. The meter (``usage.sqlite3`` beside the
    conversations by default) commits every chat completion's usage event before its
    response ends, and delivers the events to the control plane. Sessions and memory live
    beside them too (``sessions.sqlite3``, ``memory.sqlite3``), and so does the inbox of channel
    messages (``inbox.sqlite3``), whose replies go to ``reply_sink`` (default: POSTed to
    the reply URL of the settings, if any)."""
    keeper = credentials or CredentialKeeper(bundles.path.parent)
    bundles.listeners.append(keeper.sync)
    metrics = GatewayMetrics(bundles)
    models.observe = metrics.observe_upstream
    router = ModelRouter(settings, lambda: bundles.bundle, keeper, models)
    router.observe_failure = metrics.observe_failure
    budgets = budgets or BudgetKeeper(
        lambda: bundles.bundle.budget,
        _ledger(settings, bundles.tenant_id, store.path.parent),
        allowance=settings.budget_completion_allowance,
    )
    budgets.observe_refusal = lambda limit: metrics.budget_refusals.labels(limit).inc()
    meter = meter or UsageMeter(store.path.parent / USAGE_FILE, settings)
    # Sessions and memory: the policy is read on every use, so per-tenant choices carried
    # by the bundle can be laid over the settings in reset_policy later.
    sessions = sessions or SessionStore(
        store.path.parent / SESSIONS_FILE, lambda: reset_policy(settings.sessions)
    )
    memory = memory or MemoryStore(
        store.path.parent / MEMORY_FILE, EmbeddingsClient.from_settings(settings.memory)
    )

    def observe_call(call: CallRecord) -> None:
        metrics.observe_call(call)
        meter.observe(call)

    chat = ChatService(router, store, budgets=budgets, observe=observe_call)
    # Channels: messages from adapters, answered in the background (tenant_gateway.channels).
    assistant = Assistant(
        settings, lambda: bundles.bundle, chat, sessions, memory, keeper.check_serving
    )
    channels = ChannelPipeline(
        settings, Inbox(store.path.parent / INBOX_FILE), assistant.answer, reply_sink
    )
    discord = DiscordChannel(keeper, lambda: bundles.bundle)
    bundles.listeners.append(discord.credentials_changed)  # after keeper.sync
    telegram = TelegramChannel(keeper, lambda: bundles.bundle, store.path.parent)
    bundles.listeners.append(telegram.credentials_changed)  # after keeper.sync
    adapters: list[ChannelAdapter] = [
        WhatsAppChannel(keeper, lambda: bundles.bundle),
        discord,
        PlatformBotChannel(lambda: bundles.bundle, bundles.path.parent),
        telegram,
    ]
    """The channels that run inside this gateway, each started once the pipeline runs."""
    ready = _Flag()

    async def require_key(
        connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        # async: a plain function would be run on a worker thread for every request.
        bundles.authenticate(connection.headers.get("authorization"))

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz")
    async def readyz() -> Response[Any]:
        if not ready.value:
            return problem_response(
                503,
                PROBLEM_BASE + "starting",
                "Starting",
                "the gateway is starting",
                "service_unavailable",
                "starting",
            )
        return Response(
            Readiness(status="ready", tenant_id=bundles.tenant_id, credentials=keeper.providers)
        )

    @get("/metrics")
    async def metrics_endpoint() -> Response[bytes]:
        return raw_response(generate_latest(metrics.registry), 200, CONTENT_TYPE_LATEST)

    @get("/v1/models", guards=[require_key])
    async def list_models() -> ModelList:
        return await chat.list_models()

    async def serve_chat(scope: Scope, receive: Receive, send: Send) -> None:
        bundles.authenticate(header(scope, b"authorization"))
        keeper.check_serving()
        body = await read_body(receive)
        try:
            result = await chat.complete(body, header(scope, _CONVERSATION_HEADER))
        finally:
            await meter.persisted()  # a failed call's event too, before its error goes out
        headers = {CONVERSATION_HEADER: result.conversation_id}
        if isinstance(result, ChatStream):
            headers["cache-control"] = "no-cache"
            headers["x-accel-buffering"] = "no"
            headers["content-type"] = result.content_type
            await send_stream(send, receive, 200, headers, result.chunks, meter.persisted)
            return
        headers["content-type"] = result.content_type
        await send_body(send, result.status, headers, result.content)

    @asgi(CHAT_PATH, copy_scope=False)
    async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
        # POSTs are served before the router (see ``hot_path`` below); this is the rest.
        if scope.get("method") != "POST":
            raise MethodNotAllowedException(headers={"Allow": "POST"})
        await serve_chat(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            # The store opens on its own thread while the model client is made on this one.
            for outcome in await asyncio.gather(
                store.open(),
                models.start(),
                meter.open(),
                sessions.open(),
                memory.open(),
                channels.open(),
                return_exceptions=True,
            ):
                if isinstance(outcome, BaseException):
                    # Kept for the process to name the cause in its last words.
                    app.state["startup_error"] = (
                        outcome.detail if isinstance(outcome, GatewayError) else repr(outcome)
                    )
                    raise outcome
            bundles.refresh()
            await keeper.sync(bundles.bundle)
            meter.start(lambda: bundles.bundle, bundles.path.parent)
            watcher = asyncio.create_task(bundles.watch(), name="bundle-watcher")
            retrier = asyncio.create_task(
                keeper.keep_trying(lambda: bundles.bundle), name="unseal-retrier"
            )
            channels.start()
            for adapter in adapters:
                await adapter.start(channels)
            ready.value = True
            try:
                yield
            finally:
                ready.value = False
                for adapter in reversed(adapters):
                    await adapter.stop()
                for task in (watcher, retrier):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await channels.close()
            await meter.close()
            await budgets.close()
            await models.close()
            await memory.close()
            await sessions.close()
            await store.close()

    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics_endpoint,
            list_models,
            chat_completions,
            *memory_routes(memory, require_key),
            *inbound_routes(channels, lambda: bundles.bundle),
            *telegram_routes(telegram, lambda: bundles.bundle),
        ],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    app.asgi_handler = hot_path(app.asgi_handler, serve_chat, metrics)
    app.state["metrics"] = metrics
    app.state["chat"] = chat
    app.state["sessions"] = sessions
    app.state["memory"] = memory
    app.state["channels"] = channels
    return app
