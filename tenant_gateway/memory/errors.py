"""The memory package's exception tree::

MemoryStoreError          the memory database could not be opened or written (500)
├── BadNote               a note or a search the gateway cannot take (400)
├── NoteNotFound          no note has that id (404)
└── EmbeddingsFailed      the embeddings endpoint failed or answered nonsense (502)
"""

from __future__ import annotations

from tenant_gateway.settings import GatewayError


class MemoryStoreError(GatewayError):
    """Root of the memory's errors; as itself: the memory database failed."""

    problem = "memory-unavailable"
    title = "Memory unavailable"
    code = "memory_unavailable"


class BadNote(MemoryStoreError):
    status_code = 400
    problem = "bad-note"
    title = "Bad note"
    error_type = "invalid_request_error"
    code = "bad_note"


class NoteNotFound(MemoryStoreError):
    status_code = 404
    problem = "note-not-found"
    title = "Note not found"
    error_type = "invalid_request_error"
    code = "note_not_found"


class EmbeddingsFailed(MemoryStoreError):
    status_code = 502
    problem = "embeddings-failed"
    title = "Embeddings failed"
    code = "embeddings_failed"
