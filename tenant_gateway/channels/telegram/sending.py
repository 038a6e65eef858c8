"""Sending a piece of a reply with aiogram, shared by the tenant's own bot and the platform
bot: the Markdown rendered as Telegram HTML, again as plain text if Telegram cannot parse it.
Replies are cut into pieces of at most ``TEXT_LIMIT`` UTF-16 code units first. aiogram is
imported when a piece is sent."""

from __future__ import annotations

import logging
from typing import Any

from tenant_gateway.channels.telegram.markup import to_html

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096


async def send_piece(bot: Any, chat_id: int | str, piece: str) -> None:
    """Send ``piece`` to ``chat_id`` with the aiogram ``bot``; aiogram's errors propagate."""
    from aiogram.exceptions import TelegramBadRequest

    try:
        await bot.send_message(chat_id, to_html(piece), parse_mode="HTML")
    except TelegramBadRequest as exc:
        if "parse entities" not in exc.message and "too long" not in exc.message:
            raise
        log.info("Telegram refused the formatting (%s); sent as plain text", exc.message)
        await bot.send_message(chat_id, piece)
