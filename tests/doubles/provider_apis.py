"""OpenAI, Anthropic and the Telegram Bot API, as far as credential validation sees them
(a raw ASGI app), so tests check credentials against a real HTTP server on 127.0.0.1.

* OpenAI: ``GET /v1/models`` with ``Authorization: Bearer <key>``; a wrong key gets 401 and
  OpenAI's error body, whose message echoes the key masked (``sk-test***…wxyz``) as OpenAI's
  does.
* Anthropic: ``GET /v1/models`` with ``x-api-key`` (a request with ``x-api-key`` or
  ``anthropic-version`` is Anthropic's); ``anthropic-version`` is required (400 without);
  a wrong key gets 401 ``{"type":"error","error":{"type":"authentication_error",...}}``.
* Telegram: ``GET|POST /bot<token>/getMe`` answers the bot for a valid token, 401
  ``{"ok":false,"error_code":401,"description":"Unauthorized"}`` for a wrong one and 404 for
  a token that is not shaped like one.

Valid OpenAI and Anthropic keys come from one set, :attr:`ProviderAPIs.valid_keys`.
:attr:`~ProviderAPIs.error_status` answers that status (in the addressed API's error shape)
to everything; :attr:`~ProviderAPIs.delay` holds every answer back that many seconds (ending
early if the client goes away); :attr:`~ProviderAPIs.override` answers a fixed
``(status, headers, body)`` to everything. Every request is recorded (method, path, headers).

``with provider_apis(valid_keys=[...], valid_tokens=[...]) as apis:`` serves it with
:func:`~tests.doubles.http_server.serve_in_thread`; ``apis.base`` is
``http://127.0.0.1:PORT`` and ``apis.bases`` the matching
:class:`~control_plane.vault.providers.ProviderBases`.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from control_plane.vault.providers import ProviderBases
from tests.doubles.http_server import serve_in_thread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

Api = Literal["openai", "anthropic", "telegram", "none"]

_TELEGRAM_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]{30,}")
"""What the Bot API server parses as a token (anything else is 404)."""


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    api: Api
    """Which API the double took the request to be for."""


def masked(key: str) -> str:
    """A key the way OpenAI's "Incorrect API key provided" message shows it."""
    return f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}"


class ProviderAPIs:
    """The ASGI app; its attributes may be changed while it serves."""

    def __init__(
        self, valid_keys: Iterable[str] = (), valid_tokens: Iterable[str] = (), *, delay: float = 0
    ) -> None:
        self.valid_keys = set(valid_keys)
        self.valid_tokens = set(valid_tokens)
        self.delay = delay
        self.error_status: int | None = None
        self.override: tuple[int, dict[str, str], bytes] | None = None
        self.requests: list[SeenRequest] = []
        self.base = ""
        self.bases = ProviderBases()
        self._lock = threading.Lock()

    def seen(self, api: Api | None = None) -> list[SeenRequest]:
        """The requests received so far (for ``api`` only, if given)."""
        with self._lock:
            return [r for r in self.requests if api is None or r.api == api]

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:  # the body is not used; read it so a disconnect can be noticed after
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        api = self._api(path, headers)
        with self._lock:
            self.requests.append(SeenRequest(method, path, headers, api))

        if self.delay and await self._client_left(receive, self.delay):
            return
        if self.override is not None:
            status, extra, body = self.override
            await self._send(send, status, body, extra)
        elif self.error_status is not None:
            await self._error(send, api, self.error_status, f"stub error {self.error_status}")
        elif api == "openai":
            await self._openai(send, method, headers)
        elif api == "anthropic":
            await self._anthropic(send, method, headers)
        elif api == "telegram":
            await self._telegram(send, path)
        else:
            await self._json(send, 404, {"detail": "Not Found"})

    @staticmethod
    def _api(path: str, headers: dict[str, str]) -> Api:
        if path.startswith("/bot"):
            return "telegram"
        if path == "/v1/models":
            if "x-api-key" in headers or "anthropic-version" in headers:
                return "anthropic"
            return "openai"
        return "none"

    @staticmethod
    async def _client_left(receive: Receive, seconds: float) -> bool:
        """Wait ``seconds``; True if the client went away meanwhile."""

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        listener = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({listener}, timeout=seconds)
            return listener.done()
        finally:
            listener.cancel()

    # -- the APIs --------------------------------------------------------------------------

    async def _openai(self, send: Send, method: str, headers: dict[str, str]) -> None:
        if method != "GET":
            await self._error(send, "openai", 405, f"Method {method} not allowed")
            return
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            await self._error(
                send,
                "openai",
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        elif key not in self.valid_keys:
            await self._error(
                send,
                "openai",
                401,
                f"Incorrect API key provided: {masked(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        else:
            model = {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"}
            await self._json(send, 200, {"object": "list", "data": [model]})

    async def _anthropic(self, send: Send, method: str, headers: dict[str, str]) -> None:
        if method != "GET":
            await self._error(send, "anthropic", 405, "Method not allowed")
        elif not headers.get("anthropic-version"):
            await self._error(send, "anthropic", 400, "anthropic-version: header is required")
        elif headers.get("x-api-key") not in self.valid_keys:
            await self._error(send, "anthropic", 401, "invalid x-api-key")
        else:
            model = {
                "type": "model",
                "id": "claude-sonnet-4-5",
                "display_name": "Claude Sonnet 4.5",
                "created_at": "2025-09-29T00:00:00Z",
            }
            page = {"data": [model], "has_more": False, "first_id": model["id"]}
            await self._json(send, 200, {**page, "last_id": model["id"]})

    async def _telegram(self, send: Send, path: str) -> None:
        token, _, method = path.removeprefix("/bot").partition("/")
        if not _TELEGRAM_TOKEN.fullmatch(token):
            await self._error(send, "telegram", 404, "Not Found")
        elif token not in self.valid_tokens:
            await self._error(send, "telegram", 401, "Unauthorized")
        elif method != "getMe":
            await self._error(send, "telegram", 404, "Not Found")
        else:
            bot = {
                "id": int(token.partition(":")[0]),
                "is_bot": True,
                "first_name": "Test Bot",
                "username": "tenantry_test_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
            await self._json(send, 200, {"ok": True, "result": bot})

    # -- answers ---------------------------------------------------------------------------

    async def _error(
        self, send: Send, api: Api, status: int, message: str, code: str | None = None
    ) -> None:
        body: dict[str, Any]
        if api == "telegram":
            body = {"ok": False, "error_code": status, "description": message}
        elif api == "anthropic":
            kind = {
                400: "invalid_request_error",
                401: "authentication_error",
                403: "permission_error",
                404: "not_found_error",
                429: "rate_limit_error",
                529: "overloaded_error",
            }.get(status, "api_error")
            body = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            kind = "invalid_request_error" if status < 500 else "server_error"
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        await self._json(send, status, body)

    async def _json(self, send: Send, status: int, payload: Any) -> None:
        await self._send(
            send, status, json.dumps(payload).encode(), {"content-type": "application/json"}
        )

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def provider_apis(
    valid_keys: Iterable[str] = (), valid_tokens: Iterable[str] = (), *, delay: float = 0
) -> Iterator[ProviderAPIs]:
    """Serve a :class:`ProviderAPIs` on 127.0.0.1 (a free port) in a background thread."""
    apis = ProviderAPIs(valid_keys, valid_tokens, delay=delay)
    with serve_in_thread(apis, lifespan="off") as server:
        apis.base = server.url
        apis.bases = ProviderBases(
            openai=f"{server.url}/v1", anthropic=server.url, telegram=server.url
        )
        yield apis
