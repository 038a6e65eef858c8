"""``python -m bench``: provisioning latency, gateway memory and chat overhead, concurrency.

Everything runs on this machine over loopback: an OpenAI-compatible upstream stub, a real
``tenantry up`` (embedded default: SQLite, local runtime) and real gateway processes.
Baselines are measured in the same run: a bare gateway process start (the floor under
provisioning) and the upstream called directly (the floor under chat latency).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench import auth as auth_bench
from bench import gateway_latency, hot_path, platform_bot
from bench import operator as operator_bench
from bench import vault as vault_bench
from bench.machine import describe
from bench.processes import CHAT_BODY, ControlPlane, readyz, upstream, wait
from bench.stats import rss_mib, summary
from tenant_gateway.contract import GatewayBundle, GatewayState

RESULTS = Path(__file__).with_name("RESULTS.md")


def bare_gateway_starts(root: Path, runs: int, upstream_url: str) -> list[float]:
    """Baseline: spawn ``tenant_gateway`` directly and time it to ``/readyz`` 200."""
    samples = []
    for n in range(runs):
        runtime_dir = root / f"bare-{n}"
        runtime_dir.mkdir(parents=True)
        bundle = GatewayBundle(
            tenant_id=f"bare-{n}",
            tenant_slug=f"bare-{n}",
            keys=[],
            key_digest_key=base64.b64encode(bytes(32)).decode(),
            platform_models_url=upstream_url,
        )
        (runtime_dir / "bundle.json").write_bytes(msgspec.json.encode(bundle))
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenant_gateway",
                "--runtime-dir",
                str(runtime_dir),
                "--data-dir",
                str(runtime_dir / "data"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def ready(directory: Path = runtime_dir) -> bool:
            try:
                state = msgspec.json.decode(
                    (directory / "state.json").read_bytes(), type=GatewayState
                )
            except (OSError, msgspec.DecodeError):
                return False
            return readyz(f"http://127.0.0.1:{state.port}")

        wait(ready, 30, "bare gateway")
        samples.append(time.perf_counter() - started)
        process.terminate()
        process.wait(timeout=10)
    return samples


def provision_sequentially(
    cp: ControlPlane, count: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """POST a tenant, then poll until its gateway answers ``/readyz``; one at a time."""
    samples = []
    tenants = []
    with httpx.Client(base_url=cp.url, headers=cp.headers, timeout=30) as client:
        for n in range(count):
            started = time.perf_counter()
            # Unlimited plan: the chats measure the gateway, not its rate limits.
            body = {"slug": f"seq-{n}", "plan": "enterprise"}
            created = client.post("/api/v1/tenants", json=body).json()

            def ready(tenant_id: str = created["id"]) -> dict[str, Any] | None:
                tenant: dict[str, Any] = client.get(f"/api/v1/tenants/{tenant_id}").json()
                if tenant["state"] == "failed":
                    raise RuntimeError(tenant["reason"])
                if tenant["state"] == "running" and readyz(tenant["endpoint"]):
                    return tenant
                return None

            tenant = wait(ready, 60, f"tenant seq-{n}")
            samples.append(time.perf_counter() - started)
            tenants.append({**tenant, "key": created["gateway_key"]["key"]})
    return samples, tenants


def chat_latencies(url: str, key: str | None, requests: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    samples = []
    with httpx.Client(headers=headers, timeout=30) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = client.post(f"{url}/chat/completions", json=CHAT_BODY)
            samples.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"chat failed: {response.status_code} {response.text}")
    return samples


async def provision_concurrently(cp: ControlPlane, count: int) -> tuple[float, int]:
    async with httpx.AsyncClient(base_url=cp.url, headers=cp.headers, timeout=120) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.post("/api/v1/tenants", json={"slug": f"burst-{n}"}) for n in range(count))
        )
        ids = [r.json()["id"] for r in responses if r.status_code == 202]
        failures = count - len(ids)
        pending = set(ids)
        deadline = time.monotonic() + 600
        while pending and time.monotonic() < deadline:
            page = (await client.get("/api/v1/tenants", params={"limit": 200})).json()
            states = {t["id"]: t["state"] for t in page["items"]}
            while page["next_cursor"]:
                page = (
                    await client.get(
                        "/api/v1/tenants", params={"limit": 200, "cursor": page["next_cursor"]}
                    )
                ).json()
                states.update({t["id"]: t["state"] for t in page["items"]})
            for tenant_id in list(pending):
                if states.get(tenant_id) == "running":
                    pending.discard(tenant_id)
                elif states.get(tenant_id) == "failed":
                    pending.discard(tenant_id)
                    failures += 1
            await asyncio.sleep(0.1)
        failures += len(pending)
        return time.perf_counter() - started, failures


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--tenants", type=int, default=20, help="sequential provisions")
    parser.add_argument("--concurrent", type=int, default=100, help="concurrent provisions")
    parser.add_argument("--chats", type=int, default=100, help="chat requests for RSS/latency")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--only",
        choices=["gateway-latency", "hot-path", "operator", "platform-bot"],
        help="run only this part (it prints, never writes)",
    )
    latency = parser.add_argument_group("gateway latency (bench/gateway_latency.py)")
    latency.add_argument("--rate", type=float, default=500.0, help="fixed rate, requests/s")
    latency.add_argument("--duration", type=float, default=30.0, help="seconds at that rate")
    latency.add_argument("--saturation", type=float, default=10.0, help="seconds of wrk")
    latency.add_argument("--rounds", type=int, default=3, help="rounds over every target")
    latency.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    latency.add_argument(
        "--saturation-only", action="store_true", help="no fixed-rate runs, only wrk"
    )
    tenant_operator = parser.add_argument_group("Tenant operator (bench/operator.py)")
    tenant_operator.add_argument(
        "--operator-tenants",
        type=int,
        default=operator_bench.TENANTS,
        help="Tenants created at once",
    )
    args = parser.parse_args()

    lines: list[str] = []

    def out(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    def gateway_hot_path() -> None:
        options = gateway_latency.Options(
            rate=args.rate,
            duration=args.duration,
            saturation_seconds=args.saturation,
            rounds=args.rounds,
            litellm=not args.no_litellm,
            fixed_rate=not args.saturation_only,
        )
        report = gateway_latency.run(options, lambda line: print(line, flush=True))
        out(f"Gateway hot path, measured {datetime.date.today()} on {describe()}:")
        for line in report:
            out(line)

    def request_path_pieces() -> None:
        out("What the pieces of the gateway's request path cost (in-process):")
        out()
        for line in hot_path.run():
            out(line)

    def operator_throughput() -> None:
        out(
            f"Tenant operator against the Kubernetes API emulator, measured "
            f"{datetime.date.today()} on {describe()}:"
        )
        out()
        for line in operator_bench.run(args.operator_tenants):
            out(line)

    def platform_bot_path() -> None:
        out(
            f"Platform Telegram bot, webhook → control plane → gateway → reply, measured "
            f"{datetime.date.today()} on {describe()}:"
        )
        out()
        for line in platform_bot.run():
            out(line)

    if args.only == "platform-bot":
        platform_bot_path()
        return 0
    if args.only == "gateway-latency":
        gateway_hot_path()
        return 0
    if args.only == "operator":
        operator_throughput()
        return 0
    if args.only == "hot-path":
        request_path_pieces()
        return 0

    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as tmp, upstream() as upstream_url:
        root = Path(tmp)
        bare = summary(bare_gateway_starts(root / "bare", 10, upstream_url))
        cp = ControlPlane(root, upstream_url)
        try:
            seq_samples, tenants = provision_sequentially(cp, args.tenants)
            seq = summary(seq_samples)
            probe = tenants[0]
            pid = cp.gateway_pid(probe["id"])
            rss_idle = rss_mib(pid)
            direct = summary(chat_latencies(upstream_url, None, args.chats))
            via_gateway = summary(
                chat_latencies(f"{probe['endpoint']}/v1", probe["key"], args.chats)
            )
            rss_after = rss_mib(pid)
            wall, failures = asyncio.run(provision_concurrently(cp, args.concurrent))
        finally:
            cp.stop()

    out(f"Measured {datetime.date.today()} on {describe()}.")
    out("Command: `task bench` (`python -m bench`).")
    out()
    out("| figure | p50 | p95 | baseline in the same run | ratio (p50) |")
    out("|---|---|---|---|---|")
    provisioning = (
        f"provisioning, `POST /api/v1/tenants` to gateway `/readyz` 200 "
        f"({args.tenants} tenants, one at a time)"
    )
    out(
        f"| {provisioning} | {ms(seq['p50'])} | {ms(seq['p95'])} "
        f"| bare gateway process start to `/readyz`: {ms(bare['p50'])} "
        f"| {seq['p50'] / bare['p50']:.2f}x |"
    )
    added = (via_gateway["p50"] - direct["p50"]) * 1000
    out(
        f"| chat completion through the gateway ({args.chats} sequential, non-streaming) "
        f"| {ms(via_gateway['p50'])} | {ms(via_gateway['p95'])} "
        f"| upstream stub called directly: {ms(direct['p50'])} | +{added:.2f} ms added |"
    )
    out()
    out("| figure | value |")
    out("|---|---|")
    out(f"| gateway RSS, idle after start | {rss_idle:.1f} MiB |")
    out(f"| gateway RSS after {args.chats} chat requests | {rss_after:.1f} MiB |")
    out(
        f"| {args.concurrent} tenants provisioned concurrently: wall time to all `running` "
        f"| {wall:.1f} s |"
    )
    out(f"| failures among them | {failures} |")

    out()
    out("Credential vault (in-process, no I/O):")
    out()
    for line in vault_bench.run():
        out(line)

    out()
    out("API authentication and authorization (in-process, SQLite):")
    out()
    for line in auth_bench.run():
        out(line)

    out()
    gateway_hot_path()
    out()
    request_path_pieces()
    out()
    operator_throughput()
    out()
    platform_bot_path()

    if args.write:
        RESULTS.write_text(
            "# Benchmark results\n\nLatest run of `task bench` "
            "(figures are medians/p95 of one run; goals from the issues: "
            "provisioning p50 < 1.0 s, idle gateway RSS < 60 MiB, "
            "zero failures provisioning 100 tenants at once).\n\n" + "\n".join(lines) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
