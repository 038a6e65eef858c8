"""When a session ends on its own: the reset policies, as pure functions of time.

* **idle timeout**: a session whose last turn is older than ``idle_timeout`` seconds is over;
* **daily reset**: a session last active before the most recent ``daily_hour``:00 in
  ``timezone`` is over (a daily reset at 4 in Europe/Berlin starts each morning afresh);
* an explicit reset (the ``/reset`` command) is not a policy: the store ends the session
  when asked.

Whichever applies first ends the session; the next message starts a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

EndReason = Literal["idle", "daily", "reset"]


@dataclass(frozen=True)
class ResetPolicy:
    """How long sessions live; ``None`` switches a policy off."""

    idle_timeout: float | None = None
    """Seconds without a turn after which a session is over."""
    daily_hour: int | None = 4
    """Hour of the day (0-23, in :attr:`timezone`) at which every session is over."""
    timezone: str = "UTC"
    """IANA name of the time zone of :attr:`daily_hour`."""


def last_daily_reset(now: float, hour: int, timezone: str) -> float:
    """The most recent moment, at or before ``now``, when the clock in ``timezone`` read
    ``hour``:00 (a Unix time)."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, zone)
    boundary = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if boundary > local:
        boundary = (boundary - timedelta(days=1)).replace(hour=hour)
    return boundary.timestamp()


def expiry(policy: ResetPolicy, last_active_at: float, now: float) -> EndReason | None:
    """Why a session last active at ``last_active_at`` is over at ``now``, or None."""
    if policy.idle_timeout is not None and now - last_active_at > policy.idle_timeout:
        return "idle"
    if policy.daily_hour is not None and last_active_at < last_daily_reset(
        now, policy.daily_hour, policy.timezone
    ):
        return "daily"
    return None
