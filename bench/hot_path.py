"""What the pieces of the gateway's request path cost, one by one, in-process.

:mod:`bench.gateway_latency` measures the whole gateway; this says where its time goes: the
decoding of the request body, of the answer and of a streamed answer's events, a hop to a
worker thread and back (what Litestar pays for a synchronous guard, and every SQLite write
pays on top of its own work), the conversation write the chat path awaits, the usage event
commit it awaits, and a log line emitted through the gateway's JSON formatter and
redaction filter against one checked and dropped at the default level.

``python -m bench --only hot-path``; run on a quiet core, the figures are microseconds.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvloop

from bench.fast_upstream import COMPLETION, STREAM_BODY
from bench.stats import summary
from tenant_gateway.chat import CallRecord, ReplyAssembler, completion_message, parse_chat_request
from tenant_gateway.cli import _JsonFormatter
from tenant_gateway.metering.events import usage_event
from tenant_gateway.metering.outbox import UsageOutbox
from tenant_gateway.redaction import RedactSecrets
from tenant_gateway.store import ConversationStore

SMALL = json.dumps(
    {"model": "stub-model", "messages": [{"role": "user", "content": "hello"}]}
).encode()
HISTORY = json.dumps(
    {
        "model": "stub-model",
        "messages": [
            {"role": "user" if n % 2 == 0 else "assistant", "content": "lorem ipsum " * 40}
            for n in range(40)
        ],
    }
).encode()
ANSWER = COMPLETION.split(b"\r\n\r\n", 1)[1]


def _per_call(work: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        work()
    return (time.perf_counter() - started) / n


def _sync(work: Callable[[], object], n: int = 20_000, rounds: int = 5) -> float:
    return summary([_per_call(work, n) for _ in range(rounds)])["p50"]


async def _async(work: Callable[[], Awaitable[object]], n: int = 2_000) -> dict[str, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return summary(samples)


def _assemble() -> object:
    assembler = ReplyAssembler()
    assembler.feed(STREAM_BODY)
    return assembler.message()


def _logger(level: int) -> logging.Logger:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(_JsonFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger(f"bench.hot_path.{level}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(level)
    return logger


def _call_record() -> CallRecord:
    return CallRecord(
        stream=False,
        outcome="ok",
        model="stub-model",
        provider="platform",
        byok=False,
        prompt_tokens=1,
        completion_tokens=8,
        latency=0.001,
        time_to_first_token=None,
    )


async def _measure_io(root: Path) -> list[tuple[str, dict[str, float]]]:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)
    store = ConversationStore(root / "conversations.sqlite3")
    outbox = UsageOutbox(root / "usage.sqlite3")
    await store.open()
    await outbox.open()
    messages = [{"role": "user", "content": "hello"}]
    reply = {"role": "assistant", "content": "echo: hello"}
    counter = iter(range(10**9))

    async def record() -> None:
        await store.record(f"c{next(counter)}", messages, reply)

    async def usage() -> None:
        outbox.add(usage_event(_call_record(), "bench"))
        await outbox.persisted()

    try:
        return [
            ("a hop to a worker thread and back (`run_in_executor`)", await _async(
                lambda: loop.run_in_executor(pool, int)
            )),
            ("conversation write, new conversation of 2 messages (awaited)", await _async(record)),
            ("usage event queued and committed (awaited)", await _async(usage)),
        ]  # fmt: skip
    finally:
        await store.close()
        await outbox.close()
        pool.shutdown()


def run() -> list[str]:
    emitted = _logger(logging.INFO)
    dropped = _logger(logging.WARNING)
    cpu = [
        ("decode and check the request body (80 B)", _sync(lambda: parse_chat_request(SMALL))),
        (
            f"decode and check a 40-message request body ({len(HISTORY) // 1024} KiB)",
            _sync(lambda: parse_chat_request(HISTORY), n=2_000),
        ),
        ("decode the answer for its message and usage", _sync(lambda: completion_message(ANSWER))),
        ("rebuild a streamed reply from its 11 events", _sync(_assemble, n=5_000)),
        ("a log line emitted (JSON, redaction filter)", _sync(lambda: emitted.info("x %s", 1))),
        ("a log line below the level (dropped)", _sync(lambda: dropped.info("x %s", 1))),
    ]
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-hot-path-") as tmp:
        io_figures = uvloop.run(_measure_io(Path(tmp)))
    lines = [
        "| piece of the request path | median per call | p95 |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {seconds * 1e6:.1f} µs | |" for name, seconds in cpu]
    lines += [
        f"| {name} | {s['p50'] * 1e6:.1f} µs | {s['p95'] * 1e6:.1f} µs |" for name, s in io_figures
    ]
    return lines
