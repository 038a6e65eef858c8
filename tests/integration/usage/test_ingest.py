"""The internal usage endpoint stores each event once: a batch delivered again (in turn, or
at the same moment) or overlapping an earlier one counts only what is new, on SQLite and on
PostgreSQL. Only the tenant's own gateway may report, and only its own tenant's events."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient

from control_plane.db.models import UsageDailyRow, UsageEventRow
from tenant_gateway.contract import USAGE_PATH
from tests.integration.usage.conftest import deliver, event, make_tenant, usage


async def stored_events(client: AsyncTestClient, tenant_id: str) -> int:
    from sqlalchemy import func, select

    async with client.app.state["db"].transaction(tenant=tenant_id) as session:
        count: int = await session.scalar(
            select(func.count())
            .select_from(UsageEventRow)
            .where(UsageEventRow.tenant_id == tenant_id)
        )
    return count


def totals(report: dict[str, Any]) -> tuple[int, int, int]:
    t = report["totals"]
    return t["requests"], t["prompt_tokens"], t["completion_tokens"]


async def test_the_same_batch_twice_counts_once(client: AsyncTestClient) -> None:
    acme = await make_tenant(client, "acme")
    batch = [event(acme, prompt_tokens=n, completion_tokens=2 * n) for n in range(1, 11)]
    first = await deliver(client, acme, batch)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 10, "stored": 10}
    again = await deliver(client, acme, batch)
    assert again.status_code == 200, again.text
    assert again.json() == {"received": 10, "stored": 0}
    assert totals(await usage(client, acme)) == (10, 55, 110)
    assert await stored_events(client, acme.id) == 10


async def test_a_batch_delivered_several_times_at_once_counts_once(
    client: AsyncTestClient,
) -> None:
    acme = await make_tenant(client, "acme")
    batch = [event(acme) for _ in range(50)]
    answers = await asyncio.gather(*(deliver(client, acme, batch) for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert sum(a.json()["stored"] for a in answers) == 50
    assert totals(await usage(client, acme)) == (50, 150, 250)


async def test_an_overlapping_batch_stores_only_what_is_new(client: AsyncTestClient) -> None:
    acme = await make_tenant(client, "acme")
    older = [event(acme) for _ in range(5)]
    newer = [event(acme, prompt_tokens=100, completion_tokens=1) for _ in range(3)]
    assert (await deliver(client, acme, older)).json()["stored"] == 5
    overlapping = await deliver(client, acme, older[2:] + newer)
    assert overlapping.json() == {"received": 6, "stored": 3}
    assert totals(await usage(client, acme)) == (8, 5 * 3 + 300, 5 * 5 + 3)


async def test_an_event_repeated_within_a_batch_counts_once(client: AsyncTestClient) -> None:
    acme = await make_tenant(client, "acme")
    once = event(acme)
    answer = await deliver(client, acme, [once, once, event(acme)])
    assert answer.json() == {"received": 3, "stored": 2}
    assert totals(await usage(client, acme))[0] == 2


async def test_one_event_id_belongs_to_its_tenant_only(client: AsyncTestClient) -> None:
    acme, globex = await make_tenant(client, "acme"), await make_tenant(client, "globex")
    shared_id = event(acme).id
    assert (await deliver(client, acme, [event(acme, id=shared_id)])).json()["stored"] == 1
    answer = await deliver(client, globex, [event(globex, id=shared_id)])
    assert answer.json()["stored"] == 1, "another tenant's id cannot shadow this one's event"
    assert totals(await usage(client, acme))[0] == totals(await usage(client, globex))[0] == 1


async def test_events_of_another_tenant_are_refused_and_nothing_is_stored(
    client: AsyncTestClient,
) -> None:
    acme, globex = await make_tenant(client, "acme"), await make_tenant(client, "globex")
    answer = await deliver(client, acme, [event(acme), event(globex)])
    assert answer.status_code == 403, answer.text
    problem = answer.json()
    assert problem["type"] == "https://tenantry.dev/problems/usage-refused"
    assert globex.id in problem["detail"]
    assert totals(await usage(client, acme)) == (0, 0, 0)
    assert totals(await usage(client, globex)) == (0, 0, 0)


async def test_only_the_tenants_own_gateway_may_report(client: AsyncTestClient) -> None:
    acme, globex = await make_tenant(client, "acme"), await make_tenant(client, "globex")
    wrong = await deliver(client, acme, [event(acme)], identity=globex.identity)
    assert wrong.status_code == 403
    assert wrong.json()["type"] == "https://tenantry.dev/problems/gateway-refused"
    admin = client.headers["Authorization"].removeprefix("Bearer ")
    assert (await deliver(client, acme, [event(acme)], identity=admin)).status_code == 403
    unknown = await client.post(
        USAGE_PATH.format(tenant_id="01a20000-0000-7000-8000-000000000000"),
        json={"events": []},
        headers={"Authorization": f"Bearer {acme.identity}"},
    )
    assert unknown.status_code == 403
    assert totals(await usage(client, acme)) == (0, 0, 0)


async def test_a_malformed_batch_is_a_problem_naming_what_is_wrong(
    client: AsyncTestClient,
) -> None:
    acme = await make_tenant(client, "acme")
    path = USAGE_PATH.format(tenant_id=acme.id)
    headers = {"Authorization": f"Bearer {acme.identity}", "Content-Type": "application/json"}
    good = msgspec.to_builtins(event(acme))
    for body, expected in (
        (b"{not json", "not valid JSON"),
        (msgspec.json.encode({"events": []}), "$.events"),
        (msgspec.json.encode({"events": [{**good, "prompt_tokens": -1}]}), "prompt_tokens"),
        (msgspec.json.encode({"events": [{**good, "id": "7"}]}), "$.events[0].id"),
        (msgspec.json.encode({"events": [{**good, "planted": 1}]}), "planted"),
    ):
        answer = await client.post(path, content=body, headers=headers)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert expected in answer.json()["detail"], answer.json()
    # Without the identity token, not even the shape of the batch is looked at.
    refused = await client.post(path, content=b"{not json", headers={"Authorization": "Bearer x"})
    assert refused.status_code == 403


async def test_rollups_equal_the_stored_events(client: AsyncTestClient) -> None:
    """The daily rollups and the events they summarise agree after redeliveries."""
    from sqlalchemy import func, select

    acme = await make_tenant(client, "acme")
    batches = [
        [event(acme, byok=n % 2 == 0, model=f"m{n % 3}") for n in range(9)] for _ in range(3)
    ]
    for batch in batches + batches[::-1]:
        assert (await deliver(client, acme, batch)).status_code == 200
    async with client.app.state["db"].transaction(tenant=acme.id) as session:
        from_events = (
            await session.execute(
                select(func.count(), func.sum(UsageEventRow.prompt_tokens)).where(
                    UsageEventRow.tenant_id == acme.id
                )
            )
        ).one()
        from_rollups = (
            await session.execute(
                select(
                    func.sum(UsageDailyRow.requests), func.sum(UsageDailyRow.prompt_tokens)
                ).where(UsageDailyRow.tenant_id == acme.id)
            )
        ).one()
    assert (int(from_events[0]), int(from_events[1])) == (27, 81)
    assert (int(from_rollups[0]), int(from_rollups[1])) == (27, 81)
