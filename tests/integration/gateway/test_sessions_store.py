"""The session store on a real file: sessions per key, their history, and the resets."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tenant_gateway.sessions import SESSIONS_FILE, ResetPolicy, SessionStore, session_key


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest.fixture
def policy() -> list[ResetPolicy]:
    return [ResetPolicy(idle_timeout=600, daily_hour=None)]


@pytest.fixture
async def sessions(
    tmp_path: Path, clock: Clock, policy: list[ResetPolicy]
) -> AsyncIterator[SessionStore]:
    store = SessionStore(tmp_path / SESSIONS_FILE, lambda: policy[0], clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


ALICE = session_key("main", "telegram", "alice", None, "dm", "per-channel-peer")
BOB = session_key("main", "telegram", "bob", None, "dm", "per-channel-peer")
ALICE_ON_DISCORD = session_key("main", "discord", "alice", None, "dm", "per-channel-peer")


async def test_each_key_keeps_its_own_history(sessions: SessionStore) -> None:
    for key, text in ((ALICE, "hi from alice"), (BOB, "hi from bob"), (ALICE_ON_DISCORD, "d")):
        await sessions.append(key, [user(text), {"role": "assistant", "content": "ok"}])
    alice = await sessions.current(ALICE)
    assert await sessions.history(alice.id) == [
        user("hi from alice"),
        {"role": "assistant", "content": "ok"},
    ]
    bob = await sessions.current(BOB)
    assert (await sessions.history(bob.id))[0] == user("hi from bob")
    assert len({alice.id, bob.id, (await sessions.current(ALICE_ON_DISCORD)).id}) == 3


async def test_a_session_continues_until_it_has_been_idle_too_long(
    sessions: SessionStore, clock: Clock
) -> None:
    first = await sessions.append(ALICE, [user("one")])
    clock.now += 599
    assert (await sessions.append(ALICE, [user("two")])).id == first.id
    clock.now += 601
    later = await sessions.current(ALICE)
    assert later.id != first.id
    assert await sessions.history(later.id) == []
    assert await sessions.history(first.id) == [user("one"), user("two")]


async def test_the_daily_reset_ends_yesterdays_session(
    sessions: SessionStore, clock: Clock, policy: list[ResetPolicy]
) -> None:
    policy[0] = ResetPolicy(idle_timeout=None, daily_hour=4, timezone="UTC")
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % 86400 + 3 * 3600  # 03:00 UTC
    first = await sessions.append(ALICE, [user("late night")])
    clock.now += 1800  # 03:30: same day, before the reset
    assert (await sessions.current(ALICE)).id == first.id
    clock.now += 3600  # 04:30
    assert (await sessions.current(ALICE)).id != first.id


async def test_an_explicit_reset_starts_an_empty_session_for_that_key_only(
    sessions: SessionStore,
) -> None:
    first = await sessions.append(ALICE, [user("one")])
    bob = await sessions.append(BOB, [user("bob")])
    fresh = await sessions.reset(ALICE)
    assert fresh.id != first.id
    assert (await sessions.current(ALICE)).id == fresh.id
    assert await sessions.history(fresh.id) == []
    assert (await sessions.current(BOB)).id == bob.id


async def test_sessions_survive_a_restart_and_the_file_is_in_wal_mode(
    tmp_path: Path, clock: Clock, policy: list[ResetPolicy]
) -> None:
    def store() -> SessionStore:
        return SessionStore(tmp_path / SESSIONS_FILE, lambda: policy[0], clock)

    first = store()
    await first.open()
    session = await first.append(ALICE, [user("remember me")])
    await first.close()
    second = store()
    await second.open()
    try:
        assert (await second.current(ALICE)).id == session.id
        assert await second.history(session.id) == [user("remember me")]
    finally:
        await second.close()
    with sqlite3.connect(tmp_path / SESSIONS_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL").fetchone() == (1,)
