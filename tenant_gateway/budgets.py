"""The tenant's budgets and rates: reserved before a model call, settled after it.

Before a call the gateway reserves an *estimate* of its tokens (the prompt's characters / 4,
plus ``max_tokens`` or ``budget_completion_allowance``) and one request, in one atomic step,
against four limits of the plan (:class:`~tenant_gateway.contract.Budget`): tokens and
requests per calendar month (UTC), requests and tokens per clock minute. A limit already
reached refuses the call — ``429`` with ``Retry-After`` for a rate, ``402`` for a spent
monthly budget — naming the limit. After the call the reservation is *settled*: the estimate
is replaced by the tokens the provider reported (or, when it reported none, by an estimate of
what was streamed). A call is let in while its limit is not yet reached, so with estimates
that are not below the real usage, concurrent calls overshoot a budget by at most one call.

Two ledgers keep the counts: :class:`LocalLedger` in this process (the embedded default; its
monthly totals are written to ``budget.json`` on the tenant's volume about once a second, so
a restart keeps them), and :class:`RedisLedger`, one Lua script per step, shared by every
replica of the gateway (``TENANTRY_GATEWAY_REDIS_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tenant_gateway.contract import Budget
from tenant_gateway.settings import GatewayError

log = logging.getLogger(__name__)

BUDGET_FILE = "budget.json"
LIMITS = ("monthly_tokens", "monthly_requests", "requests_per_minute", "tokens_per_minute")
_WORDING = {
    "monthly_tokens": "monthly token budget",
    "monthly_requests": "monthly request budget",
    "requests_per_minute": "rate of requests per minute",
    "tokens_per_minute": "rate of tokens per minute",
}


class BudgetRefused(GatewayError):
    """A limit of the tenant's plan is reached; :attr:`limit` names it."""

    limit: str = ""
    retry_after: float | None = None


class RateLimited(BudgetRefused):
    status_code = 429
    problem = "rate-limited"
    title = "Rate limit reached"
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, limit: str, allowed: int, retry_after: float) -> None:
        super().__init__(
            f"the plan's {_WORDING[limit]} ({allowed}) is reached; "
            f"try again in {math.ceil(retry_after)}s"
        )
        self.limit = limit
        self.retry_after = retry_after


class BudgetSpent(BudgetRefused):
    problem = "budget-spent"
    status_code = 402
    title = "Budget spent"
    error_type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, limit: str, allowed: int, resets: str) -> None:
        super().__init__(
            f"the plan's {_WORDING[limit]} ({allowed}) is spent; it resets on {resets}"
        )
        self.limit = limit


# -- periods and estimates --------------------------------------------------------------------


def month_of(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m")


def next_month_start(now: float) -> str:
    day = datetime.datetime.fromtimestamp(now, datetime.UTC).date().replace(day=1)
    return (day + datetime.timedelta(days=32)).replace(day=1).isoformat()


def estimate_tokens(messages: list[dict[str, Any]], max_tokens: int | None, allowance: int) -> int:
    """Tokens a call may use: about a token per 4 characters of the prompt (and 4 per
    message), plus the completion's cap (``max_tokens``) or ``allowance``."""
    chars = sum(len(json.dumps(m.get("content"), ensure_ascii=False)) for m in messages)
    return math.ceil(chars / 4) + 4 * len(messages) + (max_tokens or allowance)


@dataclass(frozen=True)
class Reservation:
    """What a call holds of the budget until it is settled."""

    month: str
    minute: int
    estimate: int


class Ledger(Protocol):
    async def reserve(self, budget: Budget, estimate: int, now: float) -> Reservation:
        """Count one request and ``estimate`` tokens, or raise :class:`BudgetRefused`."""
        ...

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        """Replace the reservation's estimate by the ``tokens`` really used."""

    async def close(self) -> None: ...


def _refusal(limit: str, allowed: int, now: float) -> BudgetRefused:
    if limit.startswith("monthly"):
        return BudgetSpent(limit, allowed, next_month_start(now))
    return RateLimited(limit, allowed, 60.0 - now % 60.0)


# -- in this process -------------------------------------------------------------------------


class LocalLedger:
    """Counts in memory; monthly totals survive restarts in ``budget.json``."""

    def __init__(self, data_dir: Path | None, *, flush_interval: float = 1.0) -> None:
        self.path = None if data_dir is None else data_dir / BUDGET_FILE
        self.flush_interval = flush_interval
        self._month = ""
        self._tokens = 0
        self._requests = 0
        self._minutes: dict[int, list[int]] = {}
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            saved = json.loads(self.path.read_text())
            self._month = str(saved["month"])
            self._tokens, self._requests = int(saved["tokens"]), int(saved["requests"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("budget totals in %s unreadable (%s); counting from zero", self.path, exc)

    def _roll(self, now: float) -> tuple[str, int]:
        month, minute = month_of(now), int(now // 60)
        if month != self._month:
            self._month, self._tokens, self._requests = month, 0, 0
        for old in [m for m in self._minutes if m < minute - 1]:
            del self._minutes[old]
        return month, minute

    async def reserve(self, budget: Budget, estimate: int, now: float) -> Reservation:
        # No await between the checks and the counting: atomic for this event loop.
        month, minute = self._roll(now)
        window = self._minutes.setdefault(minute, [0, 0])
        current = {
            "monthly_tokens": self._tokens,
            "monthly_requests": self._requests,
            "requests_per_minute": window[0],
            "tokens_per_minute": window[1],
        }
        for limit in LIMITS:
            allowed = getattr(budget, limit)
            if allowed is not None and current[limit] >= allowed:
                raise _refusal(limit, allowed, now)
        self._tokens += estimate
        self._requests += 1
        window[0] += 1
        window[1] += estimate
        self._touch()
        return Reservation(month, minute, estimate)

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        change = tokens - reservation.estimate
        if reservation.month == self._month:
            self._tokens = max(0, self._tokens + change)
        window = self._minutes.get(reservation.minute)
        if window is not None:
            window[1] = max(0, window[1] + change)
        self._touch()

    def _touch(self) -> None:
        self._dirty = True
        if self.path is not None and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        if not self._dirty or self.path is None:
            return
        self._dirty = False
        saved = {"month": self._month, "tokens": self._tokens, "requests": self._requests}
        await asyncio.to_thread(_write_atomically, self.path, json.dumps(saved).encode())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()


def _write_atomically(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- shared through Redis --------------------------------------------------------------------

_RESERVE = """
-- KEYS: month tokens, month requests, minute requests, minute tokens
-- ARGV: estimate, then the four limits in the same order (-1: none), month ttl, minute ttl
local current = {}
for i = 1, 4 do
  current[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
local order = {1, 2, 3, 4}
for _, i in ipairs(order) do
  local allowed = tonumber(ARGV[i + 1])
  if allowed >= 0 and current[i] >= allowed then
    return i
  end
end
local estimate = tonumber(ARGV[1])
redis.call('INCRBY', KEYS[1], estimate)
redis.call('INCRBY', KEYS[2], 1)
redis.call('INCRBY', KEYS[3], 1)
redis.call('INCRBY', KEYS[4], estimate)
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[7])
redis.call('EXPIRE', KEYS[4], ARGV[7])
return 0
"""

_SETTLE = """
-- KEYS: month tokens, minute tokens; ARGV: change
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local value = redis.call('INCRBY', KEYS[i], ARGV[1])
    if value < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return 0
"""

_KEY_ORDER = ("monthly_tokens", "monthly_requests", "requests_per_minute", "tokens_per_minute")


class RedisLedger:
    """Counts in Redis, shared by every replica of the tenant's gateway."""

    def __init__(self, redis: Any, tenant_id: str) -> None:
        self.redis = redis
        self.prefix = f"tenantry:budget:{tenant_id}"
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def _keys(self, month: str, minute: int) -> list[str]:
        return [
            f"{self.prefix}:{month}:tokens",
            f"{self.prefix}:{month}:requests",
            f"{self.prefix}:minute:{minute}:requests",
            f"{self.prefix}:minute:{minute}:tokens",
        ]

    async def reserve(self, budget: Budget, estimate: int, now: float) -> Reservation:
        month, minute = month_of(now), int(now // 60)
        limits = [getattr(budget, name) for name in _KEY_ORDER]
        args = [estimate, *(-1 if v is None else v for v in limits), 40 * 86400, 120]
        refused = int(await self._reserve(keys=self._keys(month, minute), args=args))
        if refused:
            limit = _KEY_ORDER[refused - 1]
            allowed = limits[refused - 1]
            assert allowed is not None
            raise _refusal(limit, allowed, now)
        return Reservation(month, minute, estimate)

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        keys = self._keys(reservation.month, reservation.minute)
        await self._settle(keys=[keys[0], keys[3]], args=[tokens - reservation.estimate])

    async def close(self) -> None:
        await self.redis.aclose()


# -- what the chat service uses ----------------------------------------------------------------


class BudgetKeeper:
    """Reserves and settles against the bundle's budget (none: every call goes through)."""

    def __init__(
        self,
        budget: Callable[[], Budget | None],
        ledger: Ledger,
        *,
        allowance: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._budget = budget
        self.ledger = ledger
        self.allowance = allowance
        self._clock = clock
        self.observe_refusal: Callable[[str], None] | None = None
        """Told the name of the limit of every refused call; feeds the metrics."""

    async def reserve(
        self, messages: list[dict[str, Any]], max_tokens: int | None
    ) -> Reservation | None:
        budget = self._budget()
        if budget is None or all(getattr(budget, name) is None for name in LIMITS):
            return None
        estimate = estimate_tokens(messages, max_tokens, self.allowance)
        try:
            return await self.ledger.reserve(budget, estimate, self._clock())
        except BudgetRefused as exc:
            if self.observe_refusal is not None:
                self.observe_refusal(exc.limit)
            raise

    async def settle(self, reservation: Reservation | None, tokens: int | None) -> None:
        if reservation is None:
            return
        try:
            await self.ledger.settle(
                reservation, reservation.estimate if tokens is None else tokens
            )
        except Exception:
            log.exception("could not settle a budget reservation")

    async def close(self) -> None:
        await self.ledger.close()
