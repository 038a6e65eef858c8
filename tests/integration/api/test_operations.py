"""Operations endpoints: health, readiness, metrics, OpenAPI."""

from __future__ import annotations

from litestar.testing import AsyncTestClient


async def test_health_and_readiness_need_no_token(client: AsyncTestClient) -> None:
    client.headers.pop("Authorization")
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_metrics_are_prometheus_text(client: AsyncTestClient) -> None:
    await client.get("/api/v1/tenants")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'litestar_requests_total{app_name="tenantry_control_plane"' in response.text


async def test_openapi_documents_the_wire_contract(client: AsyncTestClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    paths = set(schema["paths"])
    assert {
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant_ref}",
        "/api/v1/tenants/{tenant_ref}/events",
        "/api/v1/tenants/{tenant_ref}/gateway-keys",
        "/api/v1/tenants/{tenant_ref}/gateway-keys/{key_id}",
        "/healthz",
        "/readyz",
    } <= paths
