"""Memory: notes the assistant saves and recalls, on the tenant's volume.

::

    POST /memory, the assistant --MemoryStore.add--> notes + FTS5 (+ vector) in memory.sqlite3
    user message --with_memories--> MemoryStore.search --> a system message in the prompt
    GET /memory/export --export_lines--> every note as JSON Lines

Full-text search (FTS5, bm25) always; vector search too when an OpenAI-compatible
embeddings endpoint is configured (:class:`EmbeddingsClient`), blended as
:mod:`tenant_gateway.memory.search` describes.
"""

from tenant_gateway.memory.embeddings import EmbeddingsClient
from tenant_gateway.memory.errors import BadNote, EmbeddingsFailed, MemoryStoreError, NoteNotFound
from tenant_gateway.memory.recall import (
    last_user_text,
    relevant_memories,
    render_memories,
    with_memories,
)
from tenant_gateway.memory.schemas import (
    EXPORT_CONTENT_TYPE,
    NoteCreate,
    NoteList,
    NoteRead,
    decode_note,
    export_lines,
    note_read,
)
from tenant_gateway.memory.search import fts_query
from tenant_gateway.memory.store import MEMORY_FILE, MemoryStore, Note

__all__ = [
    "EXPORT_CONTENT_TYPE",
    "MEMORY_FILE",
    "BadNote",
    "EmbeddingsClient",
    "EmbeddingsFailed",
    "MemoryStore",
    "MemoryStoreError",
    "Note",
    "NoteCreate",
    "NoteList",
    "NoteNotFound",
    "NoteRead",
    "decode_note",
    "export_lines",
    "fts_query",
    "last_user_text",
    "note_read",
    "relevant_memories",
    "render_memories",
    "with_memories",
]
