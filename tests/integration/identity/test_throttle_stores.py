"""Both login-throttle stores behave alike: the in-process one and the Redis one (a real
server) reserve atomically under concurrency, count down Retry-After with the clock, and give
slots back on success."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from control_plane.errors import TooManyAttempts
from control_plane.identity.throttle import (
    LoginThrottle,
    MemoryThrottle,
    RedisThrottle,
    Reservation,
    ThrottleLimits,
)

LIMITS = ThrottleLimits(per_account=5, per_address=8, window=60)


class Seconds:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[LoginThrottle, Seconds]]:
    clock = Seconds()
    if request.param == "memory":
        yield MemoryThrottle(LIMITS, clock), clock
        return
    client = redis.asyncio.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisThrottle(client, LIMITS, clock), clock
    finally:
        await client.aclose()


async def outcome(throttle: LoginThrottle, account: str, address: str) -> Reservation | int:
    """The reservation, or the Retry-After of the refusal."""
    try:
        return await throttle.reserve(account, address)
    except TooManyAttempts as refused:
        return refused.retry_after


async def test_concurrent_reservations_never_exceed_the_limit(
    store: tuple[LoginThrottle, Seconds],
) -> None:
    throttle, _ = store
    outcomes = await asyncio.gather(
        *(outcome(throttle, "ann@example.com", f"10.0.0.{n}") for n in range(50))
    )
    assert sum(isinstance(o, Reservation) for o in outcomes) == 5
    assert [o for o in outcomes if not isinstance(o, Reservation)] == [60] * 45

    per_address = await asyncio.gather(
        *(outcome(throttle, f"user{n}@example.com", "10.9.9.9") for n in range(50))
    )
    assert sum(isinstance(o, Reservation) for o in per_address) == 8


async def test_retry_after_counts_down_and_the_window_slides(
    store: tuple[LoginThrottle, Seconds],
) -> None:
    throttle, clock = store
    for _ in range(5):  # at 0, 10, 20, 30 and 40 seconds
        await throttle.reserve("ann@example.com", "10.0.0.1")
        clock.now += 10
    assert await outcome(throttle, "ann@example.com", "10.0.0.1") == 10
    clock.now += 5
    assert await outcome(throttle, "ann@example.com", "10.0.0.1") == 5
    clock.now += 5
    assert isinstance(await outcome(throttle, "ann@example.com", "10.0.0.1"), Reservation)


async def test_success_clears_the_account_and_returns_the_address_slot(
    store: tuple[LoginThrottle, Seconds],
) -> None:
    throttle, _ = store
    for _ in range(4):
        await throttle.reserve("ann@example.com", "10.0.0.1")
    right = await throttle.reserve("ann@example.com", "10.0.0.1")
    assert isinstance(await outcome(throttle, "ann@example.com", "10.0.0.1"), int)
    await throttle.succeeded(right)
    for _ in range(3):
        await throttle.reserve("ann@example.com", "10.0.0.1")  # the account starts afresh
    # The address keeps its four failed attempts plus these three: one slot is left.
    await throttle.reserve("bob@example.com", "10.0.0.1")
    assert isinstance(await outcome(throttle, "carl@example.com", "10.0.0.1"), int)
