"""Memory's pure parts: search terms made safe, score blending, and the prompt message."""

from __future__ import annotations

import sqlite3

import pytest

from tenant_gateway.memory import Note, fts_query, last_user_text, render_memories
from tenant_gateway.memory.search import blend, pack, similarity, unpack


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("cat dog", '"cat" OR "dog"'),
        ('NEAR(cat "dog*")', '"near" OR "cat" OR "dog"'),
        ("Cat cat CAT", '"cat"'),
        ("* ( ) : ^ -", None),
        ("", None),
    ],
)
def test_user_text_becomes_quoted_words(text: str, query: str | None) -> None:
    assert fts_query(text) == query


@pytest.mark.parametrize("text", ['"', "NEAR(", "a AND", "x:y", "(*)", "OR OR", "-a ^b"])
def test_every_query_made_from_user_text_is_valid_fts5(text: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    query = fts_query(text)
    if query is not None:
        db.execute("SELECT * FROM t WHERE t MATCH ?", (query,)).fetchall()


def test_blended_scores_weigh_both_halves_equally() -> None:
    scores = blend({1: 4.0, 2: 2.0}, {2: 0.8, 3: 0.6, 4: -0.5})
    assert scores == pytest.approx({1: 0.5, 2: 0.5 * 0.5 + 0.5 * 0.8, 3: 0.3, 4: 0.0})


def test_packed_vectors_are_unit_length_float32() -> None:
    vector = unpack(pack([3.0, 4.0]))
    assert list(vector) == pytest.approx([0.6, 0.8])
    assert similarity(vector, vector) == pytest.approx(1.0)
    assert similarity(vector, unpack(pack([1.0, 0.0, 0.0]))) == 0.0


def note(text: str) -> Note:
    return Note(id="mem_1", text=text, tags=[], source="api", created_at=86400.0)


def test_memories_render_as_one_system_message_within_a_size() -> None:
    notes = [note("tea,\n not coffee"), note("x" * 100), note("never shown")]
    message = render_memories(notes, max_chars=20)
    assert message is not None
    assert message["role"] == "system"
    lines = message["content"].splitlines()
    assert lines[1] == "- (1970-01-02) tea, not coffee"
    assert lines[2:] == ["- (1970-01-02) xxxxx"]  # cut to what was left of 20 characters
    assert render_memories([]) is None


def test_the_last_user_text_is_found_in_text_parts_too() -> None:
    parts = [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}]
    messages = [{"role": "user", "content": "old"}, {"role": "user", "content": parts}]
    assert last_user_text(messages) == "hello"
    assert last_user_text([{"role": "system", "content": "x"}]) == ""
