"""Running an aiogram bot, shared by the tenant's own bot (in its gateway) and the platform
bot (in the control plane): making it against a Bot API base, connecting with retries, and
long polling that confirms an update (the next ``getUpdates`` offset) only once it was
handled, so a crash loses nothing. aiogram is imported when a bot is made."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message"]


def make_bot(token: str, api_base: str) -> Bot:
    """A bot reaching the Bot API at ``api_base`` (``/bot<token>/<method>`` paths)."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    return Bot(token, session=session)


def backoff(failures: int, first: float, longest: float) -> float:
    return float(min(longest, first * 2.0 ** min(failures - 1, 16)))


async def connect(
    bot: Bot, setup: Callable[[Bot], Awaitable[None]], what: str, retry_max: float
) -> str | None:
    """``getMe``, then ``setup`` (registering or removing a webhook), until Telegram takes
    both; the bot's username."""
    from aiogram.exceptions import TelegramAPIError

    failures = 0
    while True:
        try:
            username = (await bot.get_me()).username
            await setup(bot)
        except TelegramAPIError as exc:
            failures += 1
            wait = backoff(failures, 2.0, retry_max)
            log.warning("%s: Telegram refused (%s); retry in %.0f s", what, exc, wait)
            await asyncio.sleep(wait)
        else:
            return username


async def poll(
    bot: Bot,
    handle: Callable[[Any], Awaitable[None]],
    what: str,
    *,
    timeout: int,
    retry_max: float,
    until_webhook: bool = False,
) -> None:
    """Long-poll until cancelled; each update is handed to ``handle`` in order and confirmed
    only after it returned. A failure fetches the same batch again after a backoff.
    ``until_webhook``: return once Telegram says a webhook is set (updates go there now)."""
    from aiogram.exceptions import TelegramConflictError, TelegramRetryAfter

    offset: int | None = None
    failures = 0
    while True:
        try:
            updates = await bot.get_updates(
                offset=offset,
                timeout=timeout,
                allowed_updates=ALLOWED_UPDATES,
                request_timeout=timeout + 10,
            )
            for update in updates:
                await handle(update)
                offset = update.update_id + 1
        except TelegramRetryAfter as exc:
            await asyncio.sleep(exc.retry_after)
        except Exception as exc:  # the batch is fetched again: nothing is lost
            conflict = isinstance(exc, TelegramConflictError) and "webhook" in exc.message.lower()
            if until_webhook and conflict:
                return
            failures += 1
            wait = backoff(failures, 1.0, retry_max)
            level = logging.WARNING if failures == 1 else logging.DEBUG
            log.log(level, "%s: polling failed (%s); retry in %.1f s", what, exc, wait)
            await asyncio.sleep(wait)
        else:
            failures = 0
