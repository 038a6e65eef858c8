"""The gateway's meter: the call observer that turns call records into stored usage events,
and the background delivery of those events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from tenant_gateway.chat import CallRecord
from tenant_gateway.contract import GatewayBundle
from tenant_gateway.metering.delivery import DeliveryFailed, UsageDelivery
from tenant_gateway.metering.events import usage_event
from tenant_gateway.metering.outbox import OutboxError, UsageOutbox
from tenant_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

FINAL_DELIVERY_TIMEOUT = 2.0
"""Seconds a stopping gateway spends trying to deliver what is left (the rest waits in the
outbox for its next start)."""


class UsageMeter:
    """Open with :meth:`open`, :meth:`start` delivery once the bundle is known, :meth:`close`
    when stopping. :meth:`observe` is the chat service's call observer."""

    def __init__(self, path: Path, settings: GatewaySettings) -> None:
        self.settings = settings
        self.outbox = UsageOutbox(path)
        self.delivery: UsageDelivery | None = None
        self._bundle: Callable[[], GatewayBundle] | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.outbox.open()

    def start(self, bundle: Callable[[], GatewayBundle], identity_dir: Path) -> None:
        """Start delivering (what a previous life of the gateway left in the outbox first)."""
        self._bundle = bundle
        self.delivery = UsageDelivery(self.outbox, self.settings, bundle, identity_dir)
        self.outbox.on_stored = self.delivery.stored
        self.delivery.deliver_soon()  # what a previous life left needs no interval to pass
        self._task = asyncio.get_running_loop().create_task(
            self.delivery.run(), name="usage-delivery"
        )

    def observe(self, call: CallRecord) -> None:
        """Queue the usage event of a finished call (no I/O: the outbox's writer commits it)."""
        if self._bundle is None:
            log.error("a call ended before metering started; its usage is not recorded")
            return
        try:
            self.outbox.add(usage_event(call, self._bundle().tenant_id))
        except (OutboxError, RuntimeError):  # closed, or no event loop: the process stops
            log.error("a call ended after the usage outbox closed; its usage is not recorded")

    async def persisted(self) -> None:
        """Wait until every event observed so far is committed to the outbox."""
        await self.outbox.persisted()

    async def close(self) -> None:
        """Stop delivering, try once more to deliver what is left, and close the outbox."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.outbox.persisted()
        if self.delivery is not None:
            try:
                await asyncio.wait_for(
                    self.delivery.deliver_pending(), timeout=FINAL_DELIVERY_TIMEOUT
                )
            except (DeliveryFailed, TimeoutError) as exc:
                left = await self.outbox.count()
                log.warning("%d usage events wait in the outbox for the next start (%s)", left, exc)
            await self.delivery.close()
        await self.outbox.close()
