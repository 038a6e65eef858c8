"""Usage events from call records, and the ids that make their delivery idempotent.

Ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits, so they sort
by time and no two gateways (or two lives of one gateway) make the same one.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from tenant_gateway.chat import CallRecord
from tenant_gateway.contract import UsageEvent


def new_event_id(now_ms: int | None = None) -> str:
    """A new UUIDv7, as its canonical string."""
    millis = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    hex_ = f"{value:032x}"
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


def usage_event(call: CallRecord, tenant_id: str, at: datetime | None = None) -> UsageEvent:
    """The usage event of one finished call of ``tenant_id``'s gateway."""
    return UsageEvent(
        id=new_event_id(),
        tenant_id=tenant_id,
        at=at or datetime.now(UTC),
        model=call.model[:256],
        provider=call.provider,
        byok=call.byok,
        stream=call.stream,
        outcome=call.outcome,
        prompt_tokens=_tokens(call.prompt_tokens),
        completion_tokens=_tokens(call.completion_tokens),
        latency=max(0.0, call.latency),
        time_to_first_token=(
            None if call.time_to_first_token is None else max(0.0, call.time_to_first_token)
        ),
    )


def _tokens(count: int | None) -> int | None:
    # A provider reporting nonsense must not make the event undeliverable.
    return None if count is None or count < 0 else count
