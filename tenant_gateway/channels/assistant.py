"""One assistant turn: what the tenant's assistant answers to one channel message.

* ``/reset`` (also ``/reset@botname``) ends the message's session and answers a short
  confirmation.
* In a group, a message that does not mention the bot (or reply to it) is not answered and
  not kept: the assistant sees only what was said to it. (Keeping such messages as context
  would let anyone in a group fill the session, and the prompt, with text nobody asked
  about.)
* Otherwise the session's history, the memories relevant to the message and the message
  itself are trimmed to the model's window and sent, not streamed, through the
  :class:`~tenant_gateway.chat.ChatService`, so budgets and metering hold as for any call;
  the message and the answer are appended to the session.

A refused budget or an unreachable model is answered with a polite sentence instead of a
crash: the message is done, and the person knows why nothing better came. While the tenant
is suspended, ``serving`` raises and the message waits (the worker tries it again later).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from tenant_gateway.budgets import BudgetRefused
from tenant_gateway.channels.contract import InboundMessage
from tenant_gateway.chat import ChatReply, ChatService, completion_message
from tenant_gateway.contract import GatewayBundle
from tenant_gateway.memory import MemoryStore, with_memories
from tenant_gateway.models import UpstreamError
from tenant_gateway.sessions import SessionStore, session_key, trim_to_window
from tenant_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

AGENT = "main"
"""The tenant's one agent, first part of every session key."""
DEFAULT_CONTEXT_LENGTH = 8192
RESET_COMMAND = "/reset"
RESET_REPLY = "Started a new conversation."
BUDGET_REPLY = "Sorry, I can't answer right now: {reason}."
UNAVAILABLE_REPLY = "Sorry, I can't reach the model right now. Please try again in a while."


def lane_of(message: InboundMessage, dm_scope: str) -> str:
    """The session key of ``message``: its messages are answered one at a time."""
    return session_key(
        AGENT, message.channel, message.peer_id, message.chat_id, message.chat_type, dm_scope
    )


def is_reset(text: str) -> bool:
    word = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    return word == RESET_COMMAND or word.startswith(RESET_COMMAND + "@")


class Assistant:
    """Answers channel messages with the tenant's model, sessions and memory."""

    def __init__(
        self,
        settings: GatewaySettings,
        bundle: Callable[[], GatewayBundle],
        chat: ChatService,
        sessions: SessionStore,
        memory: MemoryStore,
        serving: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._bundle = bundle
        self._chat = chat
        self._sessions = sessions
        self._memory = memory
        self._serving = serving

    async def answer(self, message: InboundMessage) -> str | None:
        """The reply text to ``message``, or None when it gets none."""
        key = lane_of(message, self._settings.sessions.dm_scope)
        if is_reset(message.text):
            await self._sessions.reset(key)
            return RESET_REPLY
        if message.chat_type == "group" and not message.mentioned:
            return None
        self._serving()
        try:
            return await self._turn(key, message)
        except BudgetRefused as exc:
            return BUDGET_REPLY.format(reason=exc.detail)
        except UpstreamError as exc:
            log.warning("channel message %s not answered: %s", message.message_id, exc.detail)
            return UNAVAILABLE_REPLY

    async def _turn(self, key: str, message: InboundMessage) -> str:
        session = await self._sessions.current(key)
        user: dict[str, Any] = {"role": "user", "content": message.text}
        prompt = await with_memories(
            [*await self._sessions.history(session.id), user],
            self._memory,
            self._settings.memory.recall_limit,
        )
        model = await self._model()
        reserve = self._settings.budget_completion_allowance
        messages = trim_to_window(prompt, self._context_length(model), reserve)
        body = msgspec.json.encode({"model": model, "messages": messages})
        reply = await self._chat.complete(body, session.id)
        answer = completion_message(reply.content) if isinstance(reply, ChatReply) else None
        content = None if answer is None else answer.get("content")
        text = content if isinstance(content, str) else ""
        await self._sessions.append(key, [user, {"role": "assistant", "content": text}])
        return text

    async def _model(self) -> str:
        if self._settings.channels.model is not None:
            return self._settings.channels.model
        listing = await self._chat.list_models()
        if not listing.data:
            return "default"  # the router names what is missing when it is asked for it
        return listing.data[0].id

    def _context_length(self, model: str) -> int:
        if self._settings.channels.context_length is not None:
            return self._settings.channels.context_length
        for entry in self._bundle().platform_models:
            if entry.name == model and entry.context_length:
                return entry.context_length
        return DEFAULT_CONTEXT_LENGTH
