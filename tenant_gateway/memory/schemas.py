"""The memory API's wire shapes, and the export's lines."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import msgspec

from tenant_gateway.memory.errors import BadNote
from tenant_gateway.memory.store import Note

EXPORT_CONTENT_TYPE = "application/x-ndjson"


class NoteCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /memory``."""

    text: str
    tags: list[str] = msgspec.field(default_factory=list)


class NoteRead(msgspec.Struct, omit_defaults=True):
    object: str
    """Always ``memory.note``."""
    id: str
    text: str
    tags: list[str]
    source: str
    created_at: str
    """RFC 3339, UTC."""
    score: float | None = None
    """Search results only: higher is more relevant."""


class NoteList(msgspec.Struct):
    data: list[NoteRead]
    object: str = "list"


def note_read(note: Note) -> NoteRead:
    return NoteRead(
        object="memory.note",
        id=note.id,
        text=note.text,
        tags=note.tags,
        source=note.source,
        created_at=datetime.fromtimestamp(note.created_at, UTC).isoformat(),
        score=note.score,
    )


def decode_note(body: bytes) -> NoteCreate:
    """A ``POST /memory`` body, or :class:`BadNote` saying what is wrong with it."""
    try:
        return msgspec.json.decode(body, type=NoteCreate)
    except msgspec.DecodeError as exc:
        raise BadNote(f"the body is not a note: {exc}") from None


def export_lines(notes: Iterable[Note]) -> bytes:
    """Every note as one JSON object per line (JSON Lines), in the API's shape."""
    encoder = msgspec.json.Encoder()
    return b"".join(encoder.encode(note_read(note)) + b"\n" for note in notes)
