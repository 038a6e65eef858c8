"""Sealed delivery end to end: credentials reach the gateway's memory and nowhere else;
suspension stops unsealing, resumption restores it, deletion shreds it. Planted secret
values are then searched for in every file, log line and HTTP response: zero hits."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ControlPlaneProcess
from tests.e2e.test_embedded_default import chat, wait_running
from tests.environment import without_settings
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

OPENAI_KEY = "sk-planted-e2e-openai-value-5150"
BOT_TOKEN = "987654321:AAplantedE2eTelegramToken_qrstuvwxyz12"
SECRETS = [OPENAI_KEY, BOT_TOKEN, BOT_TOKEN.split(":")[1]]


def test_credentials_reach_only_the_gateways_memory(
    control_plane_process: ControlPlaneProcess,
) -> None:
    cp = control_plane_process
    responses: list[str] = []

    def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = client.request(method, path, **kwargs)
        responses.append(response.text)
        return response

    def unseal(token: str) -> httpx.Response:
        response = httpx.post(
            f"{cp.url}/internal/v1/gateways/{tenant['id']}/unseal",
            headers={"Authorization": f"Bearer {token}"},
        )
        responses.append(response.text)
        return response

    def gateway_holds(providers: list[str]) -> bool:
        endpoint = client.get(f"/api/v1/tenants/{tenant['id']}").json()["endpoint"]
        if endpoint is None:
            return False
        try:
            ready = httpx.get(f"{endpoint}/readyz", timeout=2).json()
        except httpx.HTTPError:
            return False
        return bool(ready.get("credentials") == providers)

    with cp.client() as client:
        tenant = call(client, "POST", "/api/v1/tenants", json={"slug": "sealed"}).json()
        wait_running(client, "sealed")
        assert (
            call(
                client,
                "PUT",
                "/api/v1/tenants/sealed/credentials/openai",
                json={"api_key": OPENAI_KEY},
            ).status_code
            == 200
        )
        assert (
            call(
                client,
                "PUT",
                "/api/v1/tenants/sealed/credentials/telegram_bot",
                json={"token": BOT_TOKEN},
            ).status_code
            == 200
        )
        # The running gateway picks them up without a restart.
        eventually_sync(
            lambda: gateway_holds(["openai", "telegram_bot"]), timeout=30, what="unsealed"
        )
        call(client, "GET", "/api/v1/tenants/sealed/credentials")

        identity = (cp.data_dir / "gateways" / tenant["id"] / "identity-token").read_text().strip()
        assert unseal(identity).status_code == 200
        assert unseal("tgi_forged").status_code == 403

        # Rotating the tenant's DEK while it runs does not disturb it.
        rotated = subprocess.run(
            [
                sys.executable,
                "-m",
                "control_plane.cli.main",
                "vault",
                "--data-dir",
                str(cp.data_dir),
                "rotate-dek",
                "sealed",
            ],
            capture_output=True,
            text=True,
            env=without_settings(),
            timeout=120,
            check=False,
        )
        assert rotated.returncode == 0, rotated.stderr
        responses.append(rotated.stdout + rotated.stderr)
        # The running control plane's sweep delivers the re-encrypted bundle, and the
        # gateway unseals the new data key without a restart.
        bundle_file = cp.data_dir / "gateways" / tenant["id"] / "bundle.json"

        def rotated_bundle_delivered() -> bool:
            bundle = json.loads(bundle_file.read_bytes())
            return {c["dek_version"] for c in bundle["credentials"]} == {2}

        eventually_sync(rotated_bundle_delivered, timeout=30, what="re-encrypted bundle")
        eventually_sync(
            lambda: gateway_holds(["openai", "telegram_bot"]), timeout=30, what="re-unsealed"
        )
        assert (
            chat(
                client.get("/api/v1/tenants/sealed").json()["endpoint"],
                tenant["gateway_key"]["key"],
                "still serving",
            ).status_code
            == 200
        )

        call(client, "PATCH", "/api/v1/tenants/sealed", json={"suspended": True})
        eventually_sync(
            lambda: client.get("/api/v1/tenants/sealed").json()["state"] == "suspended",
            timeout=60,
            what="suspended",
        )
        refused = unseal(identity)
        assert refused.status_code == 403
        assert "suspended" in refused.json()["detail"]
        assert refused.json()["type"] == "https://tenantry.dev/problems/tenant-suspended"

        call(client, "PATCH", "/api/v1/tenants/sealed", json={"suspended": False})
        wait_running(client, "sealed")
        eventually_sync(
            lambda: gateway_holds(["openai", "telegram_bot"]), timeout=30, what="resumed"
        )

        call(client, "DELETE", "/api/v1/tenants/sealed")
        eventually_sync(
            lambda: client.get(f"/api/v1/tenants/{tenant['id']}").json()["state"] == "deleted",
            timeout=60,
            what="deleted",
        )
        assert unseal(identity).status_code == 403

    # Zero hits: files (database included), the control plane's log, every response.
    for path in cp.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in content, f"plaintext credential in {path}"
    log = cp.log.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in log
        assert all(secret not in text for text in responses)
