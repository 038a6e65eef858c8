"""Conversation memory: which messages of a request are new, and what is stored."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tenant_gateway.store import (
    ConversationStore,
    StoreError,
    new_turn,
    read_conversation,
)

SYSTEM = {"role": "system", "content": "be brief"}
USER_1 = {"role": "user", "content": "one"}
ASSISTANT_1 = {"role": "assistant", "content": "echo: one"}
USER_2 = {"role": "user", "content": "two"}
TOOL = {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}


def test_a_new_conversation_keeps_every_message() -> None:
    messages = [SYSTEM, USER_1, ASSISTANT_1, USER_2]
    assert new_turn(messages, new_conversation=True) == messages


def test_a_known_conversation_keeps_what_follows_the_last_assistant_message() -> None:
    assert new_turn([SYSTEM, USER_1, ASSISTANT_1, USER_2], new_conversation=False) == [USER_2]
    assert new_turn([USER_1, ASSISTANT_1, TOOL, USER_2], new_conversation=False) == [TOOL, USER_2]
    assert new_turn([USER_1, ASSISTANT_1], new_conversation=False) == []


def test_without_an_assistant_message_everything_is_new() -> None:
    assert new_turn([SYSTEM, USER_1], new_conversation=False) == [SYSTEM, USER_1]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ConversationStore]:
    store = ConversationStore(tmp_path / "volume" / "conversations.sqlite3")
    await store.open()
    yield store
    await store.close()


def roles(rows: list[Any]) -> list[tuple[int, str]]:
    return [(row.position, row.role) for row in rows]


async def test_the_database_is_created_in_wal_mode(store: ConversationStore) -> None:
    assert store.path.exists()
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


async def test_exchanges_are_appended_in_order(store: ConversationStore) -> None:
    assert await store.record("c1", [SYSTEM, USER_1], ASSISTANT_1) == 3
    reply_2 = {"role": "assistant", "content": "echo: two"}
    assert await store.record("c1", [SYSTEM, USER_1, ASSISTANT_1, USER_2], reply_2) == 2
    rows = await store.read("c1")
    assert roles(rows) == [
        (0, "system"),
        (1, "user"),
        (2, "assistant"),
        (3, "user"),
        (4, "assistant"),
    ]
    assert [row.message for row in rows] == [SYSTEM, USER_1, ASSISTANT_1, USER_2, reply_2]
    assert all(row.conversation_id == "c1" and row.created_at > 0 for row in rows)
    assert await store.read("other") == []


async def test_the_content_column_holds_the_message_as_json(store: ConversationStore) -> None:
    await store.record("c1", [TOOL], None)
    with sqlite3.connect(store.path) as db:
        (content,) = db.execute("SELECT content FROM messages").fetchone()
    assert content == '{"role":"tool","tool_call_id":"call_1","content":"{\\"temp\\": 21}"}'


async def test_conversations_are_kept_apart(store: ConversationStore) -> None:
    await store.record("a", [USER_1], ASSISTANT_1)
    await store.record("b", [USER_2], None)
    assert roles(await store.read("a")) == [(0, "user"), (1, "assistant")]
    assert roles(await store.read("b")) == [(0, "user")]


async def test_concurrent_writes_to_one_conversation_keep_positions_unique(
    store: ConversationStore,
) -> None:
    await asyncio.gather(
        *(store.record("c", [{"role": "user", "content": str(n)}], None) for n in range(20))
    )
    rows = await store.read("c")
    assert [row.position for row in rows] == list(range(20))


async def test_data_survives_reopening_and_is_readable_from_outside(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    first = ConversationStore(path)
    await first.open()
    await first.record("c", [USER_1], ASSISTANT_1)
    await first.close()
    second = ConversationStore(path)
    await second.open()
    await second.record("c", [USER_1, ASSISTANT_1, USER_2], None)
    await second.close()
    assert [row.message for row in read_conversation(path, "c")] == [USER_1, ASSISTANT_1, USER_2]


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    with pytest.raises(StoreError):
        await store.record("c", [USER_1], None)


async def test_a_store_that_cannot_be_opened_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = ConversationStore(blocker / "c.sqlite3")
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "not-a-dir" in caught.value.detail
