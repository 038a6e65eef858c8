"""The assistant's notes, in ``memory.sqlite3`` on the tenant's volume.

Each note is a row of ``notes``; an FTS5 table, kept in step by triggers (insert and
delete; notes are never edited), indexes its text and tags. When an embeddings endpoint is
configured, a note's vector (float32, unit length) is stored beside it with the name of the
model that made it; search then blends full-text and vector scores (see
:mod:`tenant_gateway.memory.search`). An endpoint that fails costs the vector, never the
note or the search: the note is saved without one, and a search falls back to full text.

Each tenant's gateway has its own volume and so its own file: no query can reach another
tenant's notes.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from tenant_gateway.memory import search
from tenant_gateway.memory.embeddings import EmbeddingsClient
from tenant_gateway.memory.errors import BadNote, EmbeddingsFailed, MemoryStoreError, NoteNotFound
from tenant_gateway.volume_db import VolumeDatabase

log = logging.getLogger(__name__)

MEMORY_FILE = "memory.sqlite3"
SCHEMA_VERSION = 1
MAX_TEXT = 32_000
MAX_TAGS = 32
MAX_TAG = 64
MAX_LIMIT = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    embedding BLOB,
    embedding_model TEXT
);
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(
    text, tags, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS notes_indexed AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, text, tags) VALUES (
        new.row, new.text, (SELECT coalesce(group_concat(value, ' '), '') FROM json_each(new.tags))
    );
END;
CREATE TRIGGER IF NOT EXISTS notes_unindexed AFTER DELETE ON notes BEGIN
    DELETE FROM notes_fts WHERE rowid = old.row;
END;
"""

_SELECT = "SELECT row, id, text, tags, source, created_at FROM notes"


class Note(msgspec.Struct, frozen=True):
    """One saved note; ``score`` is set on search results (higher is more relevant)."""

    id: str
    text: str
    tags: list[str]
    source: str
    created_at: float
    score: float | None = None


def _note(row: tuple[object, ...], score: float | None = None) -> Note:
    _, note_id, text, tags, source, created_at = row
    return Note(
        id=str(note_id),
        text=str(text),
        tags=msgspec.json.decode(str(tags), type=list[str]),
        source=str(source),
        created_at=float(created_at),  # type: ignore[arg-type]
        score=score,
    )


def checked_note(text: str, tags: Sequence[str]) -> tuple[str, list[str]]:
    """The note's text and tags, trimmed, or :class:`BadNote` saying what is wrong."""
    text = text.strip()
    if not text:
        raise BadNote("a note needs some text")
    if len(text) > MAX_TEXT:
        raise BadNote(f"a note's text is at most {MAX_TEXT} characters, not {len(text)}")
    clean = list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
    if len(clean) > MAX_TAGS or any(len(tag) > MAX_TAG for tag in clean):
        raise BadNote(f"a note has at most {MAX_TAGS} tags of at most {MAX_TAG} characters")
    return text, clean


def _insert(db: sqlite3.Connection, note: Note, vector: bytes | None, model: str | None) -> None:
    db.execute(
        "INSERT INTO notes (id, text, tags, source, created_at, embedding, embedding_model) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            note.id,
            note.text,
            msgspec.json.encode(note.tags).decode(),
            note.source,
            note.created_at,
            vector,
            model,
        ),
    )


def _fts_hits(db: sqlite3.Connection, query: str | None, limit: int) -> dict[int, float]:
    if query is None:
        return {}
    cursor = db.execute(
        "SELECT rowid, bm25(notes_fts) FROM notes_fts WHERE notes_fts MATCH ? "
        "ORDER BY bm25(notes_fts) LIMIT ?",
        (query, limit),
    )
    return {row: -rank for row, rank in cursor}  # bm25 is lower for better matches


def _vector_hits(
    db: sqlite3.Connection, vector: bytes | None, model: str | None, limit: int
) -> dict[int, float]:
    if vector is None:
        return {}
    query = search.unpack(vector)
    cursor = db.execute(
        "SELECT row, embedding FROM notes WHERE embedding IS NOT NULL AND embedding_model = ?",
        (model,),
    )
    close = [(row, search.similarity(query, search.unpack(blob))) for row, blob in cursor]
    close = [(row, s) for row, s in close if s >= search.MIN_SIMILARITY]
    return dict(sorted(close, key=lambda pair: -pair[1])[:limit])


def _search(
    db: sqlite3.Connection, text: str, vector: bytes | None, model: str | None, limit: int
) -> list[Note]:
    candidates = limit * 4
    scores = search.blend(
        _fts_hits(db, search.fts_query(text), candidates),
        _vector_hits(db, vector, model, candidates),
    )
    best = sorted(scores.items(), key=lambda pair: -pair[1])[:limit]
    if not best:
        return []
    found = [
        (db.execute(_SELECT + " WHERE row = ?", (row,)).fetchone(), score) for row, score in best
    ]
    return [_note(row, round(score, 6)) for row, score in found if row is not None]


class MemoryStore:
    """The tenant's notes; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, path: Path, embeddings: EmbeddingsClient | None = None) -> None:
        self.path = path
        self.embeddings = embeddings
        self._db = VolumeDatabase(path, _SCHEMA, SCHEMA_VERSION, MemoryStoreError, "memory")

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()
        if self.embeddings is not None:
            await self.embeddings.close()

    async def _embedding(self, text: str) -> bytes | None:
        if self.embeddings is None:
            return None
        try:
            return search.pack((await self.embeddings.embed([text]))[0])
        except EmbeddingsFailed as exc:
            log.warning("memory: no vector this time, full text only: %s", exc.detail)
            return None

    async def add(self, text: str, tags: Sequence[str] = (), source: str = "assistant") -> Note:
        """Save a note (with its vector when an embeddings endpoint answers)."""
        text, clean_tags = checked_note(text, tags)
        note = Note(
            id="mem_" + secrets.token_hex(12),
            text=text,
            tags=clean_tags,
            source=source,
            created_at=time.time(),
        )
        vector = await self._embedding(text)
        model = None if vector is None or self.embeddings is None else self.embeddings.model
        await self._db.transaction(lambda db: _insert(db, note, vector, model), "save a note")
        return note

    async def delete(self, note_id: str) -> None:
        """Forget a note; :class:`NoteNotFound` when there is none with that id."""

        def work(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM notes WHERE id = ?", (note_id,)).rowcount

        if not await self._db.transaction(work, "delete a note"):
            raise NoteNotFound(f"no note has the id {note_id!r}")

    async def latest(self, limit: int = 50) -> list[Note]:
        """The newest notes first."""
        limit = _limit(limit)

        def work(db: sqlite3.Connection) -> list[Note]:
            cursor = db.execute(
                _SELECT + " ORDER BY created_at DESC, row DESC LIMIT ?",
                (limit,),
            )
            return [_note(row) for row in cursor]

        return await self._db.run(work, "list notes")

    async def search(self, text: str, limit: int = 10) -> list[Note]:
        """The notes most relevant to ``text``, best first (any text is safe here)."""
        limit = _limit(limit)
        vector = await self._embedding(text) if text.strip() else None
        model = None if self.embeddings is None else self.embeddings.model
        return await self._db.run(
            lambda db: _search(db, text, vector, model, limit), "search notes"
        )

    async def export(self) -> list[Note]:
        """Every note, oldest first."""

        def work(db: sqlite3.Connection) -> list[Note]:
            cursor = db.execute(_SELECT + " ORDER BY created_at, row")
            return [_note(row) for row in cursor]

        return await self._db.run(work, "export notes")


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadNote(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
    return limit
