"""``python -m bench.operator``: how fast the Tenant operator brings a burst of Tenants to Ready.

Three processes on this machine, as in a cluster: kmock's Kubernetes API emulator
(``python -m tests.integration.operator.emulator``), the real operator (``tenantry operator
--standalone``: kopf, all namespaces, the ``kubernetes`` client, pointed at the emulator by a
kubeconfig), and this one, which plays the people and the kubelet with the same ``kubernetes``
client: it creates the Tenants from a pool of threads, patches every gateway Deployment's
status to one ready replica as soon as the Deployment appears, and watches the Tenants for
``Ready=True``.

Figures: the wall time from the first creation to the last Tenant Ready, and each Tenant's
latency from the moment its creation was sent to the first event showing it Ready
(p50/p95). Baselines, measured in the same run against the same emulator and operator:

- the emulator's own round trip: create and then read back as many plain Secrets (which
  the operator does not watch) with the same client and pool: the floor under anything the
  operator does per object;
- a small batch of Tenants through the whole path, for what one Tenant costs unloaded.

Goal (issue 5): 1,000 Tenants Ready in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from bench.machine import describe
from bench.stats import summary
from operators.tenant.spec import GROUP, PLURAL, VERSION, TenantSpec, tenant_resource
from tests.integration.operator.emulator import WATCHED, WATCHES_PATH

TENANTS = 1_000
SMALL_BATCH = 10
CLIENT_THREADS = 8
"""Threads creating Tenants (and the baseline's Secrets), and patching Deployment status."""
GOAL_S = 60.0
TIMEOUT_S = 300.0
READY = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}


def _wait(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Process:
    """A process the benchmark started, and where it can be reached or read."""

    pid: int
    url: str = ""
    log: Path | None = None

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def emulator() -> Iterator[Process]:
    """The Kubernetes API emulator as a process of its own."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.operator.emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    try:
        if not line.startswith("listening "):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield Process(process.pid, url=line.split(" ", 1)[1])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a watch someone left open holds it up
            process.kill()
            process.wait()


def _watched(url: str) -> bool:
    try:
        answer = httpx.get(url + WATCHES_PATH, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return set(answer["watched"]) >= WATCHED


@contextmanager
def operator(url: str, root: Path) -> Iterator[Process]:
    """``tenantry operator --standalone`` pointed at the emulator, as its own process, once it
    watches everything."""
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": url}}],
                "users": [{"name": "bench", "user": {}}],
                "contexts": [
                    {"name": "emulator", "context": {"cluster": "emulator", "user": "bench"}}
                ],
                "current-context": "emulator",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env["KUBECONFIG"] = str(kubeconfig)
    log = root / "operator.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli.main", "operator", "--standalone"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            _wait(
                lambda: process.poll() is not None or _watched(url),
                60,
                "the operator to watch Tenants and their children",
            )
            if process.poll() is not None:
                raise RuntimeError(f"the operator stopped at start:\n{log.read_text()[-4000:]}")
            yield Process(process.pid, log=log)
        finally:
            process.terminate()
            process.wait(timeout=60)


def tenant(name: str, namespace: str) -> dict[str, Any]:
    """A Tenant as the control plane would apply it."""
    spec = TenantSpec(
        tenant_id=f"bench-{name}",
        slug=name,
        plan="pro",
        image="registry.example/tenantry/tenant-gateway:1.0",
        bundle_secret_name=f"{name}-bundle",
        platform_models_url="http://vllm.fleet.svc:8000/v1",
    )
    return tenant_resource(name, namespace, spec)


def _is_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Bench:
    """The people and the kubelet of the emulated cluster."""

    def __init__(self, url: str) -> None:
        configuration = k8s.Configuration(host=url)
        configuration.connection_pool_maxsize = CLIENT_THREADS * 2
        self.api = k8s.ApiClient(configuration)
        self.custom: Any = k8s.CustomObjectsApi(self.api)
        self.core: Any = k8s.CoreV1Api(self.api)
        self.apps: Any = k8s.AppsV1Api(self.api)
        self.pool = ThreadPoolExecutor(CLIENT_THREADS, thread_name_prefix="bench-client")
        self.ready_at: dict[tuple[str, str], float] = {}
        self.ready_changed = threading.Condition()
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.watchers: list[k8s_watch.Watch] = []
        for target in (self._kubelet, self._observer):
            threading.Thread(target=self._guarded(target), daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        for watcher in self.watchers:
            watcher.stop()
        self.pool.shutdown(wait=True)

    # -- watching, in threads of their own -------------------------------------------------

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            try:
                target()
            except Exception as exc:
                self.errors.append(exc)

        return guarded

    def _events(self, list_function: Callable[..., Any], *args: Any) -> Iterator[dict[str, Any]]:
        """Watch events as plain dicts until the bench stops (reconnecting as clients do)."""
        while not self.stopping.is_set():
            watcher = k8s_watch.Watch()
            self.watchers.append(watcher)
            try:
                for event in watcher.stream(list_function, *args, deserialize=False):
                    if self.stopping.is_set():
                        return
                    yield event
            except Exception:  # the stream broke (e.g. the emulator stopped): reconnect
                if self.stopping.is_set():
                    return
                time.sleep(0.1)

    def _kubelet(self) -> None:
        """Report one ready pod for every gateway Deployment as soon as it appears."""
        seen: set[tuple[str, str]] = set()
        for event in self._events(self.apps.list_deployment_for_all_namespaces):
            meta = event["object"].get("metadata", {})
            key = (meta.get("namespace"), meta.get("name"))
            if event["type"] == "ADDED" and key not in seen:
                seen.add(key)
                self.pool.submit(self._pod_ready, *key)

    def _pod_ready(self, namespace: str, name: str) -> None:
        try:
            self.apps.patch_namespaced_deployment_status(
                name, namespace, {"status": READY}, _preload_content=False
            )
        except Exception as exc:
            self.errors.append(exc)

    def _observer(self) -> None:
        """Note when each Tenant first shows ``Ready=True``."""
        for event in self._events(self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL):
            now = time.perf_counter()
            obj = event["object"]
            meta = obj.get("metadata", {})
            key = (meta.get("namespace"), meta.get("name"))
            if key not in self.ready_at and _is_ready(obj):
                with self.ready_changed:
                    self.ready_at[key] = now
                    self.ready_changed.notify_all()

    # -- acting ----------------------------------------------------------------------------

    def tenants_to_ready(self, namespace: str, count: int) -> tuple[float, list[float]]:
        """Create ``count`` Tenants at once; the wall time until all are Ready, and each one's
        latency from its creation to Ready."""
        names = [f"t{n:05d}" for n in range(count)]
        sent_at: dict[str, float] = {}

        def create(name: str) -> None:
            sent_at[name] = time.perf_counter()
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, tenant(name, namespace), _preload_content=False
            )

        started = time.perf_counter()
        for future in [self.pool.submit(create, name) for name in names]:
            future.result()
        keys = [(namespace, name) for name in names]
        deadline = time.monotonic() + TIMEOUT_S
        with self.ready_changed:
            while not all(key in self.ready_at for key in keys):
                if self.errors:
                    raise RuntimeError(f"the kubelet or the observer failed: {self.errors[0]!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sum(key not in self.ready_at for key in keys)
                    raise RuntimeError(
                        f"{missing} of {count} Tenants not Ready after {TIMEOUT_S:g} s"
                    )
                self.ready_changed.wait(min(left, 1.0))
        wall = max(self.ready_at[key] for key in keys) - started
        return wall, [self.ready_at[(namespace, name)] - sent_at[name] for name in names]

    def round_trips(self, namespace: str, count: int) -> tuple[float, list[float]]:
        """Baseline: create a plain Secret and read it back, ``count`` times from the pool."""

        def round_trip(n: int) -> float:
            began = time.perf_counter()
            name = f"s{n:05d}"
            body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
            self.core.create_namespaced_secret(namespace, body, _preload_content=False)
            self.core.read_namespaced_secret(name, namespace, _preload_content=False)
            return time.perf_counter() - began

        started = time.perf_counter()
        samples = [
            future.result() for future in [self.pool.submit(round_trip, n) for n in range(count)]
        ]
        return time.perf_counter() - started, samples


def measure(count: int = TENANTS) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="tenantry-bench-operator-") as tmp,
        emulator() as api,
        operator(api.url, Path(tmp)) as tenantry,
    ):
        bench = Bench(api.url)
        try:
            return _measure(bench, count, api, tenantry)
        except RuntimeError as exc:
            assert tenantry.log is not None
            log = tenantry.log.read_text()[-4000:]
            raise RuntimeError(f"{exc}\noperator log:\n{log}") from None
        finally:
            bench.close()


def _measure(bench: Bench, count: int, api: Process, tenantry: Process) -> dict[str, Any]:
    emulator_wall, emulator_samples = bench.round_trips("baseline", count)
    small_wall, small_samples = bench.tenants_to_ready("small", SMALL_BATCH)
    before = (api.cpu_seconds(), tenantry.cpu_seconds(), own_cpu_seconds())
    wall, samples = bench.tenants_to_ready("burst", count)
    after = (api.cpu_seconds(), tenantry.cpu_seconds(), own_cpu_seconds())
    cpu = [later - earlier for earlier, later in zip(before, after, strict=True)]
    return {
        "count": count,
        "wall": wall,
        "latency": summary(samples),
        "emulator_wall": emulator_wall,
        "emulator": summary(emulator_samples),
        "small_wall": small_wall,
        "small": summary(small_samples),
        "cpu": {"emulator": cpu[0], "operator": cpu[1], "bench": cpu[2]},
    }


def ms(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def run(count: int = TENANTS) -> list[str]:
    """Measure; return the figures as markdown table lines."""
    load_before = os.getloadavg()[0]
    f = measure(count)
    load_after = os.getloadavg()[0]
    n, cpu, latency, small = f["count"], f["cpu"], f["latency"], f["small"]
    met = "met" if f["wall"] < GOAL_S else "NOT met"
    if n < TENANTS:
        met = f"not measured: {n:,} Tenants only"
    return [
        "| figure | value | baseline in the same run | ratio |",
        "|---|---|---|---|",
        f"| {n:,} Tenants created at once: wall time to the last `Ready=True` "
        f"| {f['wall']:.1f} s ({n / f['wall']:.0f} Tenants/s) "
        f"| emulator round trip, create + read of {n:,} Secrets: {f['emulator_wall']:.1f} s "
        f"| {f['wall'] / f['emulator_wall']:.1f}x |",
        f"| per-Tenant latency, creation sent to `Ready=True` ({n:,} at once) "
        f"| p50 {ms(latency['p50'])}, p95 {ms(latency['p95'])} "
        f"| {SMALL_BATCH} Tenants at once: p50 {ms(small['p50'])}, p95 {ms(small['p95'])} "
        f"| {latency['p50'] / small['p50']:.1f}x (p50) |",
        f"| CPU time per Tenant during the {n:,}: the operator "
        f"| {cpu['operator'] / n * 1000:.1f} ms "
        f"| the emulator: {cpu['emulator'] / n * 1000:.1f} ms; kubelet and watchers: "
        f"{cpu['bench'] / n * 1000:.1f} ms | {cpu['operator'] / cpu['emulator']:.1f}x |",
        f"| emulator round trip per Secret ({CLIENT_THREADS} client threads) "
        f"| p50 {ms(f['emulator']['p50'])}, p95 {ms(f['emulator']['p95'])} | | |",
        f"| machine load average (1 min), before / after "
        f"| {load_before:.1f} / {load_after:.1f} | | |",
        f"| goal: {TENANTS:,} Tenants Ready in < {GOAL_S:.0f} s | {met} | | |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operator")
    parser.add_argument("--tenants", type=int, default=TENANTS, help="Tenants in the burst")
    args = parser.parse_args()
    print(f"Measured on {describe()}.")
    print()
    for line in run(args.tenants):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
