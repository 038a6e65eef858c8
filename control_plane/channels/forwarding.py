"""Handing platform-bot messages to tenants' gateways, in order per tenant, losing none.

A message for a tenant with nothing waiting goes straight to its gateway
(:meth:`GatewayLink.deliver`: stored in the gateway's inbox once answered 2xx). When the
gateway cannot take it (not running, restarting, not answering), the message is kept in
``platform_inbound`` instead, and so is every later message of that tenant until the backlog
is through, so a chat's messages reach the gateway in the order they came. A background
loop retries each tenant with a backlog, oldest message first, after a wait that doubles up
to ``retry_max`` seconds, and removes a message only once the gateway took it; the gateway
ignores a message id it has seen, so a retry after a crash between the two is harmless.

:meth:`Forwarder.submit` returns once the message is delivered or kept: only then may the
bot confirm the update to Telegram (the next ``getUpdates`` offset, or the webhook's 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
from sqlalchemy import delete, select

from control_plane.channels.gateways import GatewayLink
from control_plane.db.engine import Database
from control_plane.db.models import PlatformInboundRow
from control_plane.db.values import utcnow
from control_plane.errors import GatewayUnavailable, NotFoundError
from tenant_gateway.channels.contract import InboundMessage

log = logging.getLogger(__name__)

BATCH = 50
"""Kept messages read per round trip to the database."""
LOOK_EVERY = 30.0
"""Seconds between looks for messages kept by another replica (or one that stopped)."""


class Forwarder:
    """:meth:`start` loads the tenants with kept messages and starts the retry loop."""

    def __init__(
        self,
        db: Database,
        link: GatewayLink,
        *,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
    ) -> None:
        self.db = db
        self.link = link
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._due: dict[str, float] = {}
        """Tenants with kept messages, and when to try their gateway next (monotonic)."""
        self._failures: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        """Messages the gateways took over this process's life (direct or kept)."""

    @property
    def backlog(self) -> frozenset[str]:
        """The tenants whose messages are waiting for their gateway."""
        return frozenset(self._due)

    async def start(self) -> None:
        found = await self._look_for_kept()
        if found:
            log.info("platform bot: messages of %d tenants wait for their gateway", found)
        self._task = asyncio.create_task(self._run(), name="platform-bot forwarding")

    async def _look_for_kept(self) -> int:
        """Add the tenants with kept messages to the backlog (another replica, or this one
        before a restart, may have kept them); how many there are."""
        async with self.db.transaction(platform="find platform-bot messages to forward") as s:
            waiting = list(await s.scalars(select(PlatformInboundRow.tenant_id).distinct()))
        now = time.monotonic()
        for tenant_id in waiting:
            self._due.setdefault(tenant_id, now)
        return len(waiting)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, tenant_id: str, message: InboundMessage) -> None:
        """Deliver ``message`` or keep it for later; raises only if it could do neither."""
        if tenant_id not in self._due:
            try:
                await self.link.deliver(tenant_id, message)
            except GatewayUnavailable as exc:
                log.info("platform bot: keeping a message for tenant %s: %s", tenant_id, exc)
            except NotFoundError:
                log.warning("platform bot: dropped a message for missing tenant %s", tenant_id)
                return
            else:
                self.delivered += 1
                return
        await self.keep(tenant_id, message)

    async def keep(self, tenant_id: str, message: InboundMessage) -> None:
        """Store ``message`` until the tenant's gateway takes it."""
        async with self.db.transaction(tenant=tenant_id) as session:
            session.add(
                PlatformInboundRow(
                    tenant_id=tenant_id,
                    message=msgspec.json.encode(message),
                    created_at=utcnow(),
                )
            )
        if tenant_id not in self._due:
            self._due[tenant_id] = time.monotonic() + self.retry_initial
            self._wake.set()

    async def _run(self) -> None:
        next_look = time.monotonic() + LOOK_EVERY
        while True:
            now = time.monotonic()
            if now >= next_look:
                next_look = now + LOOK_EVERY
                with contextlib.suppress(Exception):  # the database may be away a while
                    await self._look_for_kept()
            for tenant_id, due in list(self._due.items()):
                if due <= now:
                    await self._forward_kept(tenant_id)
            self._wake.clear()
            wait = min([*self._due.values(), next_look]) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.0))

    async def _forward_kept(self, tenant_id: str) -> None:
        """Deliver the tenant's kept messages, oldest first; on a failure, back off."""
        try:
            while True:
                async with self.db.transaction(tenant=tenant_id) as session:
                    rows = (
                        await session.execute(
                            select(PlatformInboundRow.id, PlatformInboundRow.message)
                            .where(PlatformInboundRow.tenant_id == tenant_id)
                            .order_by(PlatformInboundRow.id)
                            .limit(BATCH)
                        )
                    ).all()
                if not rows:
                    break
                for row_id, raw in rows:
                    await self._deliver_kept(tenant_id, row_id, raw)
        except GatewayUnavailable as exc:
            failures = self._failures.get(tenant_id, 0) + 1
            self._failures[tenant_id] = failures
            wait = min(self.retry_max, self.retry_initial * 2.0 ** min(failures - 1, 32))
            self._due[tenant_id] = time.monotonic() + wait
            level = logging.INFO if failures == 1 else logging.DEBUG
            log.log(
                level, "platform bot: tenant %s's gateway still unavailable: %s", tenant_id, exc
            )
            return
        except Exception:
            log.exception("platform bot: forwarding kept messages of tenant %s failed", tenant_id)
            self._due[tenant_id] = time.monotonic() + self.retry_max
            return
        self._due.pop(tenant_id, None)
        self._failures.pop(tenant_id, None)
        log.info("platform bot: forwarded the kept messages of tenant %s", tenant_id)

    async def _deliver_kept(self, tenant_id: str, row_id: int, raw: bytes) -> None:
        try:
            message = msgspec.json.decode(raw, type=InboundMessage)
            await self.link.deliver(tenant_id, message)
        except NotFoundError:
            log.warning("platform bot: dropped a kept message of missing tenant %s", tenant_id)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.error("platform bot: dropped an unreadable kept message %d", row_id)
        else:
            self.delivered += 1
        async with self.db.transaction(tenant=tenant_id) as session:
            await session.execute(delete(PlatformInboundRow).where(PlatformInboundRow.id == row_id))
