"""The in-process login throttle as data: sliding windows per account and per address, a
Retry-After that counts down with the clock, and memory that does not grow without bound.
(The same behaviour against Redis: tests/integration/identity/test_throttle_stores.py.)"""

from __future__ import annotations

import pytest

from control_plane.errors import TooManyAttempts
from control_plane.identity import throttle as throttle_module
from control_plane.identity.throttle import MemoryThrottle, ThrottleLimits


class Seconds:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_retry_after_is_the_time_until_the_oldest_attempt_expires() -> None:
    clock = Seconds()
    throttle = MemoryThrottle(ThrottleLimits(per_account=2, per_address=10, window=60), clock)
    await throttle.reserve("ann@example.com", "10.0.0.1")
    clock.now += 20
    await throttle.reserve("ANN@example.com", "10.0.0.2")
    clock.now += 10
    with pytest.raises(TooManyAttempts) as refused:
        await throttle.reserve("ann@example.com", "10.0.0.3")
    assert refused.value.retry_after == 30
    clock.now += 30
    await throttle.reserve("ann@example.com", "10.0.0.3")  # the oldest attempt has expired


async def test_success_clears_the_account_and_frees_only_its_own_address_slot() -> None:
    clock = Seconds()
    throttle = MemoryThrottle(ThrottleLimits(per_account=2, per_address=2, window=60), clock)
    await throttle.reserve("bob@example.com", "10.0.0.1")
    mine = await throttle.reserve("ann@example.com", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        await throttle.reserve("carl@example.com", "10.0.0.1")
    await throttle.succeeded(mine)
    await throttle.reserve("carl@example.com", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        await throttle.reserve("dora@example.com", "10.0.0.1")  # bob's and carl's still count


async def test_empty_windows_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle_module, "SWEEP_AT", 10)
    clock = Seconds()
    throttle = MemoryThrottle(ThrottleLimits(window=60), clock)
    for n in range(5):
        await throttle.reserve(f"made-up-{n}@example.com", f"10.0.0.{n}")
    assert throttle.tracked == 10
    clock.now += 61
    await throttle.reserve("late@example.com", "10.0.1.1")
    assert throttle.tracked == 2
