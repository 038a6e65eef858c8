"""The plumbing of JSON HTTP API doubles: a raw ASGI app that reads the whole request and
hands it to :meth:`JsonAPI.handle`, which answers a status and a JSON value or raises
:class:`APIError` with the status and body the real service sends. Calls are recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class APIError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class JsonAPI:
    """Subclasses implement :meth:`handle`; ``calls`` lists every request, in order."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[Call] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        call = Call(scope["method"], scope["path"], headers, body)
        with self.lock:
            self.calls.append(call)
        try:
            status, answer = self.handle(call)
        except APIError as exc:
            status, answer = exc.status, exc.body
        content = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def handle(self, call: Call) -> tuple[int, Any]:
        raise NotImplementedError
