"""Anthropic's Messages API as a small raw ASGI app, for tests of the gateway's translation.

* ``POST /v1/messages`` needs ``x-api-key`` (one of :attr:`AnthropicUpstream.keys`) and
  ``anthropic-version``; it answers ``"echo: <last user text>"``, or — when the request has
  ``tools`` and the last user text starts with ``call `` — a ``tool_use`` block calling the
  first tool with ``{"city": <rest of the text>}``. With ``"stream": true`` it sends the
  Messages event sequence (``message_start``, ``content_block_start``/``_delta``/``_stop``,
  ``ping``, ``message_delta``, ``message_stop``).
* ``GET /v1/models`` lists :attr:`models`.
* :attr:`failures` is a list of ``(status, retry_after)`` answered, in order, before anything
  succeeds; errors have Anthropic's shape ``{"type": "error", "error": {...}}``.
  :attr:`cut_stream_after` drops the connection after that many events.
* Every request is recorded (path, headers, JSON body) in :attr:`requests`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.doubles.http_server import serve_in_thread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class StreamCut(Exception):
    """Raised mid-response so the server drops the connection."""


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


class AnthropicUpstream:
    def __init__(self, keys: list[str], models: list[str] | None = None) -> None:
        self.keys = set(keys)
        self.models = models or ["claude-test-1"]
        self.failures: list[tuple[int, str | None]] = []
        self.cut_stream_after: int | None = None
        self.requests: list[Seen] = []
        self.base = ""
        self._lock = threading.Lock()

    def messages(self) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/messages"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Seen(scope["method"], scope["path"], headers, body))
        if headers.get("x-api-key") not in self.keys:
            await self._error(send, 401, "invalid x-api-key")
            return
        if "anthropic-version" not in headers:
            await self._error(send, 400, "anthropic-version header is required")
            return
        if self.failures:
            status, retry_after = self.failures.pop(0)
            await self._error(send, status, f"stub failure {status}", retry_after)
            return
        if (scope["method"], scope["path"]) == ("GET", "/v1/models"):
            data = [{"type": "model", "id": m, "display_name": m} for m in self.models]
            await self._json(send, 200, {"data": data, "has_more": False})
        elif (scope["method"], scope["path"]) == ("POST", "/v1/messages"):
            if not body.get("max_tokens"):
                await self._error(send, 400, "max_tokens: field required")
            elif body.get("stream"):
                await self._stream(send, body)
            else:
                await self._json(send, 200, self._message(body))
        else:
            await self._error(send, 404, f"no route {scope['path']}")

    # -- answers ----------------------------------------------------------------------------

    def _blocks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        text = _user_text(body)
        if body.get("tools") and text.startswith("call "):
            tool = body["tools"][0]["name"]
            return [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {"city": text[5:]}},
            ]
        return [{"type": "text", "text": f"echo: {text}"}]

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        blocks = self._blocks(body)
        tool = any(b["type"] == "tool_use" for b in blocks)
        return {
            "id": "msg_stub_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": len(_user_text(body).split()), "output_tokens": 3},
        }

    def _events(self, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        message = self._message(body)
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}
        yield "message_start", {"type": "message_start", "message": start}
        yield "ping", {"type": "ping"}
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                for word in block["text"].split(" "):
                    delta = {"type": "text_delta", "text": word + " "}
                    yield (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": delta,
                        },
                    )
            else:
                yield (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {**block, "input": {}},
                    },
                )
                arguments = json.dumps(block["input"])
                for piece in (arguments[:5], arguments[5:]):
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    yield (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": delta,
                        },
                    )
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
        yield "message_stop", {"type": "message_stop"}

    async def _stream(self, send: Send, body: dict[str, Any]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        for sent, (name, data) in enumerate(self._events(body)):
            if sent == self.cut_stream_after:
                raise StreamCut(f"stream cut after {sent} events, as asked")
            event = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _json(
        send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _error(
        self, send: Send, status: int, message: str, retry_after: str | None = None
    ) -> None:
        error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
        extra = [(b"retry-after", retry_after.encode())] if retry_after else []
        await self._json(send, status, {"type": "error", "error": error}, extra)


@contextmanager
def anthropic_upstream(
    keys: list[str], models: list[str] | None = None
) -> Iterator[AnthropicUpstream]:
    """Serve an :class:`AnthropicUpstream` on 127.0.0.1; ``.base`` is its origin."""
    upstream = AnthropicUpstream(keys, models)
    with serve_in_thread(upstream, lifespan="off") as server:
        upstream.base = server.url
        yield upstream
