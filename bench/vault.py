"""``python -m bench.vault``: what envelope decryption costs, per credential and at gateway start.

A gateway that uses its tenant's credentials first unwraps the tenant's data key (DEK) and
then opens each sealed credential with it. Two figures:

- throughput: unwrap a DEK and open one credential, as many times as possible (median of
  runs), in credentials per second;
- start-up: unwrap a DEK and open ten credentials, timed one trial at a time (p50/p95);
  this is the start-up time unsealing adds to a gateway (goal: under 20 ms).

Baseline, measured in the same run: a plain SHA-256 over the same bytes (the wrapped DEK and
the sealed credentials), so the ratio says what AES-GCM and the format checks add on top of
merely reading the bytes once.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable

from bench.machine import describe
from bench.stats import summary
from control_plane.vault.keyring import KekRing, new_dek
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


def run() -> list[str]:
    """Measure both figures and their baselines; return them as markdown table lines."""
    ring = KekRing.generate("bench")
    dek = new_dek()
    wrapped = ring.wrap_dek(dek, tenant_id=TENANT, dek_version=DEK_VERSION)
    one = _credentials(dek, 1)
    ten = _credentials(dek, CREDENTIALS_AT_START)

    rate = _per_second(_unsealer(ring, wrapped, one))
    rate_baseline = _per_second(_hasher(wrapped, one))
    start = _trial_microseconds(_unsealer(ring, wrapped, ten))
    start_baseline = _trial_microseconds(_hasher(wrapped, ten))

    met = "met" if start["p95"] / 1000 < GOAL_MS else "NOT met"
    return [
        "| figure | median / p50 | p95 | baseline in the same run: SHA-256 of the same bytes "
        "| ratio (median / p50) |",
        "|---|---|---|---|---|",
        f"| vault: unwrap DEK + open 1 credential ({len(PLAINTEXT)}-byte plaintext; "
        f"N={OPERATIONS:,}, median of {RUNS} runs) | {rate:,.0f} credentials/s | n/a "
        f"| {rate_baseline:,.0f}/s | {rate_baseline / rate:.1f}x slower |",
        f"| vault: start-up unsealing, unwrap DEK + open {CREDENTIALS_AT_START} credentials "
        f"({TRIALS:,} trials) | {start['p50']:.0f} µs | {start['p95']:.0f} µs "
        f"| p50 {start_baseline['p50']:.1f} µs, p95 {start_baseline['p95']:.1f} µs "
        f"| {start['p50'] / start_baseline['p50']:.1f}x |",
        f"| vault: goal, start-up unsealing p95 < {GOAL_MS:.0f} ms "
        f"| {met} ({start['p95'] / 1000:.3f} ms) | | | |",
    ]


def main() -> int:
    print(f"Measured on {describe()}.")
    print()
    for line in run():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
