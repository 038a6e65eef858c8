"""Sealed delivery end to end, on SQLite and PostgreSQL: two tenants' credentials (OpenAI,
Anthropic, an OpenAI-compatible server whose key has no recognisable shape, Telegram bots)
reach their own gateway's memory and nowhere else, through provisioning, chat, KEK and DEK
rotation, suspension, resumption and deletion.

Every HTTP answer the test receives (bodies and headers, status polls and readiness probes
included), every line the control plane, the gateways and the vault commands write, every
file of the installation (gateway runtime dirs, volumes and logs before deletion removes
them, and again after) and every row of the database are searched for the planted values:
zero hits. The gateways' memory is searched too, as the control: each holds its own
tenant's values, and not the other tenant's.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.runtime.local.processes import pid_alive, read_state
from tests import services
from tests.doubles.provider_apis import ProviderAPIs, provider_apis
from tests.e2e.conftest import ControlPlaneProcess
from tests.e2e.secret_scan import SecretScan, dump_postgres, process_memory
from tests.environment import without_settings
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

SUSPENDED_PROBLEM = "https://tenantry.dev/problems/tenant-suspended"
ALPHA_BOT = "1111111111:AAalphaPlantedTelegramToken_abcdefghij"
BETA_BOT = "2222222222:AAbetaPlantedTelegramToken_klmnopqrstu"
PLANTED: dict[str, dict[str, dict[str, str]]] = {
    "alpha": {
        "openai": {"api_key": "sk-proj-alphaPlantedOpenAIkey0000000001"},
        "openai_compatible": {"api_key": "Zq4mW8rT2yU6iO0pA3sD7fG1hJ5kL9xC"},  # no shape
        "telegram_bot": {"token": ALPHA_BOT},
    },
    "beta": {
        "anthropic": {"api_key": "sk-ant-api03-betaPlantedAnthropicKey-000000002"},
        "openai_compatible": {"api_key": "Vb7nM3qW9eR5tY1uI8oP4aS6dF2gH0jK"},  # no shape
        "telegram_bot": {"token": BETA_BOT},
    },
}


def secrets_of(slug: str) -> dict[str, str]:
    """The tenant's planted values by label, a bot token's secret part on its own too."""
    found = {
        f"{slug}/{provider}/{name}": value
        for provider, fields in PLANTED[slug].items()
        for name, value in fields.items()
    }
    for label, value in list(found.items()):
        if label.endswith("telegram_bot/token"):
            found[f"{label} (after the colon)"] = value.split(":", 1)[1]
    return found


ALL_SECRETS = {**secrets_of("alpha"), **secrets_of("beta")}


@dataclass
class Backend:
    """Where the control plane keeps its data, and how to read all of it back."""

    env: dict[str, str]
    dump: Callable[[Path], bytes]
    """Every row of every table (given the data dir)."""


def _dump_sqlite(data_dir: Path) -> bytes:
    with sqlite3.connect(data_dir / "tenantry.db") as connection:
        return "\n".join(connection.iterdump()).encode()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "sqlite":
        return Backend(env={}, dump=_dump_sqlite)  # the embedded default, in the data dir
    owner_url: str = request.getfixturevalue("postgres_url")
    return Backend(
        env={
            "TENANTRY_DATABASE_URL": services.as_role(owner_url, services.APP_ROLE),
            "TENANTRY_DATABASE_MIGRATION_URL": owner_url,
        },
        dump=lambda _data_dir: dump_postgres(owner_url),
    )


@pytest.fixture
def apis() -> Iterator[ProviderAPIs]:
    with provider_apis(
        valid_keys=[
            PLANTED["alpha"]["openai"]["api_key"],
            PLANTED["beta"]["anthropic"]["api_key"],
        ],
        valid_tokens=[ALPHA_BOT, BETA_BOT],
    ) as served:
        yield served


@pytest.fixture
def control_plane(
    tmp_path: Path, upstream_url: str, apis: ProviderAPIs, backend: Backend
) -> Iterator[ControlPlaneProcess]:
    env = without_settings(
        TENANTRY_PLATFORM_MODELS_URL=upstream_url,
        TENANTRY_OPENAI_API_BASE=apis.bases.openai,
        TENANTRY_ANTHROPIC_API_BASE=apis.bases.anthropic,
        TENANTRY_TELEGRAM_API_BASE=apis.bases.telegram,
        TENANTRY_RESYNC_INTERVAL="0.5",
        TENANTRY_LOG_LEVEL="debug",
        TENANTRY_GATEWAY_LOG_LEVEL="debug",
        **backend.env,
    )
    cp = ControlPlaneProcess(tmp_path / "data", env)
    cp.start()
    yield cp
    if cp.process is not None and cp.process.poll() is None:
        cp.stop()
    leftovers = cp.all_gateway_pids()
    for pids in leftovers.values():
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"gateways left running after the control plane stopped: {leftovers}"


class Evidence:
    """Everything the test received: each HTTP answer (status line, headers, body) and each
    command's output."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def record(self, response: httpx.Response) -> None:
        response.read()
        headers = b"".join(name + b": " + value + b"\n" for name, value in response.headers.raw)
        self.received.append(f"{response.status_code}\n".encode() + headers + response.content)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(timeout=30, event_hooks={"response": [self.record]}, **kwargs)

    def command(self, completed: subprocess.CompletedProcess[bytes]) -> None:
        self.received.append(completed.stdout + completed.stderr)


class Flow:
    """The admin's and the tenants' side of the flow, every answer recorded."""

    def __init__(self, cp: ControlPlaneProcess, backend: Backend, evidence: Evidence) -> None:
        self.cp = cp
        self.backend = backend
        self.evidence = evidence
        token = (cp.data_dir / "admin-token").read_text().strip()
        self.admin = evidence.client(base_url=cp.url, headers={"Authorization": f"Bearer {token}"})
        self.public = evidence.client()
        self.tenants: dict[str, dict[str, Any]] = {}
        self.identities: dict[str, str] = {}

    def close(self) -> None:
        self.admin.close()
        self.public.close()

    def tenant(self, slug: str) -> dict[str, Any]:
        body: dict[str, Any] = self.admin.get(f"/api/v1/tenants/{self.tenants[slug]['id']}").json()
        return body

    def wait_state(self, slug: str, state: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            tenant = self.tenant(slug)
            assert tenant["state"] != "failed", tenant["reason"]
            return tenant if tenant["state"] == state else None

        return eventually_sync(probe, timeout=120, what=f"{slug} {state}")

    def holds(self, slug: str, providers: list[str]) -> bool:
        """The tenant's gateway is ready and holds exactly these providers' credentials."""
        endpoint = self.tenant(slug)["endpoint"]
        if endpoint is None:
            return False
        try:
            ready = self.public.get(f"{endpoint}/readyz", timeout=2)
        except httpx.HTTPError:
            return False
        return ready.status_code == 200 and ready.json().get("credentials") == providers

    def wait_holding(self, slug: str) -> None:
        providers = sorted(PLANTED[slug])
        eventually_sync(lambda: self.holds(slug, providers), timeout=60, what=f"{slug} unsealed")

    def chat(self, slug: str, text: str) -> None:
        endpoint = self.tenant(slug)["endpoint"]
        headers = {"Authorization": f"Bearer {self.tenants[slug]['gateway_key']['key']}"}
        body = {"model": "stub-model", "messages": [{"role": "user", "content": text}]}
        url = f"{endpoint}/v1/chat/completions"
        answer = self.public.post(url, headers=headers, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == f"echo: {text}"
        with self.public.stream("POST", url, headers=headers, json={**body, "stream": True}) as s:
            assert s.status_code == 200
            assert "[DONE]" in s.read().decode()

    def unseal(self, slug: str) -> httpx.Response:
        """Ask to unseal as the tenant's gateway, with its identity token (kept from its
        runtime dir, which deletion removes)."""
        tenant_id = self.tenants[slug]["id"]
        if slug not in self.identities:
            identity_file = self.cp.data_dir / "gateways" / tenant_id / "identity-token"
            self.identities[slug] = identity_file.read_text().strip()
        return self.public.post(
            f"{self.cp.url}/internal/v1/gateways/{tenant_id}/unseal",
            headers={"Authorization": f"Bearer {self.identities[slug]}"},
        )

    def vault(self, *args: str) -> str:
        command = [sys.executable, "-m", "control_plane.cli.main", "vault"]
        completed = subprocess.run(
            [*command, "--data-dir", str(self.cp.data_dir), *args],
            capture_output=True,
            env=without_settings(**self.backend.env),
            timeout=120,
            check=False,
        )
        self.evidence.command(completed)
        assert completed.returncode == 0, completed.stderr.decode()
        return completed.stdout.decode()

    def bundle_dek_versions(self, slug: str) -> set[int]:
        bundle_file = self.cp.data_dir / "gateways" / self.tenants[slug]["id"] / "bundle.json"
        return {c["dek_version"] for c in json.loads(bundle_file.read_bytes())["credentials"]}

    def gateway_pid(self, slug: str) -> int:
        state = read_state(self.cp.data_dir / "gateways" / self.tenants[slug]["id"])
        assert state is not None
        return state.pid


def assert_nowhere(flow: Flow, scan: SecretScan, root: Path, moment: str) -> None:
    """Zero hits in every file under ``root``, every database row, every answer and log."""
    assert scan.files(root) == {}, f"plaintext credentials in files {moment}"
    dump = flow.backend.dump(flow.cp.data_dir)
    for tenant in flow.tenants.values():
        assert tenant["id"].encode() in dump, "the dump holds every tenant's rows"
    assert scan.hits(dump) == set(), f"plaintext credentials in the database {moment}"
    assert scan.texts(flow.evidence.received) == set(), f"plaintext in answers {moment}"
    assert scan.hits(flow.cp.log.read_bytes()) == set(), f"in the control plane's log {moment}"


def test_credentials_reach_only_their_gateways_memory(
    control_plane: ControlPlaneProcess,
    backend: Backend,
    apis: ProviderAPIs,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    evidence = Evidence()
    flow = Flow(control_plane, backend, evidence)
    scan = SecretScan(ALL_SECRETS)
    try:
        run_flow(flow, scan, apis, upstream_url, tmp_path)
    finally:
        flow.close()


def run_flow(
    flow: Flow, scan: SecretScan, apis: ProviderAPIs, upstream_url: str, root: Path
) -> None:
    # Provision, store (validated with each provider), unseal, chat.
    for slug in PLANTED:
        created = flow.admin.post("/api/v1/tenants", json={"slug": slug})
        assert created.status_code == 202, created.text
        flow.tenants[slug] = created.json()
    for slug in PLANTED:
        flow.wait_state(slug, "running")
        for provider, fields in PLANTED[slug].items():
            if provider == "openai_compatible":
                fields = {**fields, "base_url": upstream_url}
            stored = flow.admin.put(
                f"/api/v1/tenants/{slug}/credentials/{provider}?validate=true", json=fields
            )
            assert stored.status_code == 200, stored.text
    assert {r.api for r in apis.seen()} == {"openai", "anthropic", "telegram"}, "validated"
    for slug in PLANTED:
        flow.wait_holding(slug)  # the running gateway picks them up without a restart
        flow.chat(slug, f"hello from {slug}")
        listed = flow.admin.get(f"/api/v1/tenants/{slug}/credentials").json()
        assert sorted(c["provider"] for c in listed) == sorted(PLANTED[slug])
        assert flow.unseal(slug).status_code == 200
    forged = flow.public.post(
        f"{flow.cp.url}/internal/v1/gateways/{flow.tenants['alpha']['id']}/unseal",
        headers={"Authorization": "Bearer tgi_forged-identity-token-000000"},
    )
    assert forged.status_code == 403

    # KEK rotation beside the running control plane, which follows the rotated ring file.
    assert f"{len(PLANTED)} data key(s) rewrapped" in flow.vault("rotate-kek", "--new-key")
    for slug in PLANTED:
        assert flow.unseal(slug).status_code == 200, "the running control plane reads new DEKs"
        flow.chat(slug, f"{slug} after the KEK rotation")

    # DEK rotation: re-encrypted bundles reach the gateways, which unseal the new key.
    for slug in PLANTED:
        assert f"of {slug} re-encrypted" in flow.vault("rotate-dek", slug)
    for slug in PLANTED:
        eventually_sync(
            lambda slug=slug: flow.bundle_dek_versions(slug) == {2},
            timeout=60,
            what=f"{slug}'s re-encrypted bundle",
        )
        flow.wait_holding(slug)
        flow.chat(slug, f"{slug} after the DEK rotation")

    # Suspension refuses unsealing; resumption restores it.
    flow.admin.patch("/api/v1/tenants/alpha", json={"suspended": True})
    flow.wait_state("alpha", "suspended")
    refused = flow.unseal("alpha")
    assert refused.status_code == 403
    assert refused.json()["type"] == SUSPENDED_PROBLEM
    assert "suspended" in refused.json()["detail"]
    flow.admin.patch("/api/v1/tenants/alpha", json={"suspended": False})
    flow.wait_state("alpha", "running")
    flow.wait_holding("alpha")
    flow.chat("alpha", "alpha after resuming")

    # Before deletion removes them: the values are in each gateway's memory and nowhere else.
    for slug in PLANTED:
        memory = scan.hits(process_memory(flow.gateway_pid(slug)))
        own = set(secrets_of(slug))
        assert own <= memory, f"{slug}'s gateway holds its credentials"
        assert memory <= own, f"{slug}'s gateway holds no other tenant's credentials"
        runtime_dir = flow.cp.data_dir / "gateways" / flow.tenants[slug]["id"]
        assert b"listening on" in (runtime_dir / "gateway.log").read_bytes(), "logs captured"
    assert flow.cp.log.stat().st_size > 0
    assert_nowhere(flow, scan, root, "before deletion")

    # Deletion shreds the data keys; nothing is left anywhere either.
    for slug in PLANTED:
        assert flow.admin.delete(f"/api/v1/tenants/{slug}").status_code == 202
    for slug in PLANTED:
        flow.wait_state(slug, "deleted")
        assert flow.unseal(slug).status_code == 403
    assert_nowhere(flow, scan, root, "after deletion")
