"""The catalog reaches running gateways: a registered model appears in the bundles of the
tenants whose plan allows it, and the gateway lists it, without a restart; a removed one
goes away again. An empty catalog hands gateways nothing (they ask the fleet instead)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec

from tenant_gateway.contract import BUNDLE_FILE, GatewayBundle
from tests.integration.reconciler.conftest import ControlPlaneFactory, gateway_pid, wait_state
from tests.waiting import eventually

LLAMA = {
    "name": "llama-3.1-8b",
    "base_url": "http://127.0.0.1:9/v1",
    "served_model_name": "meta-llama/Llama-3.1-8B-Instruct",
    "context_length": 131072,
}


def bundle_of(data_dir: Path, tenant_id: str) -> GatewayBundle:
    path = data_dir / "gateways" / tenant_id / BUNDLE_FILE
    return msgspec.json.decode(path.read_bytes(), type=GatewayBundle)


async def bundled_names(data_dir: Path, tenant_id: str, expected: list[str]) -> None:
    async def probe() -> bool:
        return [m.name for m in bundle_of(data_dir, tenant_id).platform_models] == expected

    await eventually(probe, timeout=30, what=f"bundle of {tenant_id} with {expected}")


async def listed_by_gateway(endpoint: str, key: str) -> list[str]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(
            f"{endpoint}/v1/models", headers={"Authorization": f"Bearer {key}"}
        )
        response.raise_for_status()
        return [card["id"] for card in response.json()["data"]]


async def test_a_catalog_change_reaches_running_gateways(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane() as client:
        made: dict[str, Any] = {}
        for slug, plan in (("freebie", "free"), ("business", "pro")):
            made[slug] = (
                await client.post("/api/v1/tenants", json={"slug": slug, "plan": plan})
            ).json()
        running = {slug: await wait_state(client, slug, "running") for slug in made}
        free_id, pro_id = made["freebie"]["id"], made["business"]["id"]
        pids = {free_id: gateway_pid(data_dir, free_id), pro_id: gateway_pid(data_dir, pro_id)}
        assert bundle_of(data_dir, pro_id).platform_models == [], "empty catalog: fleet discovery"

        registered = await client.post("/api/v1/models", json=LLAMA)
        assert registered.status_code == 201, registered.text
        pro_only = await client.post(
            "/api/v1/models", json={**LLAMA, "name": "big-model", "plans": ["pro"]}
        )
        assert pro_only.status_code == 201, pro_only.text

        await bundled_names(data_dir, pro_id, ["big-model", "llama-3.1-8b"])
        await bundled_names(data_dir, free_id, ["llama-3.1-8b"])
        entry = next(
            m for m in bundle_of(data_dir, pro_id).platform_models if m.name == "llama-3.1-8b"
        )
        assert entry.base_url == LLAMA["base_url"]
        assert entry.served_model_name == LLAMA["served_model_name"]
        assert entry.context_length == LLAMA["context_length"]

        key = made["business"]["gateway_key"]["key"]
        endpoint = running["business"]["endpoint"]

        async def gateway_lists_both() -> bool:
            names = await listed_by_gateway(endpoint, key)
            return {"big-model", "llama-3.1-8b"} <= set(names)

        await eventually(gateway_lists_both, timeout=30, what="the gateway listing the catalog")

        await client.patch("/api/v1/models/big-model", json={"enabled": False})
        await bundled_names(data_dir, pro_id, ["llama-3.1-8b"])

        removed = await client.delete("/api/v1/models/llama-3.1-8b")
        assert removed.status_code == 204
        await bundled_names(data_dir, pro_id, [])
        await bundled_names(data_dir, free_id, [])

        async def gateway_forgot() -> bool:
            return "llama-3.1-8b" not in await listed_by_gateway(endpoint, key)

        await eventually(gateway_forgot, timeout=30, what="the gateway dropping the model")
        assert {t: gateway_pid(data_dir, t) for t in pids} == pids, "no gateway restarted"
        for slug in made:
            await client.delete(f"/api/v1/tenants/{slug}")
        for tenant in made.values():
            await wait_state(client, tenant["id"], "deleted")


async def test_a_tenant_started_later_gets_the_catalog_its_plan_allows(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    async with control_plane() as client:
        await client.post("/api/v1/models", json={**LLAMA, "plans": ["enterprise"]})
        await client.post("/api/v1/models", json={**LLAMA, "name": "small-model"})
        tenant = (await client.post("/api/v1/tenants", json={"slug": "late"})).json()
        await wait_state(client, "late", "running")
        assert [m.name for m in bundle_of(data_dir, tenant["id"]).platform_models] == [
            "small-model"
        ]
        await client.patch("/api/v1/tenants/late", json={"plan": "enterprise"})
        await bundled_names(data_dir, tenant["id"], ["llama-3.1-8b", "small-model"])
        await client.delete("/api/v1/tenants/late")
        await wait_state(client, tenant["id"], "deleted")
