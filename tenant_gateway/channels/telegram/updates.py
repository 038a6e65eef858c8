"""Reading Telegram messages, shared by the tenant's own bot and the platform bot (the
control plane imports this module: it imports neither aiogram nor the rest of the gateway)."""

from __future__ import annotations

import re
from typing import Any


def mentions(message: Any, bot_id: int | None, username: str | None) -> bool:
    """An aiogram ``Message`` names the bot (``@username`` as a whole word: not
    ``@username_helper``, another bot) or replies to one of its messages."""
    replied = message.reply_to_message
    author = replied.from_user if replied is not None else None
    to_bot = author is not None and bot_id is not None and author.id == bot_id
    if to_bot or not username:
        return to_bot
    named = re.compile(rf"(?<![\w@])@{re.escape(username)}(?!\w)", re.IGNORECASE)
    return named.search(message.text or "") is not None


def command(text: str, username: str | None) -> str | None:
    """``/start`` for ``/start …`` or ``/start@thisbot …``; None for text that is not a
    command, or a command addressed to another bot."""
    word = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    if not word.startswith("/"):
        return None
    name, _, addressee = word.partition("@")
    if addressee and username and addressee.lower() != username.lower():
        return None
    return name.lower()
