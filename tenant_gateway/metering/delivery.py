"""Delivery of the usage outbox to the control plane, in batches, at least once.

A batch (the oldest ``usage_batch_size`` events) is sent when that many are waiting, or
``usage_flush_interval`` seconds after the last delivery, whichever comes first, to
``POST {control_plane_url}USAGE_PATH`` with the identity token beside the bundle. Its events
leave the outbox only after the control plane answered 200 (it has stored them, or had
before); any other outcome leaves them where they are, and delivery is tried again after a
wait that doubles from ``usage_retry_initial`` up to ``usage_retry_max`` seconds (with
jitter), so an unreachable control plane is not hammered. A batch refused as malformed
(400 or 422) is sent again one event at a time, and only the events refused on their own
are set aside, so one bad event cannot hold back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from tenant_gateway.contract import USAGE_PATH, GatewayBundle, UsageReceipt
from tenant_gateway.control_link import ControlPlaneLink, ControlPlaneUnreachable, problem_detail
from tenant_gateway.metering.outbox import OutboxEntry, UsageOutbox
from tenant_gateway.redaction import SECRET_VALUES, SecretValues
from tenant_gateway.settings import GatewayError, GatewaySettings

log = logging.getLogger(__name__)

MALFORMED = frozenset({400, 422})
"""Answers meaning the control plane will never take these events as they are."""


class DeliveryFailed(GatewayError):
    """A batch could not be handed to the control plane this time; it stays in the outbox."""

    status_code = 503
    problem = "usage-delivery-failed"
    title = "Usage delivery failed"
    code = "usage_delivery_failed"


def backoff(failures: int, initial: float, longest: float) -> float:
    """The wait before the next attempt after ``failures`` failures in a row: ``initial``
    doubled each time, at most ``longest``, less up to half of it at random (so gateways
    that lost the control plane together do not come back together)."""
    ceiling = min(longest, initial * 2.0 ** min(failures - 1, 32))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)


class UsageDelivery:
    """Sends the outbox's events to the control plane; :meth:`run` until cancelled."""

    def __init__(
        self,
        outbox: UsageOutbox,
        settings: GatewaySettings,
        bundle: Callable[[], GatewayBundle],
        identity_dir: Path,
        *,
        secret_values: SecretValues = SECRET_VALUES,
    ) -> None:
        self.outbox = outbox
        self.batch_size = settings.usage_batch_size
        self.interval = settings.usage_flush_interval
        self.retry_initial = settings.usage_retry_initial
        self.retry_max = settings.usage_retry_max
        self.timeout = settings.usage_delivery_timeout
        self._link = ControlPlaneLink(
            bundle,
            identity_dir,
            self.timeout,
            secret_values=secret_values,
            purpose="deliver usage to",
        )
        self._waiting = 0
        """Events stored since the last delivery (a hint: the outbox is the truth)."""
        self._batch_ready = asyncio.Event()
        self.failures = 0
        """Delivery attempts failed in a row."""
        self.delivered = 0
        """Events the control plane has acknowledged over this process's life."""

    def stored(self, count: int) -> None:
        """The outbox committed ``count`` events; a full batch is sent without waiting."""
        self._waiting += count
        if self._waiting >= self.batch_size:
            self._batch_ready.set()

    def deliver_soon(self) -> None:
        """Deliver without waiting for the interval (unless backing off)."""
        self._batch_ready.set()

    async def run(self) -> None:
        """Deliver whenever a batch is full or the interval has passed; back off on failure."""
        while True:
            if self.failures:
                await asyncio.sleep(self.backoff(self.failures))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), timeout=self.interval)
            try:
                await self.deliver_pending()
            except DeliveryFailed as exc:
                self.failures += 1
                # Said once per outage; the attempts after it are logged at debug level.
                level = logging.WARNING if self.failures == 1 else logging.DEBUG
                log.log(level, "usage delivery failed, retrying with backoff: %s", exc.detail)
            else:
                if self.failures:
                    log.info("usage delivered again after %d failed attempts", self.failures)
                self.failures = 0

    def backoff(self, failures: int) -> float:
        return backoff(failures, self.retry_initial, self.retry_max)

    async def deliver_pending(self) -> int:
        """Send every stored event, oldest first, a batch at a time; the number acknowledged.
        Raises :class:`DeliveryFailed` at the first batch the control plane did not take."""
        self._batch_ready.clear()
        self._waiting = 0
        delivered = 0
        while True:
            entries = await self.outbox.oldest(self.batch_size)
            if not entries:
                return delivered
            delivered += await self._deliver(entries)
            if len(entries) < self.batch_size:
                return delivered

    async def _deliver(self, entries: Sequence[OutboxEntry]) -> int:
        status, detail = await self._post(entries)
        if status == 200:
            await self.outbox.remove(entries)
            self.delivered += len(entries)
            return len(entries)
        if status not in MALFORMED:
            raise DeliveryFailed(f"the control plane answered {status}: {detail}")
        if len(entries) > 1:
            return sum([await self._deliver([entry]) for entry in entries])
        log.error(
            "usage event %s set aside, refused by the control plane: %s",
            entries[0].event_id,
            detail,
        )
        await self.outbox.set_aside(entries, f"{status}: {detail}")
        return 0

    async def _post(self, entries: Sequence[OutboxEntry]) -> tuple[int, str]:
        # The outbox keeps each event as its JSON: the batch is put together without decoding.
        body = b'{"events":[' + b",".join(e.event for e in entries) + b"]}"
        try:
            response = await self._link.post(USAGE_PATH, body)
        except ControlPlaneUnreachable as exc:
            raise DeliveryFailed(str(exc)) from None
        if response.status_code == 200:
            try:
                msgspec.json.decode(response.content, type=UsageReceipt)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise DeliveryFailed("the control plane's receipt was not understood") from None
        return response.status_code, problem_detail(response)

    async def close(self) -> None:
        await self._link.close()
