"""Search terms made safe for FTS5, and how full-text and vector scores are blended.

User text is never handed to FTS5 as a query: it is cut into words (Unicode word
characters), each word becomes a quoted FTS5 string (``"word"``, a literal phrase of one
token, so ``NEAR``, ``AND``, ``*``, ``(``, ``:`` and quotes are just text or dropped), and the
words are joined with ``OR``. ``bm25`` then ranks notes matching more and rarer words first.
Text with no word in it searches for nothing.

Blending, when vectors are on: each candidate note gets

    score = FTS_WEIGHT * (bm25 / best bm25 among the full-text hits)
          + VECTOR_WEIGHT * max(cosine similarity, 0)

so the best full-text hit scores 1 on its side and a note's vector side is its cosine
similarity to the query's embedding. Candidates are the top full-text hits and the notes
whose similarity is at least :data:`MIN_SIMILARITY` (so a query with no words in common
still finds notes close in meaning, and an unrelated note is not dragged in).
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Sequence

MAX_TERMS = 64
FTS_WEIGHT = 0.5
VECTOR_WEIGHT = 0.5
MIN_SIMILARITY = 0.25

_WORD = re.compile(r"\w+")


def fts_query(text: str) -> str | None:
    """An FTS5 ``MATCH`` expression for ``text``'s words, or None when it has none."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))[:MAX_TERMS]
    if not words:
        return None
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words)


def pack(vector: Sequence[float]) -> bytes:
    """A vector as a float32 BLOB, scaled to length 1 (so a dot product is the cosine)."""
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return array("f", (x / norm for x in vector)).tobytes()


def unpack(blob: bytes) -> array[float]:
    vector = array("f")
    vector.frombytes(blob)
    return vector


def similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two unit vectors (0 when their lengths differ)."""
    if len(a) != len(b):
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True))


def blend(fts: dict[int, float], vectors: dict[int, float]) -> dict[int, float]:
    """Blended scores by note row: ``fts`` maps rows to positive bm25 scores (higher is
    better), ``vectors`` rows to cosine similarities."""
    best = max(fts.values(), default=0.0) or 1.0
    return {
        row: FTS_WEIGHT * fts.get(row, 0.0) / best + VECTOR_WEIGHT * max(vectors.get(row, 0.0), 0.0)
        for row in fts.keys() | vectors.keys()
    }
