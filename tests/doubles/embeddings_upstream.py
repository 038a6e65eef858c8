"""An OpenAI-compatible embeddings endpoint for tests (a raw ASGI app).

``POST /v1/embeddings`` ``{"model", "input": str | [str]}`` answers
``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
"usage"}``. Vectors are deterministic bags of hashed words in :data:`DIMENSIONS`
dimensions; words listed in :attr:`EmbeddingsUpstream.synonyms` hash as their concept, so
texts sharing no word can still be close in meaning ("automobile" and "car"), which only
vector search can see. Requests are recorded in :attr:`requests`; with :attr:`error_status`
set it answers that status with an OpenAI error body.

In tests: ``with embeddings_upstream() as upstream:`` sets ``upstream.url``
(``http://127.0.0.1:PORT/v1``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from tests.doubles.http_server import serve_in_thread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DIMENSIONS = 64
SYNONYMS = {"automobile": "car", "vehicle": "car", "feline": "cat", "kitty": "cat"}


def embed(text: str, synonyms: dict[str, str]) -> list[float]:
    """The double's vector of ``text``: +1 in the hashed slot of each (concept) word."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        concept = synonyms.get(word, word)
        slot = int.from_bytes(hashlib.sha256(concept.encode()).digest()[:4], "big") % DIMENSIONS
        vector[slot] += 1.0
    return vector


class EmbeddingsUpstream:
    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self.error_status: int | None = None
        self.synonyms = dict(SYNONYMS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, answer = self._answer(scope["method"], scope["path"], body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if method != "POST" or path != "/v1/embeddings":
            return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}
        request = json.loads(body)
        self.requests.append(request)
        if self.error_status is not None:
            error = {"message": "embeddings unavailable", "type": "server_error"}
            return self.error_status, {"error": error}
        inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
        data = [
            {"object": "embedding", "index": n, "embedding": embed(text, self.synonyms)}
            for n, text in enumerate(inputs)
        ]
        tokens = sum(len(text.split()) for text in inputs)
        return 200, {
            "object": "list",
            "data": data,
            "model": request["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@contextmanager
def embeddings_upstream() -> Iterator[EmbeddingsUpstream]:
    upstream = EmbeddingsUpstream()
    with serve_in_thread(upstream, lifespan="on") as server:
        upstream.url = server.url + "/v1"
        yield upstream
