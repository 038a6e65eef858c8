"""Gateway-added latency and throughput per core, against the upstream alone and LiteLLM.

One run measures, on the same load and the same pinned cores:

* the fast upstream double (:mod:`bench.fast_upstream`) called directly: the floor;
* the real gateway process (``python -m tenant_gateway``) in front of it, once per upstream
  HTTP client (``TENANTRY_GATEWAY_UPSTREAM_CLIENT=httpx`` and ``aiohttp``);
* LiteLLM's proxy in front of it, from a virtual environment of its own (bench only, never
  a dependency of the project), configured as ``BENCHMARKS.md`` in the shared notes says.

The proxy under test runs alone on CPU 0 (``taskset -c 0``); the upstream and the load
generators share CPU 1. Each target gets, non-streaming and streaming, a fixed rate from the
open-loop generator (:mod:`bench.load`; latency p50/p99 and the proxy's CPU time per
request) and a saturation run from ``wrk`` (16 connections; requests per second on one
core). Rounds go through every target in turn and are repeated, so a neighbour's load on
this shared machine falls on all of them alike; figures are medians of the rounds with
their spread (min-max).

``python -m bench --only gateway-latency [--rate 500 --duration 30 --rounds 3]``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.processes import wait
from bench.stats import rss_mib
from tenant_gateway.contract import (
    GatewayBundle,
    GatewayKeyDigest,
    GatewayState,
    digest_gateway_key,
)

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / ".data" / "bench" / "litellm-venv"
"""Where the benchmark keeps LiteLLM (``/.data/`` is ignored by git)."""
PROXY_CPU = "0"
LOAD_CPU = "1"
MESSAGES = [{"role": "user", "content": "hello"}]
BODIES = {
    "non-streaming": json.dumps({"model": "stub-model", "messages": MESSAGES}),
    "streaming": json.dumps({"model": "stub-model", "messages": MESSAGES, "stream": True}),
}
CLIENTS = ("httpx", "aiohttp")

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _answers(url: str, body: str, key: str | None) -> bool:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    try:
        return httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants that are still alive."""
    total = 0.0
    pending = [pid]
    ticks = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending += [int(c) for c in children]
        except (OSError, ValueError, IndexError):
            continue
    return total


@dataclass
class Target:
    name: str
    url: str
    """The chat completions URL."""
    key: str | None = None
    pid: int | None = None
    """The process whose CPU time is counted (None: not counted)."""
    first_answer: float | None = None
    """Seconds the first chat completion after ``/readyz`` took (clients made on first use)."""
    rss_ready: float | None = None
    """MiB resident when ready, before any chat completion."""
    rss_after: float | None = None
    """MiB resident after every round."""


@contextmanager
def _process(
    argv: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    output = log.open("w") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE if log is None else output, stderr=output, text=True
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if log is not None and not isinstance(output, int):
            output.close()


@contextmanager
def upstream() -> Iterator[Target]:
    argv = ["taskset", "-c", LOAD_CPU, sys.executable, "-m", "bench.fast_upstream"]
    with _process(argv) as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"the upstream double did not start: {line!r}")
        base = line.split(" ", 1)[1]
        yield Target("upstream alone", f"{base}/chat/completions", pid=process.pid)


def log_of(runtime_dir: Path) -> str:
    return (runtime_dir / "gateway.log").read_text()[-2000:]


@contextmanager
def gateway(root: Path, upstream_base: str, client: str) -> Iterator[Target]:
    """The real gateway process, with one gateway key, in front of ``upstream_base``."""
    runtime_dir = root / f"gateway-{client}"
    runtime_dir.mkdir(parents=True)
    key = "tgk_" + secrets.token_urlsafe(32)
    digest_key = secrets.token_bytes(32)
    bundle = GatewayBundle(
        tenant_id=f"bench-{client}",
        tenant_slug=f"bench-{client}",
        keys=[GatewayKeyDigest(id="k1", digest=digest_gateway_key(key, digest_key))],
        key_digest_key=base64.b64encode(digest_key).decode(),
        platform_models_url=upstream_base,
    )
    (runtime_dir / "bundle.json").write_bytes(msgspec.json.encode(bundle))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env["TENANTRY_GATEWAY_UPSTREAM_CLIENT"] = client
    argv = [
        "taskset", "-c", PROXY_CPU, sys.executable, "-m", "tenant_gateway",
        "--runtime-dir", str(runtime_dir), "--data-dir", str(runtime_dir / "data"),
    ]  # fmt: skip
    with _process(argv, env, log=runtime_dir / "gateway.log") as process:

        def state() -> GatewayState | None:
            try:
                return msgspec.json.decode(
                    (runtime_dir / "state.json").read_bytes(), type=GatewayState
                )
            except (OSError, msgspec.DecodeError):
                if process.poll() is not None:
                    raise RuntimeError(f"the gateway exited: {log_of(runtime_dir)}") from None
                return None

        port = wait(state, 60, "the gateway", interval=0.05).port
        target = Target(
            f"gateway ({client})", f"http://127.0.0.1:{port}/v1/chat/completions", key, process.pid
        )
        url = f"http://127.0.0.1:{port}/readyz"
        wait(lambda: httpx.get(url, timeout=5).status_code == 200, 30, "/readyz", 0.05)
        target.rss_ready = rss_mib(process.pid)
        started = time.perf_counter()
        if not _answers(target.url, BODIES["non-streaming"], key):
            raise RuntimeError(f"the gateway's first answer failed: {log_of(runtime_dir)}")
        target.first_answer = time.perf_counter() - started
        yield target


def ensure_litellm(venv: Path) -> Path | str:
    """LiteLLM's ``litellm`` command in ``venv``, installed from PyPI if need be; or why not."""
    command = venv / "bin" / "litellm"
    if command.exists():
        return command
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.CalledProcessError as exc:
        return f"pip install 'litellm[proxy]' failed: {(exc.stderr or '').strip()[-500:]}"
    except subprocess.TimeoutExpired:
        return "pip install 'litellm[proxy]' took longer than 30 minutes"
    return command if command.exists() else "the litellm package installed no `litellm` command"


def litellm_version(venv: Path) -> str:
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "?"


@contextmanager
def litellm(root: Path, command: Path, upstream_base: str) -> Iterator[Target]:
    config = root / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: stub-model\n"
        "    litellm_params:\n"
        "      model: openai/stub-model\n"
        f"      api_base: {upstream_base}\n"
        "      api_key: sk-x\n"
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENANTRY_", "LITELLM_"))}
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true",
    )
    argv = [
        "taskset", "-c", PROXY_CPU, str(command), "--config", str(config),
        "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1",
    ]  # fmt: skip
    log = root / "litellm.log"
    with _process(argv, env, log=log) as process:
        target = Target(
            "LiteLLM proxy", f"http://127.0.0.1:{port}/v1/chat/completions", None, process.pid
        )

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"LiteLLM exited: {log.read_text()[-2000:]}")
            return _answers(target.url, BODIES["non-streaming"], None)

        wait(up, 180, "LiteLLM's proxy", interval=0.05)
        yield target


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fixed_rate(
    target: Target, body: str, rate: float, duration: float, warmup: float
) -> dict[str, Any]:
    argv = [
        "taskset", "-c", LOAD_CPU, sys.executable, "-m", "bench.load", "--url", target.url,
        "--rate", str(rate), "--duration", str(duration), "--warmup", str(warmup), "--body", body,
    ]  # fmt: skip
    if target.key:
        argv += ["--key", target.key]
    # The generator's warm-up is not measured, so neither is the proxy's CPU time in it.
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(warmup)
    before = cpu_seconds(target.pid) if target.pid else 0.0
    started = time.perf_counter()
    out, _ = process.communicate(timeout=duration + warmup + 120)
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = json.loads(out)
    if target.pid:
        spent = cpu_seconds(target.pid) - before
        result["cpu_per_request"] = spent / result["ok"] if result["ok"] else None
        result["cpu_share"] = spent / elapsed
    return result


def settle(target: Target, limit: float = 120.0) -> None:
    """Wait until ``target`` is idle again: an overloaded proxy may still be working off
    requests the generator gave up on, which the next measurement must not pay for."""
    if not target.pid:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(target.pid)
        time.sleep(0.5)
        if cpu_seconds(target.pid) - before < 0.05:
            return


def saturation(
    target: Target, body: str, seconds: float, script: Path, connections: int = 16
) -> dict[str, float]:
    env = {**os.environ, "BENCH_BODY": body, "BENCH_KEY": target.key or ""}
    argv = [
        "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
        "--timeout", "10s", "-s", str(script), target.url,
    ]  # fmt: skip
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    requests, duration_us, socket_errors, bad_status, p50_us, p99_us = map(int, line.split()[1:])
    return {
        "rate": (requests - bad_status) / (duration_us / 1e6),
        "errors": float(socket_errors + bad_status),
        "p50": p50_us / 1e6,
        "p99": p99_us / 1e6,
    }


@dataclass
class Samples:
    """One target in one mode, over the rounds."""

    fixed: list[dict[str, Any]] = field(default_factory=list)
    saturated: list[dict[str, float]] = field(default_factory=list)

    def fixed_figure(self, *path: str) -> list[float]:
        values = []
        for result in self.fixed:
            value: Any = result
            for part in path:
                value = value[part]
            values.append(float(value))
        return values

    def saturated_figure(self, name: str) -> list[float]:
        return [s[name] for s in self.saturated]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], scale: float = 1000, digits: int = 2) -> str:
    """``median [min-max]`` (ms by default)."""
    if not values:
        return "n/a"
    m, lo, hi = med(values) * scale, min(values) * scale, max(values) * scale
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


@dataclass
class Options:
    rate: float = 500.0
    duration: float = 30.0
    warmup: float = 3.0
    saturation_seconds: float = 10.0
    rounds: int = 3
    litellm: bool = True
    fixed_rate: bool = True
    """False: saturation runs only."""
    clients: tuple[str, ...] = CLIENTS


def measure(options: Options, out: Any) -> tuple[dict[str, dict[str, Samples]], list[Target]]:
    """Every round, every target, both modes; ``out`` is told progress lines."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    results: dict[str, dict[str, Samples]] = {}
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-latency-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        script = root / "post.lua"
        script.write_text(WRK_SCRIPT)
        direct = stack.enter_context(upstream())
        base = direct.url.removesuffix("/chat/completions")
        targets = [direct]
        for client in options.clients:
            targets.append(stack.enter_context(gateway(root, base, client)))
        if options.litellm:
            command = ensure_litellm(LITELLM_VENV)
            if isinstance(command, str):
                out(f"LiteLLM left out: {command}")
            else:
                target = stack.enter_context(litellm(root, command, base))
                target.name = f"LiteLLM {litellm_version(LITELLM_VENV)} proxy"
                targets.append(target)
        for n in range(options.rounds):
            for mode, body in BODIES.items():
                for target in targets:
                    samples = results.setdefault(target.name, {}).setdefault(mode, Samples())
                    progress = f"round {n + 1} {mode:>13} {target.name:>24}: "
                    if options.fixed_rate:
                        fixed = fixed_rate(
                            target, body, options.rate, options.duration, options.warmup
                        )
                        samples.fixed.append(fixed)
                        settle(target)
                        progress += (
                            f"{options.rate:g}/s p50 {fixed['latency']['p50'] * 1000:.2f} ms "
                            f"p99 {fixed['latency']['p99'] * 1000:.2f} ms ok {fixed['ok']} "
                            f"errors {fixed['errors'] + fixed['unfinished']} "
                            f"drain {fixed['drain']:.2f} s; "
                        )
                    sat = saturation(target, body, options.saturation_seconds, script)
                    samples.saturated.append(sat)
                    settle(target)
                    out(f"{progress}saturated {sat['rate']:.0f}/s p99 {sat['p99'] * 1000:.1f} ms")
        for target in targets:
            if target.pid:
                target.rss_after = rss_mib(target.pid)
    return results, targets


def report(
    results: dict[str, dict[str, Samples]], targets: list[Target], options: Options
) -> list[str]:
    lines = [
        "",
        "| gateway | RSS at /readyz (MiB) | first chat completion after /readyz "
        "| RSS after the rounds (MiB) |",
        "|---|---|---|---|",
    ]
    for target in targets:
        if target.first_answer is not None:
            lines.append(
                f"| {target.name} | {target.rss_ready:.1f} | {target.first_answer * 1000:.0f} ms "
                f"| {target.rss_after:.1f} |"
            )
    rate = f"{options.rate:g}/s"
    names = list(results)
    direct = names[0]
    litellm_name = next((n for n in names if n.startswith("LiteLLM")), None)
    for mode in BODIES:
        if options.fixed_rate:
            lines += [
                "",
                f"{mode.capitalize()}: {rate} for {options.duration:g} s (open loop), then "
                f"saturation ({options.saturation_seconds:g} s, wrk, 16 connections); medians "
                f"[min-max] of the rounds that held {rate} (99% answered 200, the last within "
                "1 s of the last request):",
                "",
                f"| target | rounds that held {rate} | p50 (ms) | p99 (ms) "
                "| added p50 over direct (ms) | added p99 (ms) | CPU per request (ms) "
                f"| answered 200 at {rate} | saturated req/s on one core "
                "| saturated p50 / p99 (ms) |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
        else:
            lines += [
                "",
                f"{mode.capitalize()}: saturation only ({options.saturation_seconds:g} s, wrk, "
                f"16 connections); medians [min-max] of {options.rounds} rounds:",
                "",
                "| target | saturated req/s on one core | saturated p50 / p99 (ms) |",
                "|---|---|---|",
            ]
        base = results[direct][mode]
        for name in names:
            lines.append(_row(name, results[name][mode], base, is_direct=name == direct))
        if litellm_name is not None:
            lines += _versus(results, names, litellm_name, mode)
    return lines


def _held(result: dict[str, Any]) -> bool:
    """Whether the target kept up: 99% answered 200, the last within a second of the last
    request sent (a queue that grew through the run takes longer to drain)."""
    return bool(result["ok"] >= 0.99 * result["sent"] and result.get("drain", 0.0) < 1.0)


def _row(name: str, s: Samples, base: Samples, *, is_direct: bool) -> str:
    held = [(mine, theirs) for mine, theirs in zip(s.fixed, base.fixed, strict=True) if _held(mine)]
    p50 = [m["latency"]["p50"] for m, _ in held]
    p99 = [m["latency"]["p99"] for m, _ in held]
    added50 = [m["latency"]["p50"] - b["latency"]["p50"] for m, b in held]
    added99 = [m["latency"]["p99"] - b["latency"]["p99"] for m, b in held]
    cpu = [m["cpu_per_request"] for m, _ in held if m.get("cpu_per_request") is not None]
    answered = sum(r["ok"] for r in s.fixed) / max(1, sum(r["sent"] for r in s.fixed))
    sat_ok = [r for r in s.saturated if r["rate"] > 0]
    saturated = "n/a"
    if sat_ok:
        p50_sat, p99_sat = med([r["p50"] for r in sat_ok]), med([r["p99"] for r in sat_ok])
        saturated = f"{p50_sat * 1000:.1f} / {p99_sat * 1000:.1f}"
    failures = sum(int(r["errors"]) for r in s.saturated)
    throughput = (
        f"{spread(s.saturated_figure('rate'), scale=1, digits=0)}"
        f"{f' ({failures} failed)' if failures else ''}"
    )
    if not s.fixed:
        return f"| {name} | {throughput} | {saturated} |"
    return (
        f"| {name} | {len(held)} of {len(s.fixed)} | {spread(p50)} | {spread(p99)} "
        f"| {'—' if is_direct else spread(added50)} | {'—' if is_direct else spread(added99)} "
        f"| {'n/a (shares CPU 1)' if is_direct else spread(cpu, digits=3)} "
        f"| {answered:.1%} | {throughput} | {saturated} |"
    )


def _versus(
    results: dict[str, dict[str, Samples]], names: list[str], litellm_name: str, mode: str
) -> list[str]:
    lines = []
    theirs = med(results[litellm_name][mode].saturated_figure("rate"))
    their_p99 = med(results[litellm_name][mode].saturated_figure("p99"))
    if not theirs:
        return [f"\nLiteLLM answered nothing at saturation ({mode}); no ratio."]
    for name in names[1:]:
        if name == litellm_name:
            continue
        ours = results[name][mode].saturated_figure("rate")
        p99 = med(results[name][mode].saturated_figure("p99"))
        rounds = ", ".join(f"{r / theirs:.1f}x" for r in ours)
        lines.append(
            f"\n{name} / LiteLLM, {mode}: {med(ours) / theirs:.1f}x the requests per second "
            f"on one core (rounds: {rounds}); saturated p99 {p99 * 1000:.1f} ms vs "
            f"{their_p99 * 1000:.1f} ms."
        )
    return lines


RAW = ROOT / ".data" / "bench" / "gateway-latency.json"
"""Every round's figures of the last run, for a closer look."""


def run(options: Options, out: Any) -> list[str]:
    results, targets = measure(options, out)
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps({n: {m: vars(s) for m, s in r.items()} for n, r in results.items()}))
    return report(results, targets, options)
