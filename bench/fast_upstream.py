"""A fast OpenAI-compatible upstream for the gateway's latency bench, as its own process.

The test double (``tests.doubles.openai_upstream``) records every request and builds each
answer; measured behind a proxy it would cost as much as the proxy. This one answers from
bytes built once, on raw asyncio with uvloop and httptools, so on the same load it uses a
small fraction of a core and what a benchmark sees is the proxy in front of it.

* ``POST /v1/chat/completions``: a fixed ``chat.completion``, or with ``"stream": true`` a
  fixed server-sent-events stream (a role chunk, eight content chunks, a finish chunk, a
  usage chunk, ``data: [DONE]``), chunked as model servers send it;
* ``GET /v1/models``: ``stub-model``; anything else: 404.

``python -m bench.fast_upstream --port P`` prints ``listening http://127.0.0.1:P/v1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import sys
from typing import Any, cast

import httptools
import uvloop

MODEL = "stub-model"
WORDS = ["echo:", "hello", "from", "the", "fast", "upstream", "stub", "model"]
_STREAM = re.compile(rb'"stream"\s*:\s*true')


def _head(status: str, content_type: str, length: int | None) -> bytes:
    framing = f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    return f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{framing}\r\n\r\n".encode()


def _json_response(status: str, payload: Any) -> bytes:
    body = json.dumps(payload).encode()
    return _head(status, "application/json", len(body)) + body


def _chunk(payload: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        **payload,
    }


def _sse(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def _event(data: bytes) -> bytes:
    frame = _sse(data)
    return f"{len(frame):x}\r\n".encode() + frame + b"\r\n"


COMPLETION = _json_response(
    "200 OK",
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(WORDS)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": len(WORDS), "total_tokens": 9},
    },
)

_DELTAS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    *(
        {"choices": [{"index": 0, "delta": {"content": w if i == 0 else f" {w}"}}]}
        for i, w in enumerate(WORDS)
    ),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 8, "total_tokens": 9}},
]
STREAM_PARTS = [
    _head("200 OK", "text/event-stream", None),
    *(_event(json.dumps(_chunk(d)).encode()) for d in _DELTAS),
    _event(b"[DONE]") + b"0\r\n\r\n",
]
"""Written one by one, as a model server writes events as they are generated."""
STREAM_BODY = b"".join(_sse(json.dumps(_chunk(d)).encode()) for d in _DELTAS) + _sse(b"[DONE]")
"""The same stream's body, as a client reads it."""

MODELS = _json_response(
    "200 OK",
    {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]},
)
NOT_FOUND = _json_response("404 Not Found", {"error": {"message": "no such route"}})


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        assert transport is not None
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        if method == b"POST" and path == b"/v1/chat/completions":
            if _STREAM.search(b"".join(self.body)):
                for part in STREAM_PARTS:
                    transport.write(part)
            else:
                transport.write(COMPLETION)
        elif method == b"GET" and path == b"/v1/models":
            transport.write(MODELS)
        else:
            transport.write(NOT_FOUND)
        if not self.parser.should_keep_alive():
            transport.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening http://127.0.0.1:{bound}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_upstream")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
