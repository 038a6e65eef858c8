"""The inbox's worker: answers pending messages and delivers the replies.

Two loops. The *dispatcher* reads pending messages in arrival order and starts a turn for
the oldest message of each lane (session) that has none running, up to ``concurrency``
lanes at once; a finished turn stores its reply and marks the message done in one
transaction, then wakes both loops. A turn that fails (not a refusal the assistant answers
politely, but a store that cannot be written, a bug) leaves its message pending and its
lane held for a backoff before it is tried again, so later messages of that session never
overtake it.

The *deliverer* hands unsent replies, oldest first, to the :class:`~tenant_gateway.channels.
outlets.Outlets` and marks each sent only after its outlet returned; a channel whose outlet
fails is tried again after a backoff (doubling up to ``retry_max``), so replies are delivered
at least once and in order per channel, and one channel that is down does not hold up the
replies of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tenant_gateway.channels.contract import InboundMessage, OutboundReply
from tenant_gateway.channels.inbox import Inbox, PendingMessage
from tenant_gateway.channels.outlets import NoOutlet, Outlets, ReplySink
from tenant_gateway.settings import ChannelSettings

log = logging.getLogger(__name__)

__all__ = ["Backoff", "InboxWorker", "ReplySink", "Turn"]

Turn = Callable[[InboundMessage], Awaitable[str | None]]
"""The reply text to a message, or None when it gets none."""


class Backoff:
    """Waits that double from ``initial`` to ``longest``; :meth:`reset` after a success."""

    def __init__(self, initial: float, longest: float) -> None:
        self._initial = initial
        self._longest = longest
        self._next = initial

    def next(self) -> float:
        wait, self._next = self._next, min(self._next * 2, self._longest)
        return wait

    def reset(self) -> None:
        self._next = self._initial


class InboxWorker:
    """Runs the dispatcher and the deliverer, from :meth:`start`."""

    def __init__(
        self, inbox: Inbox, turn: Turn, outlets: Outlets, settings: ChannelSettings
    ) -> None:
        self._inbox = inbox
        self._turn = turn
        self._outlets = outlets
        self._settings = settings
        self._busy: set[str] = set()
        self._turns: set[asyncio.Task[None]] = set()
        self._work = asyncio.Event()
        self._outgoing = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._loops.append(asyncio.create_task(self._dispatch(), name="inbox-dispatcher"))
        self._loops.append(asyncio.create_task(self._deliver(), name="reply-deliverer"))

    def wake(self) -> None:
        """A message was accepted."""
        self._work.set()

    def outlets_changed(self) -> None:
        """An outlet was registered: replies waiting for it may go now."""
        self._outgoing.set()

    async def stop(self) -> None:
        tasks = [*self._loops, *self._turns]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()

    async def _dispatch(self) -> None:
        while True:
            self._work.clear()
            try:
                pending = await self._inbox.pending()
            except Exception:
                log.exception("cannot read the inbox")
                await asyncio.sleep(self._settings.retry_initial)
                continue
            for item in pending:
                if len(self._busy) >= self._settings.concurrency:
                    break
                if item.lane not in self._busy:
                    self._busy.add(item.lane)
                    task = asyncio.create_task(self._answer(item), name="channel-turn")
                    self._turns.add(task)
                    task.add_done_callback(self._turns.discard)
            await self._work.wait()

    async def _answer(self, item: PendingMessage) -> None:
        try:
            await self._answer_once(item)
        finally:
            self._busy.discard(item.lane)
            self._work.set()

    async def _answer_once(self, item: PendingMessage) -> None:
        backoff = Backoff(self._settings.retry_initial, self._settings.retry_max)
        message = item.message
        while True:
            try:
                async with self._outlets.working(message):
                    text = await self._turn(message)
                reply = None
                if text is not None:
                    reply = OutboundReply(
                        channel=message.channel,
                        chat_id=message.chat_id,
                        text=text,
                        in_reply_to=message.message_id,
                    )
                await self._inbox.complete(item.seq, reply)
            except Exception:
                log.exception("channel message %s failed; trying again", message.message_id)
                await asyncio.sleep(backoff.next())
                continue
            if reply is not None:
                self._outgoing.set()
            return

    async def _deliver(self) -> None:
        backoff = Backoff(self._settings.retry_initial, self._settings.retry_max)
        while True:
            self._outgoing.clear()
            failed: set[str] = set()
            try:
                unsent = await self._inbox.unsent()
            except Exception:
                log.exception("cannot read the outbox")
                await asyncio.sleep(backoff.next())
                continue
            for item in unsent:
                channel = item.reply.channel
                if channel in failed:
                    continue  # its earlier reply goes first
                try:
                    await self._outlets.send(item.reply)
                    await self._inbox.mark_sent(item.seq)
                except NoOutlet:
                    failed.add(channel)  # waits quietly for its adapter to start
                except Exception as exc:
                    failed.add(channel)
                    log.warning("a %s reply was not delivered (%s); trying again", channel, exc)
            if failed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outgoing.wait(), backoff.next())
                continue
            backoff.reset()
            if not unsent:
                await self._outgoing.wait()
