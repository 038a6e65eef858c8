"""``python -m bench.vault``: what envelope decryption costs, per credential and at gateway start.

A gateway that uses its tenant's credentials first has the control plane unwrap the tenant's
data key (DEK) and then opens each sealed credential with it. Three figures:

- throughput: unwrap a DEK and open one credential, as many times as possible (median of
  runs), in credentials per second;
- in-process unsealing: unwrap a DEK and open ten credentials, timed one trial at a time
  (p50/p95): the cryptography alone;
- gateway start with credentials: real ``tenant_gateway`` processes started to ``/readyz``
  200, with a bundle holding a tenant's four credentials (so the start includes the unseal
  round trip to a real ``tenantry up`` control plane on SQLite, and opening them) and, in
  alternation, with the same bundle without credentials. The figure is the difference of
  each pair (p50/p95): the start-up time unsealing adds to a gateway (goal: under 20 ms).
  Process starts vary by far more than that on a busy machine, so the same gateways also
  report how long their unsealing took by their own clock (their log line ``unsealed N
  credential(s) in X ms``), which that noise touches much less.

Baselines, measured in the same run: a plain SHA-256 over the same bytes (the wrapped DEK and
the sealed credentials), so the ratio says what AES-GCM and the format checks add on top of
merely reading the bytes once; and the gateway start without credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import msgspec

from bench.machine import describe
from bench.stats import summary
from control_plane.vault.keyring import KekRing, new_dek
from tenant_gateway.contract import (
    BUNDLE_FILE,
    IDENTITY_FILE,
    LOG_FILE,
    STATE_FILE,
    GatewayBundle,
)
from tenant_gateway.sealed import open_credential, seal_credential

OPERATIONS = 20_000
RUNS = 5
TRIALS = 1_000
CREDENTIALS_AT_START = 10
GOAL_MS = 20.0
TENANT = "01JBENCHTENANT0000000000000"
DEK_VERSION = 1
# About the size of a real credential: a provider API key in its JSON field document.
PLAINTEXT = b'{"api_key": "sk-proj-' + b"x" * 156 + b'"}'

START_PAIRS = 20
"""Gateway starts with and without credentials, alternating (after one warm-up pair)."""
START_CREDENTIALS: dict[str, dict[str, str]] = {
    "openai": {"api_key": "sk-bench-openai-" + "x" * 40},
    "anthropic": {"api_key": "sk-ant-bench-" + "x" * 40},
    "openai_compatible": {"api_key": "bench-" + "x" * 40, "base_url": "http://127.0.0.1:9/v1"},
    "telegram_bot": {"token": "123456789:AA" + "x" * 33},
}
"""One credential of every provider (stored without validation; never used for a call)."""

_UNSEALED = re.compile(r"unsealed \d+ credential\(s\) in ([0-9.]+) ms")
"""The gateway's log line saying how long its unsealing took."""

Sealed = tuple[str, int, bytes]


def _credentials(dek: bytes, count: int) -> list[Sealed]:
    return [
        (
            f"cred-{n:04d}",
            1,
            seal_credential(
                dek, PLAINTEXT, tenant_id=TENANT, credential_id=f"cred-{n:04d}", version=1
            ),
        )
        for n in range(count)
    ]


def _unsealer(ring: KekRing, wrapped: bytes, sealed: list[Sealed]) -> Callable[[], None]:
    """Unwrap the DEK and open every credential in ``sealed``, checking each plaintext."""

    def unseal() -> None:
        dek = ring.unwrap_dek(wrapped, tenant_id=TENANT, dek_version=DEK_VERSION)
        for credential_id, version, data in sealed:
            plaintext = open_credential(
                dek, data, tenant_id=TENANT, credential_id=credential_id, version=version
            )
            if plaintext != PLAINTEXT:
                raise RuntimeError("a credential opened to the wrong plaintext")

    return unseal


def _hasher(wrapped: bytes, sealed: list[Sealed]) -> Callable[[], None]:
    """The baseline: one SHA-256 over each of the same byte strings."""
    pieces = [wrapped, *(data for _, _, data in sealed)]

    def digest() -> None:
        for piece in pieces:
            hashlib.sha256(piece).digest()

    return digest


def _per_second(operation: Callable[[], None]) -> float:
    """Median over ``RUNS`` runs of ``OPERATIONS`` calls, in calls per second."""
    rates = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(OPERATIONS):
            operation()
        rates.append(OPERATIONS / (time.perf_counter() - started))
    return statistics.median(rates)


def _trial_microseconds(operation: Callable[[], None]) -> dict[str, float]:
    samples = []
    for _ in range(TRIALS):
        started = time.perf_counter_ns()
        operation()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return summary(samples)


# -- gateway start, real processes ------------------------------------------------------------


@contextmanager
def _control_plane(root: Path) -> Iterator[tuple[Path, httpx.Client]]:
    """A ``tenantry up`` (SQLite, local runtime) under ``root``: its data dir and an admin
    client."""
    data_dir = root / "control-plane"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env["TENANTRY_LOG_LEVEL"] = "warning"
    command = [sys.executable, "-m", "control_plane.cli.main", "up", "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    try:
        info = _wait(lambda: _json_file(data_dir / "control-plane.json"), "control plane")
        token = (data_dir / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=info["url"], headers=headers, timeout=30) as client:
            yield data_dir, client
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _wait(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.001)
    return value


def _readiness(client: httpx.Client, url: str) -> dict[str, Any] | None:
    try:
        ready = client.get(f"{url}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    return ready.json() if ready.status_code == 200 else None


def _sealed_tenant(data_dir: Path, client: httpx.Client) -> tuple[GatewayBundle, str]:
    """A tenant holding one credential of every provider: its bundle and identity token, as
    the control plane handed them to the tenant's own gateway (which has unsealed them)."""
    tenant = client.post("/api/v1/tenants", json={"slug": "bench-sealed"}).json()
    for provider, fields in START_CREDENTIALS.items():
        stored = client.put(f"/api/v1/tenants/{tenant['id']}/credentials/{provider}", json=fields)
        stored.raise_for_status()

    def unsealed() -> bool:
        current = client.get(f"/api/v1/tenants/{tenant['id']}").json()
        if current["state"] == "failed":
            raise RuntimeError(current["reason"])
        ready = current["endpoint"] and _readiness(client, current["endpoint"])
        return bool(ready and ready["credentials"] == sorted(START_CREDENTIALS))

    _wait(unsealed, "the tenant's gateway to unseal")
    runtime_dir = data_dir / "gateways" / tenant["id"]
    bundle = msgspec.json.decode((runtime_dir / BUNDLE_FILE).read_bytes(), type=GatewayBundle)
    return bundle, (runtime_dir / IDENTITY_FILE).read_text()


class GatewayStart(NamedTuple):
    to_ready_ms: float
    """From spawning the process to its ``/readyz`` 200."""
    unseal_ms: float | None
    """How long its unsealing took by its own clock (from its log), if it unsealed."""


def _gateway_start(
    root: Path, bundle: GatewayBundle, identity: str, client: httpx.Client
) -> GatewayStart:
    """Spawn ``tenant_gateway`` on ``bundle`` and time it to its ``/readyz`` 200."""
    runtime_dir = Path(tempfile.mkdtemp(dir=root, prefix="gateway-"))
    (runtime_dir / BUNDLE_FILE).write_bytes(msgspec.json.encode(bundle))
    (runtime_dir / IDENTITY_FILE).write_text(identity)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env["TENANTRY_GATEWAY_LOG_LEVEL"] = "info"
    command = [sys.executable, "-m", "tenant_gateway", "--runtime-dir", str(runtime_dir)]
    with (runtime_dir / LOG_FILE).open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--data-dir", str(runtime_dir / "data")], stdout=log, stderr=log, env=env
        )
    try:
        state = _wait(lambda: _json_file(runtime_dir / STATE_FILE), "gateway state.json", 30)
        ready = _wait(
            lambda: _readiness(client, f"http://{state['host']}:{state['port']}"), "gateway"
        )
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=10)
    if ready["credentials"] != sorted(c.provider for c in bundle.credentials):
        raise RuntimeError(f"the gateway did not unseal its credentials: {ready}")
    return GatewayStart(elapsed * 1000, _unseal_ms((runtime_dir / LOG_FILE).read_bytes()))


def _unseal_ms(log: bytes) -> float | None:
    for line in log.splitlines():
        try:
            message = json.loads(line)["msg"]
        except (ValueError, KeyError, TypeError):
            continue
        if found := _UNSEALED.fullmatch(message):
            return float(found.group(1))
    return None


def gateway_starts(pairs: int = START_PAIRS) -> dict[str, dict[str, float]]:
    """Milliseconds to ``/readyz`` with and without credentials, alternating, the difference
    of each pair, and the unsealing as the gateways timed it."""
    with (
        tempfile.TemporaryDirectory(prefix="tenantry-bench-vault-") as tmp,
        _control_plane(Path(tmp)) as (data_dir, client),
    ):
        sealed, identity = _sealed_tenant(data_dir, client)
        bare = msgspec.structs.replace(sealed, credentials=[])
        with_credentials, without, added, unsealing = [], [], [], []
        for n in range(pairs + 1):
            pair = (
                _gateway_start(Path(tmp), sealed, identity, client),
                _gateway_start(Path(tmp), bare, identity, client),
            )
            if n == 0:
                continue  # warm-up: file caches, bytecode
            if pair[0].unseal_ms is None or pair[1].unseal_ms is not None:
                raise RuntimeError("only the gateway with credentials reports unsealing")
            with_credentials.append(pair[0].to_ready_ms)
            without.append(pair[1].to_ready_ms)
            added.append(pair[0].to_ready_ms - pair[1].to_ready_ms)
            unsealing.append(pair[0].unseal_ms)
    return {
        "with": summary(with_credentials),
        "without": summary(without),
        "added": summary(added),
        "unsealing": summary(unsealing),
    }


def _start_lines(starts: dict[str, dict[str, float]], pairs: int) -> list[str]:
    added, with_credentials, without = starts["added"], starts["with"], starts["without"]
    unsealing = starts["unsealing"]

    def verdict(figure: dict[str, float]) -> str:
        return f"{'met' if figure['p95'] < GOAL_MS else 'NOT met'} ({figure['p95']:.1f} ms)"

    return [
        "| figure | p50 | p95 | baseline in the same run: the same start without credentials "
        "| added (paired difference, p50 / p95) |",
        "|---|---|---|---|---|",
        f"| gateway process start to `/readyz` with {len(START_CREDENTIALS)} credentials "
        f"(unseal round trip to `tenantry up` on SQLite, then opening them; {pairs} "
        f"alternating pairs) | {with_credentials['p50']:.0f} ms | {with_credentials['p95']:.0f} ms "
        f"| p50 {without['p50']:.0f} ms, p95 {without['p95']:.0f} ms "
        f"| {added['p50']:+.1f} ms / {added['p95']:+.1f} ms |",
        f"| the same gateways' unsealing by their own clock (AEAD library import, round trip, "
        f"opening) | {unsealing['p50']:.1f} ms | {unsealing['p95']:.1f} ms | | |",
        f"| vault: goal, start-up cost of unsealing p95 < {GOAL_MS:.0f} ms "
        f"| paired difference: {verdict(added)}; gateway's clock: {verdict(unsealing)} | | | |",
        f"| load average (1 min) when the starts ended | {os.getloadavg()[0]:.2f} | | | |",
    ]


def run() -> list[str]:
    """Measure every figure and its baseline; return them as markdown table lines."""
    ring = KekRing.generate("bench")
    dek = new_dek()
    wrapped = ring.wrap_dek(dek, tenant_id=TENANT, dek_version=DEK_VERSION)
    one = _credentials(dek, 1)
    ten = _credentials(dek, CREDENTIALS_AT_START)

    rate = _per_second(_unsealer(ring, wrapped, one))
    rate_baseline = _per_second(_hasher(wrapped, one))
    start = _trial_microseconds(_unsealer(ring, wrapped, ten))
    start_baseline = _trial_microseconds(_hasher(wrapped, ten))

    starts = gateway_starts(START_PAIRS)
    return [
        "| figure | median / p50 | p95 | baseline in the same run: SHA-256 of the same bytes "
        "| ratio (median / p50) |",
        "|---|---|---|---|---|",
        f"| vault: unwrap DEK + open 1 credential ({len(PLAINTEXT)}-byte plaintext; "
        f"N={OPERATIONS:,}, median of {RUNS} runs) | {rate:,.0f} credentials/s | n/a "
        f"| {rate_baseline:,.0f}/s | {rate_baseline / rate:.1f}x slower |",
        f"| vault: in-process unsealing, unwrap DEK + open {CREDENTIALS_AT_START} credentials "
        f"({TRIALS:,} trials) | {start['p50']:.0f} µs | {start['p95']:.0f} µs "
        f"| p50 {start_baseline['p50']:.1f} µs, p95 {start_baseline['p95']:.1f} µs "
        f"| {start['p50'] / start_baseline['p50']:.1f}x |",
        "",
        "Gateway start with credentials (real processes over loopback):",
        "",
        *_start_lines(starts, START_PAIRS),
    ]


def main() -> int:
    print(f"Measured on {describe()}.")
    print()
    for line in run():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
