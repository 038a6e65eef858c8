"""``GET /api/v1/tenants/{id}/usage``: totals over UTC days, grouped by model or by day and
split into BYOK and platform, for the tenant's people holding ``usage:read``; a bad date or
grouping is an RFC 9457 problem that says what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.integration.usage.conftest import Tenant, deliver, event, make_tenant, usage

PASSWORD = "correct horse battery staple"
DAY_1 = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
DAY_2 = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
DAY_3 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def counts(requests: int, prompt: int, completion: int) -> dict[str, int]:
    return {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion}


def breakdown(byok: tuple[int, int, int], platform: tuple[int, int, int]) -> dict[str, Any]:
    total = tuple(b + p for b, p in zip(byok, platform, strict=True))
    return {**counts(*total), "byok": counts(*byok), "platform": counts(*platform)}


@pytest.fixture
async def acme(client: AsyncTestClient) -> Tenant:
    """Usage over three days, two models, BYOK and platform."""
    tenant = await make_tenant(client, "acme")
    events = [
        event(tenant, at=DAY_1, model="llama", prompt_tokens=10, completion_tokens=1),
        event(tenant, at=DAY_2, model="llama", prompt_tokens=20, completion_tokens=2),
        event(
            tenant,
            at=DAY_2,
            model="gpt-4o",
            byok=True,
            provider="openai",
            prompt_tokens=30,
            completion_tokens=3,
        ),
        event(tenant, at=DAY_3, model="gpt-4o", byok=True, prompt_tokens=40, completion_tokens=4),
        event(
            tenant,
            at=DAY_3,
            model="llama",
            outcome="unreachable",
            provider=None,
            prompt_tokens=None,
            completion_tokens=None,
        ),
    ]
    answer = await deliver(client, tenant, events)
    assert answer.status_code == 200, answer.text
    return tenant


async def test_grouped_by_model(client: AsyncTestClient, acme: Tenant) -> None:
    report = await usage(client, acme, group_by="model")
    assert report["tenant_id"] == acme.id
    assert (report["from"], report["to"], report["group_by"]) == (None, None, "model")
    assert report["totals"] == breakdown(byok=(2, 70, 7), platform=(3, 30, 3))
    assert report["groups"] == [
        {"model": "gpt-4o", **breakdown(byok=(2, 70, 7), platform=(0, 0, 0))},
        {"model": "llama", **breakdown(byok=(0, 0, 0), platform=(3, 30, 3))},
    ]


async def test_grouped_by_day_is_the_default(client: AsyncTestClient, acme: Tenant) -> None:
    report = await usage(client, acme)
    assert report["group_by"] == "day"
    assert report["groups"] == [
        {"day": "2026-11-30", **breakdown(byok=(0, 0, 0), platform=(1, 10, 1))},
        {"day": "2026-12-01", **breakdown(byok=(1, 30, 3), platform=(1, 20, 2))},
        {"day": "2026-12-02", **breakdown(byok=(1, 40, 4), platform=(1, 0, 0))},
    ]


async def test_from_and_to_are_utc_days_both_included(
    client: AsyncTestClient, acme: Tenant
) -> None:
    report = await usage(client, acme, **{"from": "2026-12-01", "to": "2026-12-01"})
    assert (report["from"], report["to"]) == ("2026-12-01", "2026-12-01")
    assert report["totals"] == breakdown(byok=(1, 30, 3), platform=(1, 20, 2))
    assert [g["day"] for g in report["groups"]] == ["2026-12-01"]
    since = await usage(client, acme, **{"from": "2026-12-02", "group_by": "model"})
    assert since["totals"]["requests"] == 2
    until = await usage(client, acme, to="2026-11-30")
    assert until["totals"]["requests"] == 1
    empty = await usage(client, acme, **{"from": "2027-01-01"})
    assert empty["totals"] == breakdown((0, 0, 0), (0, 0, 0))
    assert empty["groups"] == []


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"from": "yesterday"}, "from='yesterday' is not a date; use YYYY-MM-DD"),
        ({"to": "2026-13-01"}, "to='2026-13-01' is not a date"),
        ({"from": "2026-12-02", "to": "2026-12-01"}, "from=2026-12-02 is after to=2026-12-01"),
        ({"group_by": "week"}, "group_by='week': expected one of model, day"),
    ],
)
async def test_a_bad_query_is_a_problem(
    client: AsyncTestClient, acme: Tenant, params: dict[str, str], detail: str
) -> None:
    answer = await client.get(f"/api/v1/tenants/{acme.id}/usage", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"] == "https://tenantry.dev/problems/invalid-usage-query"
    assert problem["status"] == 400
    assert detail in problem["detail"]


async def test_the_tenants_members_read_it_and_nobody_else(
    client: AsyncTestClient, acme: Tenant
) -> None:
    other = await make_tenant(client, "globex")
    member = await person(client, acme, "member@acme.example", "member")
    report = await client.get(f"/api/v1/tenants/{acme.slug}/usage", headers=member)
    assert report.status_code == 200, report.text
    assert report.json()["totals"]["requests"] == 5
    assert (await client.get(f"/api/v1/tenants/{other.id}/usage", headers=member)).status_code == (
        404
    )
    narrowed = await client.post(
        "/api/v1/tokens",
        json={"name": "no usage", "scopes": [f"tenants:read!tenant={acme.id}"]},
        headers=member,
    )
    assert narrowed.status_code == 201, narrowed.text
    token = {"Authorization": f"Bearer {narrowed.json()['token']}"}
    refused = await client.get(f"/api/v1/tenants/{acme.id}/usage", headers=token)
    assert refused.status_code == 403
    assert "usage:read" in refused.json()["detail"]


async def person(client: AsyncTestClient, tenant: Tenant, email: str, role: str) -> dict[str, str]:
    made = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert made.status_code == 201, made.text
    added = await client.post(
        f"/api/v1/tenants/{tenant.id}/members", json={"email": email, "role": role}
    )
    assert added.status_code == 201, added.text
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}
