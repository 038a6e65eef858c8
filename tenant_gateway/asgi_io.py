"""Plain ASGI for the gateway's hot path.

``/v1/chat/completions`` is served as an ASGI route: it reads its body and writes its answer
with the few calls below instead of going through Litestar's parameter parsing, guard copies
and response objects, which cost more per request than the rest of the proxying (see
``bench/RESULTS.md``). Errors are still raised as exceptions before the answer starts, so the
app's exception handlers turn them into the same problem bodies as on every other route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from litestar.exceptions import HTTPException
from litestar.types import Receive, Scope, Send

MAX_BODY = 10_000_000
"""Bytes a request body may have (Litestar's default for the other routes)."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), decoded as Latin-1, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    """The whole request body; 413 past ``limit`` bytes, 400 if the client left mid-body."""
    parts: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(status_code=400, detail="the client went away mid-request")
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise HTTPException(
                    status_code=413, detail=f"the request body is over {limit} bytes"
                )
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_body(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    """A complete answer in two messages."""
    head = _encoded(headers)
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_stream(
    send: Send,
    receive: Receive,
    status: int,
    headers: dict[str, str],
    chunks: AsyncIterator[bytes],
    before_end: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """``chunks`` sent as they come, then ``before_end`` awaited before the answer ends; a
    client that disconnects cancels the iteration (so whatever feeds it, such as an upstream
    request, is cancelled with it)."""
    await send({"type": "http.response.start", "status": status, "headers": _encoded(headers)})

    async def pump(scope: anyio.CancelScope) -> None:
        try:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if before_end is not None:
                await before_end()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            scope.cancel()  # done: stop listening for the disconnect

    async with anyio.create_task_group() as group:
        group.start_soon(pump, group.cancel_scope)
        while True:
            message: Any = await receive()
            if message["type"] == "http.disconnect":
                group.cancel_scope.cancel()
                return
