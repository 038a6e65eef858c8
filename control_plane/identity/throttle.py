"""Login throttling per account and per client address, safe under concurrent attempts.

Every login attempt first *reserves* a slot in two sliding windows — the account's (by
email) and the client address's — in one atomic step, and only then is the password
checked. When either window is full the attempt is refused (429 with ``Retry-After``)
without looking at the password, so N concurrent guesses evaluate at most the limit. A
successful login clears the account's window and gives back its slot in the address's.

Two stores with the same behaviour: in-process (the embedded default, one control plane)
and Redis (a sorted set per key, updated by one Lua script) when ``TENANTRY_REDIS_URL`` is
set, so every control-plane replica shares the counts. Other guessable attempts (pairing
codes sent to the platform bot) use the same windows under a namespace of their own
(:attr:`ThrottleLimits.namespace`).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from control_plane.errors import TooManyAttempts

Clock = Callable[[], float]
SWEEP_AT = 10_000
"""Windows the in-process throttle holds before it forgets the empty ones."""


@dataclass(frozen=True)
class ThrottleLimits:
    per_account: int = 5
    per_address: int = 20
    window: float = 900.0
    """Seconds an attempt counts."""
    namespace: str = "login"
    """What is being throttled; keeps the windows of different kinds of attempt apart."""


@dataclass(frozen=True)
class Reservation:
    """Slots taken by one attempt, to give back on success."""

    account_key: str
    address_key: str
    member: str


class LoginThrottle(Protocol):
    async def reserve(self, account: str, address: str) -> Reservation:
        """Take a slot for one attempt, or raise :class:`TooManyAttempts`."""

    async def succeeded(self, reservation: Reservation) -> None:
        """The attempt was right: clear the account's window, free the address's slot."""


def _keys(limits: ThrottleLimits, account: str, address: str) -> tuple[str, str]:
    prefix = f"tenantry:{limits.namespace}"
    return f"{prefix}:account:{account.lower()}", f"{prefix}:address:{address}"


def _refusal(retry_after: float) -> TooManyAttempts:
    return TooManyAttempts(
        "too many login attempts for this account or from this address; try again later",
        retry_after=max(1, math.ceil(retry_after)),
    )


class MemoryThrottle:
    def __init__(self, limits: ThrottleLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = asyncio.Lock()
        self._windows: dict[str, deque[tuple[float, str]]] = {}
        self._next_sweep = SWEEP_AT

    @property
    def tracked(self) -> int:
        """How many windows (accounts and addresses) are held in memory."""
        return len(self._windows)

    def _window(self, key: str, now: float) -> deque[tuple[float, str]]:
        window = self._windows.setdefault(key, deque())
        while window and now - window[0][0] >= self.limits.window:
            window.popleft()
        return window

    def _sweep(self, now: float) -> None:
        """Forget windows with no attempt left in them, so guessing at many made-up
        emails cannot grow memory without bound."""
        for key in list(self._windows):
            if not self._window(key, now):
                del self._windows[key]

    async def reserve(self, account: str, address: str) -> Reservation:
        account_key, address_key = _keys(self.limits, account, address)
        async with self._lock:
            now = self.clock()
            if len(self._windows) >= self._next_sweep:
                self._sweep(now)
                self._next_sweep = max(SWEEP_AT, 2 * len(self._windows))
            waits = []
            for key, limit in (
                (account_key, self.limits.per_account),
                (address_key, self.limits.per_address),
            ):
                window = self._window(key, now)
                if len(window) >= limit:
                    waits.append(window[0][0] + self.limits.window - now)
            if waits:
                raise _refusal(max(waits))
            member = secrets.token_hex(8)
            self._windows[account_key].append((now, member))
            self._windows[address_key].append((now, member))
            return Reservation(account_key, address_key, member)

    async def succeeded(self, reservation: Reservation) -> None:
        async with self._lock:
            self._windows.pop(reservation.account_key, None)
            window = self._windows.get(reservation.address_key)
            if window is not None:
                kept = [entry for entry in window if entry[1] != reservation.member]
                self._windows[reservation.address_key] = deque(kept)


# KEYS: account, address. ARGV: now, window, account limit, address limit, member.
# Returns 0 when reserved, else the seconds to wait.
_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limits = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limits[i] then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local left = tonumber(oldest[2]) + window - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[5])
  redis.call('EXPIRE', key, math.ceil(window))
end
return '0'
"""


class RedisThrottle:
    def __init__(self, redis: Any, limits: ThrottleLimits, clock: Clock = time.time) -> None:
        self.redis = redis
        self.limits = limits
        self.clock = clock
        self._script = redis.register_script(_RESERVE)

    async def reserve(self, account: str, address: str) -> Reservation:
        account_key, address_key = _keys(self.limits, account, address)
        member = secrets.token_hex(8)
        answer = await self._script(
            keys=[account_key, address_key],
            args=[
                self.clock(),
                self.limits.window,
                self.limits.per_account,
                self.limits.per_address,
                member,
            ],
        )
        wait = float(answer.decode() if isinstance(answer, bytes) else answer)
        if wait > 0:
            raise _refusal(wait)
        return Reservation(account_key, address_key, member)

    async def succeeded(self, reservation: Reservation) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(reservation.account_key)
            pipe.zrem(reservation.address_key, reservation.member)
            await pipe.execute()
