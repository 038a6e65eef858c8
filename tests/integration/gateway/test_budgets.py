"""Budgets and rates of the tenant's plan, through a real gateway and a real upstream double,
counted in the gateway's process and in a real Redis shared by replicas."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import redis.asyncio

from tenant_gateway.budgets import BUDGET_FILE, BudgetRefused, RedisLedger, estimate_tokens
from tenant_gateway.contract import Budget
from tests.doubles.openai_upstream import OpenAIUpstream
from tests.integration.gateway.conftest import GatewayFactory
from tests.waiting import eventually

TEXT = "hello"
PER_CALL = 3
"""Tokens the double reports for a call saying TEXT: 1 prompt word, 2 completion words."""
MAX_TOKENS = 2
"""The cap each call sets; the double's two-word answer stays within it."""
ROOM = 10


def chat_body() -> dict[str, Any]:
    return {
        "model": "stub-model",
        "messages": [{"role": "user", "content": TEXT}],
        "max_tokens": MAX_TOKENS,
    }


async def fire(url: str, key: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=60
    ) as client:
        return await asyncio.gather(
            *(client.post("/v1/chat/completions", json=chat_body()) for _ in range(count))
        )


def served_tokens(upstream: OpenAIUpstream) -> int:
    return len(upstream.requests_to("/v1/chat/completions")) * PER_CALL


def check_spent(responses: list[httpx.Response], upstream: OpenAIUpstream) -> None:
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    for response in ok:
        assert response.json()["usage"]["total_tokens"] == PER_CALL
    assert {r.status_code for r in refused} == {402}, {r.status_code for r in refused}
    problem = refused[0].json()
    assert problem["type"].endswith("/budget-spent")
    assert "monthly token budget" in problem["detail"]
    assert problem["error"]["code"] == "insufficient_quota"
    limit = ROOM * PER_CALL
    assert served_tokens(upstream) <= limit + PER_CALL, "overshoot of at most one call"
    estimate = estimate_tokens(chat_body()["messages"], MAX_TOKENS, 0)
    assert len(ok) >= -(-limit // estimate), "the budget's room is used, not refused early"


async def test_concurrent_calls_overshoot_the_budget_by_at_most_one_call(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream
) -> None:
    budget = Budget(monthly_tokens=ROOM * PER_CALL)
    with gateway_factory(platform_models_url=upstream.url, budget=budget) as gw:
        responses = await fire(gw.url, gw.key, 100)
        check_spent(responses, upstream)

        async def saved() -> dict[str, Any] | None:
            path = gw.data_dir / BUDGET_FILE
            totals: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
            return totals if totals.get("tokens") == served_tokens(upstream) else None

        # The monthly total, settled to what was used, is kept on the volume.
        totals = await eventually(saved, timeout=10, what="budget totals on the volume")
    assert totals["requests"] == len([r for r in responses if r.status_code == 200])


async def test_concurrent_calls_through_redis_shared_by_two_replicas(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream, redis_url: str
) -> None:
    budget = Budget(monthly_tokens=ROOM * PER_CALL)
    env = {"TENANTRY_GATEWAY_REDIS_URL": redis_url}
    with (
        gateway_factory(platform_models_url=upstream.url, budget=budget, env=env) as one,
        gateway_factory(platform_models_url=upstream.url, budget=budget, env=env) as two,
    ):
        responses = await asyncio.gather(fire(one.url, one.key, 50), fire(two.url, two.key, 50))
        check_spent([*responses[0], *responses[1]], upstream)


async def test_the_rate_per_minute_answers_429_with_retry_after(
    gateway_factory: GatewayFactory, upstream: OpenAIUpstream
) -> None:
    with gateway_factory(
        platform_models_url=upstream.url, budget=Budget(requests_per_minute=3)
    ) as gw:
        async with gw.client() as client:
            # Seven calls in a row: at most one minute boundary falls among them, so at
            # most six get through and a refusal must come.
            responses = [
                await client.post("/v1/chat/completions", json=chat_body()) for _ in range(7)
            ]
            metrics = (await client.get("/metrics")).text
    codes = [r.status_code for r in responses]
    assert 429 in codes, codes
    assert set(codes) == {200, 429}
    limited = responses[codes.index(429)]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    problem = limited.json()
    assert "requests per minute (3)" in problem["detail"]
    assert problem["error"]["type"] == "rate_limit_error"
    refusals = codes.count(429)
    assert (
        f'tenant_gateway_budget_refusals_total{{limit="requests_per_minute"}} {refusals:.1f}'
        in metrics
    )


async def test_a_redis_ledger_reservation_is_atomic_and_settles_to_the_real_usage(
    redis_url: str,
) -> None:
    client = redis.asyncio.from_url(redis_url)
    ledger = RedisLedger(client, "tenant-atomic")
    budget = Budget(monthly_tokens=100)
    now = 1_800_000_000.0
    results = await asyncio.gather(
        *(ledger.reserve(budget, 10, now) for _ in range(50)), return_exceptions=True
    )
    reservations = [r for r in results if not isinstance(r, BaseException)]
    refusals = [r for r in results if isinstance(r, BudgetRefused)]
    assert len(reservations) == 10, "exactly the room, reserved atomically"
    assert len(refusals) == 40
    for reservation in reservations:
        await ledger.settle(reservation, 4)
    used = int(await client.get(f"tenantry:budget:tenant-atomic:{reservations[0].month}:tokens"))
    assert used == 40
    await ledger.close()
