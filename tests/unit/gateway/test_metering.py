"""The gateway's meter in pieces: event ids, events from call records, the outbox on disk
(group commits, order, acknowledgement, setting aside) and the delivery's backoff."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from tenant_gateway.chat import CallRecord
from tenant_gateway.contract import UsageBatch, UsageEvent
from tenant_gateway.metering import USAGE_FILE, OutboxError, UsageOutbox, new_event_id
from tenant_gateway.metering import usage_event as make_event
from tenant_gateway.metering.delivery import backoff
from tenant_gateway.settings import SettingsError, load_settings

TENANT = "01a20000-0000-7000-8000-00000000a11c"


def call(**overrides: object) -> CallRecord:
    fields: dict[str, object] = {
        "stream": False,
        "outcome": "ok",
        "model": "stub-model",
        "provider": "platform",
        "byok": False,
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "latency": 0.25,
        "time_to_first_token": None,
    }
    fields.update(overrides)
    return CallRecord(**fields)  # type: ignore[arg-type]


def test_event_ids_are_uuid7_unique_and_time_ordered() -> None:
    ids = [new_event_id(now_ms=1_700_000_000_000 + n // 10) for n in range(10_000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(ids)) == len(ids)
    assert [u.int >> 80 for u in parsed] == sorted(u.int >> 80 for u in parsed)
    assert parsed[0].int >> 80 == 1_700_000_000_000
    assert new_event_id() != new_event_id()


def test_an_event_carries_what_the_call_cost() -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    event = make_event(
        call(stream=True, byok=True, provider="openai", time_to_first_token=0.05), TENANT, at
    )
    assert (event.tenant_id, event.model, event.provider, event.byok, event.stream) == (
        TENANT,
        "stub-model",
        "openai",
        True,
        True,
    )
    assert (event.prompt_tokens, event.completion_tokens) == (3, 5)
    assert (event.latency, event.time_to_first_token, event.at) == (0.25, 0.05, at)
    # What the gateway makes, the control plane's wire type accepts.
    wire = msgspec.json.encode(UsageBatch(events=[event]))
    assert msgspec.json.decode(wire, type=UsageBatch).events == [event]


def test_nonsense_token_counts_do_not_make_an_event_undeliverable() -> None:
    event = make_event(call(prompt_tokens=-1, completion_tokens=None, model="m" * 300), TENANT)
    assert (event.prompt_tokens, event.completion_tokens) == (None, None)
    assert len(event.model) == 256
    msgspec.json.decode(msgspec.json.encode(event), type=UsageEvent)


async def test_the_outbox_commits_concurrent_events_and_keeps_them_in_order(
    tmp_path: Path,
) -> None:
    outbox = UsageOutbox(tmp_path / USAGE_FILE)
    await outbox.open()
    events = [make_event(call(prompt_tokens=n), TENANT) for n in range(50)]
    for event in events:
        outbox.add(event)
    assert outbox.queued > 0, "add() does no I/O: the events wait for the writer"
    assert await outbox.persisted()
    assert outbox.queued == 0
    await outbox.close()

    # A separate connection (another process, say) sees every event, committed.
    with sqlite3.connect(tmp_path / USAGE_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM usage_outbox").fetchone() == (50,)

    reopened = UsageOutbox(tmp_path / USAGE_FILE)
    await reopened.open()
    oldest = await reopened.oldest(10)
    assert [e.event_id for e in oldest] == [e.id for e in events[:10]]
    assert msgspec.json.decode(oldest[0].event, type=UsageEvent) == events[0]
    await reopened.remove(oldest)
    assert await reopened.count() == 40
    await reopened.set_aside((await reopened.oldest(1)), "422: refused")
    assert await reopened.count() == 39
    await reopened.close()
    with sqlite3.connect(tmp_path / USAGE_FILE) as db:
        assert db.execute("SELECT event_id, reason FROM usage_rejected").fetchall() == [
            (events[10].id, "422: refused")
        ]


async def test_events_added_while_a_commit_runs_are_committed_by_the_next(
    tmp_path: Path,
) -> None:
    outbox = UsageOutbox(tmp_path / USAGE_FILE)
    await outbox.open()
    commits: list[int] = []
    outbox.on_stored = commits.append
    outbox.add(make_event(call(), TENANT))
    await asyncio.sleep(0)  # the writer takes the first event
    outbox.add(make_event(call(), TENANT))
    outbox.add(make_event(call(), TENANT))
    assert await outbox.persisted()
    assert sum(commits) == 3
    assert await outbox.count() == 3
    await outbox.close()


async def test_a_commit_blocked_by_another_writer_waits_on_the_thread_not_the_loop(
    tmp_path: Path,
) -> None:
    """Commits run on the event loop without waiting for locks; while another writer (the
    delivery, another process) holds the lock, they wait on the outbox's thread instead, so
    the loop keeps serving and nothing is lost."""
    outbox = UsageOutbox(tmp_path / USAGE_FILE)
    await outbox.open()
    holder = sqlite3.connect(tmp_path / USAGE_FILE, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    outbox.add(make_event(call(), TENANT))
    waiting = asyncio.ensure_future(outbox.persisted())
    ticks = 0
    while ticks < 20:  # the loop runs while the commit waits for the lock
        await asyncio.sleep(0.01)
        ticks += 1
    assert not waiting.done(), "the event cannot be committed while the lock is held"
    holder.execute("ROLLBACK")
    holder.close()
    assert await asyncio.wait_for(waiting, timeout=10)
    assert await outbox.count() == 1
    await outbox.close()


async def test_the_wal_is_checkpointed_while_events_are_committed_from_the_loop(
    tmp_path: Path,
) -> None:
    from tenant_gateway.metering.outbox import CHECKPOINT_EVERY

    outbox = UsageOutbox(tmp_path / USAGE_FILE)
    await outbox.open()
    wal = tmp_path / (USAGE_FILE + "-wal")
    sizes = []
    for _ in range(4):
        for _ in range(CHECKPOINT_EVERY):
            outbox.add(make_event(call(), TENANT))
            assert await outbox.persisted()
        await outbox.count()  # runs on the outbox's thread after the checkpoint queued there
        sizes.append(wal.stat().st_size)
    assert await outbox.count() == 4 * CHECKPOINT_EVERY
    # After each checkpoint the WAL is written over from its start: it stops growing.
    assert max(sizes) < 1.5 * sizes[0], sizes
    await outbox.close()


async def test_a_closed_outbox_refuses_events_instead_of_keeping_them_in_memory(
    tmp_path: Path,
) -> None:
    outbox = UsageOutbox(tmp_path / USAGE_FILE)
    await outbox.open()
    await outbox.close()
    with pytest.raises(OutboxError):
        outbox.add(make_event(call(), TENANT))
    assert outbox.queued == 0


async def test_persisted_with_nothing_queued_returns_at_once(tmp_path: Path) -> None:
    outbox = UsageOutbox(tmp_path / USAGE_FILE)
    await outbox.open()
    assert await asyncio.wait_for(outbox.persisted(), timeout=1)
    await outbox.close()


def test_backoff_doubles_up_to_the_ceiling() -> None:
    for failures, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0), (500, 4.0)):
        waits = [backoff(failures, 0.5, 4.0) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (failures, min(waits), max(waits))


def test_usage_settings_are_read_and_checked() -> None:
    settings = load_settings(
        {
            "TENANTRY_GATEWAY_USAGE_BATCH_SIZE": "25",
            "TENANTRY_GATEWAY_USAGE_FLUSH_INTERVAL": "0.2",
            "TENANTRY_GATEWAY_USAGE_RETRY_MAX": "5",
        }
    )
    assert (settings.usage_batch_size, settings.usage_flush_interval) == (25, 0.2)
    assert settings.usage_retry_max == 5.0
    defaults = load_settings({})
    assert (defaults.usage_batch_size, defaults.usage_flush_interval) == (100, 1.0)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TENANTRY_GATEWAY_USAGE_BATCH_SIZE", "many", "expected a whole number"),
        ("TENANTRY_GATEWAY_USAGE_BATCH_SIZE", "0", "from 1 to 1000"),
        ("TENANTRY_GATEWAY_USAGE_BATCH_SIZE", "5000", "from 1 to 1000"),
        ("TENANTRY_GATEWAY_USAGE_FLUSH_INTERVAL", "soon", "a number of seconds"),
        ("TENANTRY_GATEWAY_USAGE_FLUSH_INTERVAL", "nan", "from 0.01 to 3600"),
        ("TENANTRY_GATEWAY_USAGE_RETRY_MAX", "-1", "from 0.1 to 3600"),
    ],
)
def test_a_bad_usage_setting_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert variable in caught.value.detail
    assert message in caught.value.detail
