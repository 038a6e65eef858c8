"""A tenant's model routes reach its running gateway, which resolves them; and a catalog
that allows a plan nothing really gives that plan nothing (not the fleet's whole list)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.doubles.openai_upstream import openai_upstream
from tests.integration.reconciler.conftest import ControlPlaneFactory, gateway_pid, wait_state
from tests.integration.reconciler.test_model_catalog import bundle_of, listed_by_gateway
from tests.waiting import eventually


async def test_aliases_and_fallbacks_reach_the_gateway_without_a_restart(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    with openai_upstream(["stub-model"]) as fleet:
        async with control_plane(TENANTRY_PLATFORM_MODELS_URL=fleet.url) as client:
            made = (await client.post("/api/v1/tenants", json={"slug": "router"})).json()
            endpoint = (await wait_state(client, "router", "running"))["endpoint"]
            key = made["gateway_key"]["key"]
            pid = gateway_pid(data_dir, made["id"])
            routes = {
                "aliases": {"default": "byok/openai/gpt-none"},
                "fallbacks": {"default": ["stub-model"]},
            }
            put = await client.put("/api/v1/tenants/router/model-routes", json=routes)
            assert put.status_code == 200, put.text

            async def delivered() -> bool:
                bundle = bundle_of(data_dir, made["id"])
                return bundle.model_aliases == routes["aliases"]

            await eventually(delivered, timeout=30, what="routes in the bundle")
            assert bundle_of(data_dir, made["id"]).model_fallbacks == routes["fallbacks"]

            async def listed() -> bool:
                return "default" in await listed_by_gateway(endpoint, key)

            await eventually(listed, timeout=30, what="the alias listed by the gateway")
            # No OpenAI key is stored: the alias's model is out of reach, its fallback answers.
            async with httpx.AsyncClient(timeout=10) as http:
                reply = await http.post(
                    f"{endpoint}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
                )
            assert reply.status_code == 200, reply.text
            assert fleet.requests_to("/v1/chat/completions")[-1].body["model"] == "stub-model"
            assert gateway_pid(data_dir, made["id"]) == pid, "no restart"
            await client.delete("/api/v1/tenants/router")
            await wait_state(client, made["id"], "deleted")


async def test_a_catalog_that_allows_a_plan_nothing_gives_it_nothing(
    control_plane: ControlPlaneFactory, data_dir: Path
) -> None:
    with openai_upstream(["fleet-only"]) as fleet:
        async with control_plane(TENANTRY_PLATFORM_MODELS_URL=fleet.url) as client:
            made = (await client.post("/api/v1/tenants", json={"slug": "frugal"})).json()
            endpoint = (await wait_state(client, "frugal", "running"))["endpoint"]
            key = made["gateway_key"]["key"]
            assert await listed_by_gateway(endpoint, key) == ["fleet-only"], "fleet discovery"
            entry = {"name": "pro-only", "base_url": fleet.url, "plans": ["pro"]}
            assert (await client.post("/api/v1/models", json=entry)).status_code == 201

            async def governed() -> bool:
                return bundle_of(data_dir, made["id"]).platform_catalog

            await eventually(governed, timeout=30, what="the catalog governing the bundle")
            assert bundle_of(data_dir, made["id"]).platform_models == []

            async def nothing_listed() -> bool:
                return await listed_by_gateway(endpoint, key) == []

            await eventually(nothing_listed, timeout=30, what="the free plan offered nothing")
            async with httpx.AsyncClient(timeout=10) as http:
                refused = await http.post(
                    f"{endpoint}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "fleet-only", "messages": [{"role": "user", "content": "x"}]},
                )
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "model_not_found"
            await client.delete("/api/v1/tenants/frugal")
            await wait_state(client, made["id"], "deleted")
