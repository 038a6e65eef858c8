"""The control plane in-process (reconciler off) on SQLite and PostgreSQL, as the
application role under row-level security, with tenants whose gateways' identity tokens the
tests hold, so they can speak to the internal usage endpoint as those gateways do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.settings import load_settings
from tenant_gateway.contract import USAGE_PATH, UsageBatch, UsageEvent
from tenant_gateway.metering import new_event_id


@dataclass
class Tenant:
    id: str
    slug: str
    identity: str
    """Its gateway's identity token."""


@pytest.fixture
async def client(database_env: dict[str, str], tmp_path: Path) -> AsyncIterator[AsyncTestClient]:
    settings = load_settings(database_env, data_dir=str(tmp_path / "data"))
    tokens: list[str] = []
    app = create_app(settings, on_first_token=tokens.append, reconcile=False)
    async with AsyncTestClient(app=app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {tokens[0]}"
        yield test_client


async def make_tenant(client: AsyncTestClient, slug: str) -> Tenant:
    made = await client.post("/api/v1/tenants", json={"slug": slug})
    assert made.status_code == 202, made.text
    tenant_id = made.json()["id"]
    identity = await client.app.state["vault"].gateway_identity(tenant_id)
    return Tenant(tenant_id, slug, identity)


def event(tenant: Tenant, **fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "id": new_event_id(),
        "tenant_id": tenant.id,
        "at": datetime.now(UTC),
        "model": "stub-model",
        "provider": "platform",
        "byok": False,
        "stream": False,
        "outcome": "ok",
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "latency": 0.01,
        "time_to_first_token": None,
    }
    values.update(fields)
    return UsageEvent(**values)


async def deliver(
    client: AsyncTestClient, tenant: Tenant, events: list[UsageEvent], identity: str | None = None
) -> Any:
    """POST the events as ``tenant``'s gateway (with its identity token unless told)."""
    return await client.post(
        USAGE_PATH.format(tenant_id=tenant.id),
        content=msgspec.json.encode(UsageBatch(events=events)),
        headers={
            "Authorization": f"Bearer {identity or tenant.identity}",
            "Content-Type": "application/json",
        },
    )


async def usage(client: AsyncTestClient, tenant: Tenant, **params: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/tenants/{tenant.id}/usage", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
