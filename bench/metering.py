"""``python -m bench.metering``: what committing usage events costs the request path.

Two parts, each against a baseline measured in the same run:

* **the outbox in-process**: ``add()`` then ``persisted()`` for one event at a time (what a
  lone request waits for), against an empty round trip to a one-thread executor (the floor
  of handing work to the writer); and 32 requests at once, whose events share commits;
* **a real gateway process** (uvicorn, in front of the OpenAI stub as its own process),
  sequential chat completions, non-streaming and streaming: the gateway as shipped, which
  waits for the event's commit before the response ends, against the same gateway whose
  meter does not wait (``--variant nowait``, a bench-only subclass: its events are still
  written, just after the response). Both run at once and rounds alternate between them,
  so the machine's neighbours weigh on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec

from bench.stats import summary
from tenant_gateway.chat import CallRecord
from tenant_gateway.contract import (
    BUNDLE_FILE,
    GatewayBundle,
    GatewayKeyDigest,
    digest_gateway_key,
)
from tenant_gateway.metering import USAGE_FILE, UsageMeter, UsageOutbox, usage_event

TENANT = "01a20000-0000-7000-8000-0000000be9c4"
KEY = "tgk_bench-metering-gateway-key-0000000000000001"
DIGEST_KEY = bytes(range(32))
CALL = CallRecord(
    stream=False,
    outcome="ok",
    model="stub-model",
    provider="platform",
    byok=False,
    prompt_tokens=12,
    completion_tokens=34,
    latency=0.004,
    time_to_first_token=None,
)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


# -- the outbox in-process ---------------------------------------------------------------------


async def _outbox_figures(root: Path, n: int) -> list[str]:
    executor = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    floor = []
    for _ in range(n):
        started = time.perf_counter()
        await loop.run_in_executor(executor, lambda: None)
        floor.append(time.perf_counter() - started)
    executor.shutdown()

    outbox = UsageOutbox(root / USAGE_FILE)
    await outbox.open()
    one = []
    for _ in range(n):
        started = time.perf_counter()
        outbox.add(usage_event(CALL, TENANT, datetime.now(UTC)))
        await outbox.persisted()
        one.append(time.perf_counter() - started)

    commits: list[int] = []
    outbox.on_stored = commits.append
    waits: list[float] = []

    async def request() -> None:
        started = time.perf_counter()
        outbox.add(usage_event(CALL, TENANT, datetime.now(UTC)))
        await outbox.persisted()
        waits.append(time.perf_counter() - started)

    began = time.perf_counter()
    for _ in range(n // 32):
        await asyncio.gather(*(request() for _ in range(32)))
    wall = time.perf_counter() - began
    await outbox.close()
    base, alone, crowd = summary(floor), summary(one), summary(waits)
    return [
        "| figure | p50 | p95 | baseline in the same run | ratio (p50) |",
        "|---|---|---|---|---|",
        f"| outbox: one event committed, `add()` to `persisted()` (N={n}) "
        f"| {us(alone['p50'])} | {us(alone['p95'])} "
        f"| empty round trip to a one-thread executor: {us(base['p50'])} "
        f"| {alone['p50'] / base['p50']:.1f}x |",
        f"| outbox: 32 requests at once, each waiting for its event's commit "
        f"| {us(crowd['p50'])} | {us(crowd['p95'])} "
        f"| {len(waits) / wall:,.0f} events/s, {len(waits) / len(commits):.1f} events per commit "
        f"| |",
    ]


# -- a gateway process ----------------------------------------------------------------------


class _NoWaitMeter(UsageMeter):
    """Bench baseline: events are written as usual, but nobody waits for the commit."""

    async def persisted(self) -> None:
        return None


def serve(args: argparse.Namespace) -> int:
    """Child process: one gateway app on a free port; prints ``listening URL``."""
    import uvicorn

    from tenant_gateway.app import create_app
    from tenant_gateway.keys import BundleSource
    from tenant_gateway.models import ModelClient
    from tenant_gateway.settings import load_settings
    from tenant_gateway.store import DATABASE_FILE, ConversationStore

    runtime_dir, data_dir = Path(args.runtime_dir), Path(args.data_dir)
    settings = load_settings({})
    bundle_path = runtime_dir / BUNDLE_FILE
    bundle = msgspec.json.decode(bundle_path.read_bytes(), type=GatewayBundle)
    meter_type = UsageMeter if args.variant == "wait" else _NoWaitMeter
    app = create_app(
        settings,
        BundleSource(bundle_path, bundle, interval=0.5),
        ConversationStore(data_dir / DATABASE_FILE),
        ModelClient(settings),
        meter=meter_type(data_dir / USAGE_FILE, settings),
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"listening http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", lifespan="on", access_log=False, log_config=None
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


@contextmanager
def _process(argv: list[str]) -> Iterator[str]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    try:
        if not line.startswith("listening "):
            raise RuntimeError(f"{argv[2]} did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        process.terminate()
        process.wait(timeout=15)


def _write_bundle(runtime_dir: Path, upstream_url: str) -> None:
    runtime_dir.mkdir(parents=True, exist_ok=True)
    bundle = GatewayBundle(
        tenant_id=TENANT,
        tenant_slug="bench",
        keys=[GatewayKeyDigest(id="k", digest=digest_gateway_key(KEY, DIGEST_KEY))],
        key_digest_key=base64.b64encode(DIGEST_KEY).decode(),
        platform_models_url=upstream_url,
    )
    (runtime_dir / BUNDLE_FILE).write_bytes(msgspec.json.encode(bundle))


def _latencies(http: httpx.Client, n: int, stream: bool) -> list[float]:
    body: dict[str, object] = {
        "model": "stub-model",
        "messages": [{"role": "user", "content": "hello there"}],
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        with http.stream("POST", "/v1/chat/completions", json=body) as answer:
            answer.read()
            if answer.status_code != 200:
                raise RuntimeError(f"chat answered {answer.status_code}")
        samples.append(time.perf_counter() - started)
    return samples


def _child(root: Path, variant: str, upstream_url: str) -> list[str]:
    runtime_dir = root / f"run-{variant}"
    _write_bundle(runtime_dir, upstream_url)
    return [
        sys.executable,
        "-m",
        "bench.metering",
        "serve",
        "--variant",
        variant,
        "--runtime-dir",
        str(runtime_dir),
        "--data-dir",
        str(root / f"data-{variant}"),
    ]


def _gateway_figures(root: Path, n: int, rounds: int) -> list[str]:
    """Both variants run at once; each round sends ``n`` requests of each kind to one, then
    the other (alternating which goes first), so drift on the machine is shared."""
    stub = [sys.executable, "-m", "tests.doubles.openai_upstream", "--port", "0"]
    variants = ("wait", "nowait")
    samples: dict[tuple[str, bool], list[float]] = {(v, s): [] for v in variants for s in (0, 1)}
    paired: dict[bool, list[float]] = {False: [], True: []}
    headers = {"Authorization": f"Bearer {KEY}"}
    with (
        _process(stub) as upstream_url,
        _process(_child(root, "wait", upstream_url)) as wait_url,
        _process(_child(root, "nowait", upstream_url)) as nowait_url,
        httpx.Client(base_url=wait_url, headers=headers, timeout=30) as wait_http,
        httpx.Client(base_url=nowait_url, headers=headers, timeout=30) as nowait_http,
    ):
        clients = {"wait": wait_http, "nowait": nowait_http}
        for http in clients.values():
            _latencies(http, 30, False)  # warm-up
            _latencies(http, 30, True)
        for round_ in range(rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for stream in (False, True):
                medians = {}
                for variant in order:
                    taken = _latencies(clients[variant], n, stream)
                    samples[(variant, stream)].extend(taken)
                    medians[variant] = statistics.median(taken)
                paired[stream].append(medians["wait"] - medians["nowait"])
    lines = [
        "| figure | p50 | p95 | baseline in the same run: the meter not waiting | added (p50) |",
        "|---|---|---|---|---|",
    ]
    for stream in (False, True):
        wait, nowait = summary(samples[("wait", stream)]), summary(samples[("nowait", stream)])
        kind = "streaming" if stream else "non-streaming"
        lines.append(
            f"| chat completion through a gateway process, {kind} ({rounds} rounds of {n} "
            f"sequential) | {ms(wait['p50'])} | {ms(wait['p95'])} "
            f"| {ms(nowait['p50'])} (p95 {ms(nowait['p95'])}) "
            f"| {statistics.median(paired[stream]) * 1e6:+.0f} µs (median of the rounds' "
            f"differences) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metering")
    parser.add_argument("--events", type=int, default=2000, help="events in the outbox part")
    parser.add_argument("--chats", type=int, default=50, help="chats per variant and round")
    parser.add_argument("--rounds", type=int, default=20)
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("serve", help="(internal) serve one gateway variant")
    child.add_argument("--variant", choices=["wait", "nowait"], required=True)
    child.add_argument("--runtime-dir", required=True)
    child.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-metering-") as tmp:
        root = Path(tmp)
        print(f"Metering on the request path (CPUs: {os.cpu_count()}):", flush=True)
        for line in asyncio.run(_outbox_figures(root, args.events)):
            print(line, flush=True)
        print(flush=True)
        for line in _gateway_figures(root, args.chats, args.rounds):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
