"""The gateway's memory API: list, search, save, forget and export the tenant's notes.

``GET /memory`` (newest first; ``?q=`` searches, best first; ``?limit=``),
``POST /memory`` ``{text, tags?}`` → 201, ``DELETE /memory/{id}`` → 204,
``GET /memory/export`` → every note as JSON Lines. Every route needs a gateway key, like
``/v1/chat/completions``; errors are raised as :class:`GatewayError` and shown by the app's
one handler.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath
from litestar.types import Guard

from tenant_gateway.memory import (
    EXPORT_CONTENT_TYPE,
    BadNote,
    MemoryStore,
    NoteList,
    NoteRead,
    decode_note,
    export_lines,
    note_read,
)

DEFAULT_LIMIT = 50


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        return int(raw)
    except ValueError:
        raise BadNote(f"limit={raw!r}: expected a whole number") from None


def memory_routes(memory: MemoryStore, require_key: Guard) -> list[BaseRouteHandler]:
    """The route handlers of the memory API, over ``memory``."""

    @get("/memory", guards=[require_key])
    async def list_notes(request: Request[Any, Any, Any]) -> NoteList:
        query = request.query_params.get("q")
        limit = _limit(request.query_params.get("limit"))
        notes = await (memory.latest(limit) if query is None else memory.search(query, limit))
        return NoteList(data=[note_read(note) for note in notes])

    @post("/memory", guards=[require_key], status_code=201)
    async def save_note(request: Request[Any, Any, Any]) -> NoteRead:
        body = decode_note(await request.body())
        return note_read(await memory.add(body.text, body.tags, source="api"))

    @delete("/memory/{note_id:str}", guards=[require_key], status_code=204)
    async def forget_note(note_id: FromPath[str]) -> None:
        await memory.delete(note_id)

    @get("/memory/export", guards=[require_key])
    async def export_notes() -> Response[bytes]:
        return Response(
            export_lines(await memory.export()),
            headers={"content-type": EXPORT_CONTENT_TYPE},
        )

    return [list_notes, save_note, forget_note, export_notes]
