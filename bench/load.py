"""An open-loop load generator: requests sent at a fixed rate whatever the answers do.

A closed-loop tool (wrk) waits for an answer before sending the next request on a
connection, so a slow target lowers the load it is measured under. Here request ``i`` is
due at ``start + i / rate``; it goes out on an idle keep-alive connection, or a new one
(up to ``--max-connections``; past that it waits for one, and the wait counts in its
latency). Latency runs from the moment a request is sent (a connection wait included) to
the last byte of its answer, so the generator's own lateness (reported apart as
``send_lag``) does not count against the target;
for streams the first body byte is timed too. Raw asyncio, uvloop and httptools keep the
generator's own cost per request to tens of microseconds.

``python -m bench.load --url URL --rate R --duration S [--stream] [--key K]`` prints one
JSON object: latency percentiles in seconds, counts, the achieved rate and how late the
generator itself was in sending (a figure that must stay small for the run to mean much),
and how long after the last request the last answer came (``drain``: a target that kept up
with the rate answers within its latency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import uvloop

from bench.stats import percentile


class _Connection(asyncio.Protocol):
    """One keep-alive connection; :meth:`exchange` sends a request and awaits its answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.first_byte = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed before the answer"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            assert self.transport is not None
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        if not self.first_byte:
            self.first_byte = time.perf_counter()

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    async def exchange(self, request: bytes) -> int:
        assert self.transport is not None
        self.first_byte = 0.0
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class OpenLoop:
    def __init__(self, url: str, body: bytes, key: str | None, max_connections: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        headers = [
            f"POST {parts.path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            "content-type: application/json",
            f"content-length: {len(body)}",
        ]
        if key:
            headers.append(f"authorization: Bearer {key}")
        self.request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
        self.max_connections = max_connections
        self.idle: list[_Connection] = []
        self.opened = 0
        self.freed = asyncio.Condition()
        self.latencies: list[float] = []
        self.first_bytes: list[float] = []
        self.lags: list[float] = []
        self.errors = 0
        self.statuses: dict[int, int] = {}
        self.recording = False
        self.drain = 0.0
        """Seconds from the last request sent to the last answer: how far behind it fell."""

    async def _connection(self) -> _Connection:
        while True:
            while self.idle:
                connection = self.idle.pop()
                if not connection.closed:
                    return connection
            if self.opened < self.max_connections:
                self.opened += 1
                try:
                    _, protocol = await asyncio.get_running_loop().create_connection(
                        _Connection, self.host, self.port
                    )
                except OSError:
                    self.opened -= 1
                    raise
                return protocol
            async with self.freed:
                await self.freed.wait()

    async def _release(self, connection: _Connection | None) -> None:
        if connection is not None and not connection.closed:
            self.idle.append(connection)
        else:
            self.opened -= 1
        async with self.freed:
            self.freed.notify()

    async def one(self) -> None:
        recording = self.recording
        started = time.perf_counter()
        connection: _Connection | None = None
        try:
            connection = await self._connection()
            status = await connection.exchange(self.request)
        except (OSError, httptools.HttpParserError):
            if recording:
                self.errors += 1
            if connection is not None and connection.transport is not None:
                connection.transport.close()
            await self._release(None)
            return
        done = time.perf_counter()
        if recording:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                self.latencies.append(done - started)
                if connection.first_byte:
                    self.first_bytes.append(connection.first_byte - started)
            else:
                self.errors += 1
        await self._release(connection)

    async def run(self, rate: float, duration: float, warmup: float) -> dict[str, Any]:
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        total = int(rate * (warmup + duration))
        warm = int(rate * warmup)
        recorded_from = 0.0
        for i in range(total):
            due = start + i / rate
            if i == warm:
                self.recording = True
                recorded_from = due
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.recording:
                self.lags.append(time.perf_counter() - due)
            task = asyncio.create_task(self.one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_until = time.perf_counter()
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        self.drain = time.perf_counter() - sent_until
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()
        return self.report(sent_until - recorded_from, total - warm, len(tasks))

    def report(self, seconds: float, sent: int, unfinished: int) -> dict[str, Any]:
        def spread(samples: list[float]) -> dict[str, float]:
            return {f"p{q:g}": percentile(samples, q) for q in (50, 90, 99, 99.9, 100)}

        return {
            "sent": sent,
            "ok": len(self.latencies),
            "errors": self.errors,
            "unfinished": unfinished,
            "statuses": self.statuses,
            "rate": len(self.latencies) / seconds if seconds > 0 else 0.0,
            "latency": spread(self.latencies),
            "first_byte": spread(self.first_bytes) if self.first_bytes else None,
            "send_lag": spread(self.lags),
            "connections": self.opened,
            "drain": self.drain,
        }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds sent, not measured")
    parser.add_argument("--body", required=True, help="the JSON body to POST")
    parser.add_argument("--key", default=None, help="bearer token")
    parser.add_argument("--max-connections", type=int, default=256)
    args = parser.parse_args()
    load = OpenLoop(args.url, args.body.encode(), args.key, args.max_connections)
    result = uvloop.run(load.run(args.rate, args.duration, args.warmup))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
