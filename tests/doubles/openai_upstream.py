"""A small OpenAI-compatible model server for tests and benchmarks (a raw ASGI app).

* ``GET /v1/models`` lists the configured models (default ``["stub-model"]``).
* ``POST /v1/chat/completions`` answers ``"echo: <last user message>"`` with ``usage``
  counts; with ``"stream": true`` it sends ``chat.completion.chunk`` events (a role chunk,
  one chunk per word, a finish chunk, a usage chunk if ``stream_options.include_usage``)
  and then ``data: [DONE]``.
* Every request is recorded (method, path, headers, JSON body) in :attr:`requests`.
* :attr:`error_status` makes it answer that status with an OpenAI error body;
  :attr:`failures` is a list of ``(status, retry_after)`` answered, in order, before it
  answers normally again; with :attr:`api_keys` set, a request needs
  ``Authorization: Bearer <one of them>`` (else 401);
  :attr:`chunk_delay` paces streamed chunks, and a client that goes away mid-stream is
  counted in :attr:`stream_disconnects`; :attr:`cut_stream_after` drops the connection
  after that many events, as a crashing model server would.
* :attr:`usage_served` holds the ``usage`` of every answer delivered whole (a completion
  body sent, or a stream sent to its end with its usage chunk): what a meter should count.

In tests: ``with openai_upstream() as upstream:`` serves it on 127.0.0.1 in a thread and
sets ``upstream.url`` (``http://127.0.0.1:PORT/v1``). Standalone:
``python -m tests.doubles.openai_upstream --port P`` prints ``listening http://127.0.0.1:P/v1``
and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CREATED = 1_700_000_000


class StreamCut(Exception):
    """Raised mid-response so the server drops the connection."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The JSON body, decoded; None if there was none, the raw text if it was not JSON."""


def _text(content: Any) -> str:
    """The text of a message's ``content`` (a string or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


def _words(text: str) -> int:
    return len(text.split())


class OpenAIUpstream:
    """The ASGI app; its attributes may be changed while it serves."""

    def __init__(self, models: list[str] | None = None, *, chunk_delay: float = 0.0) -> None:
        self.models = list(models or ["stub-model"])
        self.chunk_delay = chunk_delay
        self.error_status: int | None = None
        self.failures: list[tuple[int, str | None]] = []
        self.api_keys: set[str] | None = None
        self.cut_stream_after: int | None = None
        self.requests: list[RecordedRequest] = []
        self.stream_disconnects = 0
        self.streams_completed = 0
        self.usage_served: list[dict[str, int]] = []
        self.url = ""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- what tests look at ----------------------------------------------------------------

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
        self.error_status = None
        self.failures = []
        self.api_keys = None
        self.cut_stream_after = None
        self.chunk_delay = 0.0
        self.stream_disconnects = 0
        self.streams_completed = 0
        with self._lock:
            self.usage_served.clear()

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body))

        presented = headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_keys is not None and presented not in self.api_keys:
            await self._error(send, 401, "Incorrect API key provided")
        elif self.failures:
            status, retry_after = self.failures.pop(0)
            await self._error(send, status, f"stub failure {status}", retry_after)
        elif self.error_status is not None:
            await self._error(send, self.error_status, f"stub error {self.error_status}")
        elif (method, path) == ("GET", "/v1/models"):
            await self._json(send, 200, self._model_list())
        elif (method, path) == ("POST", "/v1/chat/completions"):
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                await self._error(send, 400, "messages is required")
            elif body.get("stream"):
                await self._stream(receive, send, body)
            else:
                completion = self._completion(body)
                await self._json(send, 200, completion)
                with self._lock:
                    self.usage_served.append(completion["usage"])
        else:
            await self._error(send, 404, f"no route {method} {path}")

    @staticmethod
    async def _json(
        send: Send,
        status: int,
        payload: Any,
        content_type: bytes = b"application/json",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(data)).encode()),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _error(
        self, send: Send, status: int, message: str, retry_after: str | None = None
    ) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        error = {"message": message, "type": kind, "param": None, "code": f"stub_{status}"}
        extra = [(b"retry-after", retry_after.encode())] if retry_after else None
        await self._json(send, status, {"error": error}, extra=extra)

    def _model_list(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "stub"}
                for m in self.models
            ],
        }

    # -- completions -----------------------------------------------------------------------

    @staticmethod
    def reply_text(body: dict[str, Any]) -> str:
        """What the stub answers to ``body``: ``echo: `` and the last user message."""
        for message in reversed(body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                return f"echo: {_text(message.get('content'))}"
        return "echo: "

    def _usage(self, body: dict[str, Any], reply: str) -> dict[str, int]:
        prompt = sum(
            _words(_text(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
        )
        completion = _words(reply)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self.reply_text(body)
        return {
            "id": f"chatcmpl-stub-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.models[0]),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": self._usage(body, reply),
        }

    def _chunks(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        reply = self.reply_text(body)
        base = {
            "id": f"chatcmpl-stub-{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", self.models[0]),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**base, "choices": [choice]}

        yield chunk({"role": "assistant", "content": ""})
        for piece in re.findall(r"\S+\s*", reply):
            yield chunk({"content": piece})
        yield chunk({}, "stop")
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield {**base, "choices": [], "usage": self._usage(body, reply)}

    async def _stream(self, receive: Receive, send: Send, body: dict[str, Any]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        listener = asyncio.ensure_future(disconnected())
        try:
            events = [f"data: {json.dumps(c)}\n\n".encode() for c in self._chunks(body)]
            events.append(b"data: [DONE]\n\n")
            for sent, event in enumerate(events):
                if sent == self.cut_stream_after:
                    raise StreamCut(f"stream cut after {sent} events, as asked")
                if listener.done():
                    self.stream_disconnects += 1
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
                if self.chunk_delay:
                    # Pacing, not synchronisation: wakes early if the client goes away.
                    await asyncio.wait({listener}, timeout=self.chunk_delay)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.streams_completed += 1
            options = body.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage"):
                with self._lock:
                    self.usage_served.append(self._usage(body, self.reply_text(body)))
        finally:
            listener.cancel()


@contextmanager
def openai_upstream(
    models: list[str] | None = None, *, chunk_delay: float = 0.0
) -> Iterator[OpenAIUpstream]:
    """Serve an :class:`OpenAIUpstream` on 127.0.0.1 (a free port) in a background thread."""
    from tests.doubles.http_server import serve_in_thread

    upstream = OpenAIUpstream(models, chunk_delay=chunk_delay)
    with serve_in_thread(upstream, lifespan="off") as server:
        upstream.url = f"{server.url}/v1"
        yield upstream


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tests.doubles.openai_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default="stub-model", help="comma-separated model ids")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args(argv)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    port = sock.getsockname()[1]
    app = OpenAIUpstream(args.models.split(","), chunk_delay=args.chunk_delay)
    config = uvicorn.Config(
        app,
        http="httptools",
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
    )
    print(f"listening http://{args.host}:{port}/v1", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
