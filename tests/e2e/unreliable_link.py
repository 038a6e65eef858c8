"""An HTTP forwarder between the gateways and the control plane that can fail the way a
network does, for usage deliveries only (everything else passes through):

* ``down``: a usage delivery is answered 503 without reaching the control plane;
* ``withhold``: a usage delivery reaches the control plane, which stores it and answers, and
  the answer is never passed back (the connection stays open until the gateway goes away),
  as when a gateway is killed after sending a batch but before reading the receipt;
* ``pass``: everything is forwarded.

Served on 127.0.0.1 in a thread (:func:`unreliable_link`); point ``TENANTRY_INTERNAL_URL``
at it and set :attr:`UnreliableLink.target` once the control plane's address is known.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import httpx

from tests.doubles.http_server import serve_in_thread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class UnreliableLink:
    def __init__(self) -> None:
        self.url = ""
        """Where the link listens."""
        self.target = ""
        """Where it forwards to."""
        self.mode = "pass"
        self.refused = 0
        """Usage deliveries answered 503 (``down``)."""
        self.withheld = 0
        """Usage deliveries the control plane answered 200 to, the answer kept back."""
        self.events_forwarded = 0
        """Usage events in the deliveries that reached the control plane (repeats included)."""
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        usage = scope["method"] == "POST" and scope["path"].endswith("/usage")
        mode = self.mode
        if usage and mode == "down":
            with self._lock:
                self.refused += 1
            await _answer(send, 503, [(b"content-type", b"application/json")], b"{}")
            return
        answer = await self._forward(scope, body)
        if usage and answer.status_code == 200:
            with self._lock:
                self.events_forwarded += len(json.loads(body)["events"])
                if mode == "withhold":
                    self.withheld += 1
            if mode == "withhold":
                while (await receive())["type"] != "http.disconnect":
                    pass
                return
        headers = [
            (k.encode(), v.encode())
            for k, v in answer.headers.items()
            if k.lower() not in _HOP_BY_HOP
        ]
        await _answer(send, answer.status_code, headers, answer.content)

    async def _forward(self, scope: Scope, body: bytes) -> httpx.Response:
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        }
        query = scope.get("query_string", b"").decode()
        url = self.target + scope["path"] + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            return await http.request(scope["method"], url, headers=headers, content=body)


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def unreliable_link() -> Iterator[UnreliableLink]:
    """``with unreliable_link() as link:`` serving at ``link.url`` until the block ends."""
    link = UnreliableLink()
    with serve_in_thread(link, lifespan="off", graceful_shutdown=1) as server:
        link.url = server.url
        yield link
