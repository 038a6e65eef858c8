"""A Telegram Bot API server for tests (a raw ASGI app), reached through
``TENANTRY_TELEGRAM_API_BASE`` as aiogram reaches Telegram: ``/bot<token>/<method>``.

Why: the Telegram channels run aiogram against a base URL; pointed here, the production code
path (aiogram's ``AiohttpSession`` and ``TelegramAPIServer.from_base``) talks to a real HTTP
server that answers in the Bot API's wire format, ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": ..., "description": ...}``.

What it implements, per bot token (several bots at once; an unknown token gets 401
"Unauthorized", an unknown method 404 "Not Found"); parameters are read from the query string
and from JSON, form-urlencoded or multipart bodies, on GET or POST:

* ``getMe``; ``setWebhook`` / ``deleteWebhook`` / ``getWebhookInfo`` (url, secret_token and
  allowed_updates recorded; a secret outside ``[A-Za-z0-9_-]{1,256}`` refused);
* ``getUpdates``: ``offset`` confirms earlier updates, ``limit``, ``allowed_updates`` (kept
  as Telegram keeps them), ``timeout`` long-polls without blocking other requests until
  :meth:`TelegramBotAPI.push_update` wakes it; 409 while a webhook is set (a poll waiting
  when one is set ends with 409 too), and an older poll of the same bot is ended with 409
  when a newer one starts;
* ``sendMessage``: 4096 characters at most ("Bad Request: message is too long"), text checked
  under its ``parse_mode`` (see :mod:`tests.doubles.telegram_markup`), answered with a Message;
* ``sendChatAction``, ``answerCallbackQuery``, ``setMyCommands`` / ``getMyCommands``;
* :meth:`TelegramBotAPI.refuse`: a method's next calls answered with an error (Telegram
  having a bad moment), after some calls that go through.

In tests::

    with telegram_api() as api:
        bot = api.add_bot("tenant_bot")          # a BotAccount with a fresh token
        # TENANTRY_TELEGRAM_API_BASE=api.url
        api.push_update(bot.token, private_message("hello"))       # for getUpdates
        await api.post_webhook_update(bot.token, private_message("hi"))  # to the webhook
        await api.post_webhook_update(bot.token, update, secret=None)    # without the header
        api.sent(bot.token)                      # [SentMessage(chat_id=..., text=...), ...]

Builders of realistic updates: :func:`private_message`, :func:`group_message` (optionally
mentioning the bot), :func:`reply_to_bot`, :func:`start_command` (``/start <payload>``),
:func:`callback_query`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.doubles.telegram_markup import UnparsableEntities, plain_text, utf16_length

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MESSAGE_LIMIT = 4096
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
DEFAULT_ALLOWED_UPDATES = frozenset(
    {"message", "edited_message", "channel_post", "edited_channel_post", "inline_query"}
    | {"chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query"}
    | {"poll", "poll_answer", "my_chat_member", "chat_join_request", "business_message"}
)
TEXT_PARAMETERS = frozenset(
    {"text", "url", "secret_token", "parse_mode", "action", "callback_query_id", "ip_address"}
    | {"language_code", "business_connection_id", "message_effect_id"}
)
REGISTERED = object()
"""``post_webhook_update(secret=REGISTERED)``: send the secret the bot registered."""


class BotAPIError(Exception):
    """An answer ``{"ok": false}`` with this status and description."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass(frozen=True)
class TelegramUser:
    id: int
    first_name: str
    username: str | None = None
    is_bot: bool = False

    def as_dict(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            user["username"] = self.username
        return user


ALICE = TelegramUser(id=5_000_001, first_name="Alice", username="alice")


@dataclass
class BotAccount:
    """One bot the server knows, and what it has done."""

    token: str
    user: TelegramUser
    webhook_url: str = ""
    webhook_secret: str | None = None
    allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
    commands: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    polls: int = 0

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def username(self) -> str:
        return self.user.username or ""


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: int | str
    text: str
    parse_mode: str | None
    reply_to: int | None
    """The message answered: ``reply_parameters.message_id`` or ``reply_to_message_id``."""
    params: dict[str, Any]


@dataclass
class _Fault:
    status: int
    description: str
    times: int
    after: int


class TelegramBotAPI:
    """The ASGI app; tests use it from their own thread while it serves on its own loop."""

    def __init__(self) -> None:
        self.url = ""
        self.bots: dict[str, BotAccount] = {}
        self._messages: dict[str, list[SentMessage]] = {}
        self._ids = itertools.count(1_000_000_001)
        self._message_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrivals: dict[str, asyncio.Event] = {}
        self._closing = False
        self._faults: dict[tuple[str, str], list[_Fault]] = {}

    # -- what tests use --------------------------------------------------------------------

    def add_bot(self, username: str, *, first_name: str | None = None) -> BotAccount:
        bot_id = 7_000_000_000 + len(self.bots) + 1
        token = f"{bot_id}:{secrets.token_urlsafe(26)}"
        user = TelegramUser(bot_id, first_name or username, username, is_bot=True)
        with self._lock:
            self.bots[token] = BotAccount(token, user)
            self._messages[token] = []
        return self.bots[token]

    def push_update(self, token: str, update: dict[str, Any]) -> dict[str, Any]:
        """Queue ``update`` for the bot's getUpdates (an ``update_id`` is given if absent)."""
        update = {"update_id": next(self._ids), **update}
        with self._lock:
            self.bots[token].pending.append(update)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, token)
        return update

    async def post_webhook_update(
        self, token: str, update: dict[str, Any], *, secret: object = REGISTERED
    ) -> httpx.Response:
        """POST ``update`` to the bot's webhook as Telegram does; ``secret=None`` sends no
        ``X-Telegram-Bot-Api-Secret-Token``, a string sends that one instead."""
        bot = self.bots[token]
        if not bot.webhook_url:
            raise AssertionError(f"bot @{bot.username} has no webhook set")
        presented = bot.webhook_secret if secret is REGISTERED else secret
        headers = {} if presented is None else {"X-Telegram-Bot-Api-Secret-Token": str(presented)}
        update = {"update_id": next(self._ids), **update}
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(bot.webhook_url, json=update, headers=headers)

    def sent(self, token: str) -> list[SentMessage]:
        with self._lock:
            return list(self._messages[token])

    def calls(self, token: str, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of ``method`` (case-insensitive) by this bot."""
        with self._lock:
            return [p for m, p in self.bots[token].calls if m == method.lower()]

    def refuse(
        self,
        token: str,
        method: str,
        *,
        status: int = 500,
        description: str = "Internal Server Error",
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Let the bot's next ``after`` calls of ``method`` through, then answer ``times``
        calls with ``status`` and ``description`` (nothing done, nothing recorded as sent)."""
        with self._lock:
            faults = self._faults.setdefault((token, method.lower()), [])
            faults.append(_Fault(status, description, times, after))

    def close(self) -> None:
        """End every long poll at once (so the server can stop without waiting for them)."""
        self._closing = True
        if self._loop is not None and not self._loop.is_closed():
            for token in list(self.bots):
                self._loop.call_soon_threadsafe(self._wake, token)

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self._loop = asyncio.get_running_loop()
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            result = await self._dispatch(scope, raw)
        except BotAPIError as exc:
            error = {"ok": False, "error_code": exc.status, "description": exc.description}
            await _json(send, exc.status, error)
        else:
            await _json(send, 200, {"ok": True, "result": result})

    async def _dispatch(self, scope: Scope, raw: bytes) -> Any:
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", scope["path"])
        if match is None:
            raise BotAPIError(404, "Not Found")
        bot = self.bots.get(match[1])
        if bot is None:
            raise BotAPIError(401, "Unauthorized")
        method = match[2].lower()
        handler = self._methods().get(method)
        if handler is None:
            raise BotAPIError(404, "Not Found")
        params = _parameters(scope, raw)
        with self._lock:
            bot.calls.append((method, params))
            fault = self._fault(bot.token, method)
        if fault is not None:
            raise BotAPIError(fault.status, fault.description)
        return await handler(bot, params)

    def _fault(self, token: str, method: str) -> _Fault | None:
        """The fault this call meets, if any (called under the lock)."""
        faults = self._faults.get((token, method), [])
        if not faults:
            return None
        fault = faults[0]
        if fault.after:
            fault.after -= 1
            return None
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault

    def _methods(self) -> dict[str, Callable[[BotAccount, dict[str, Any]], Awaitable[Any]]]:
        return {
            "getme": self._get_me,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "sendchataction": self._send_chat_action,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
        }

    def _wake(self, token: str) -> None:
        self._arrival(token).set()

    def _arrival(self, token: str) -> asyncio.Event:
        return self._arrivals.setdefault(token, asyncio.Event())

    # -- methods ---------------------------------------------------------------------------

    async def _get_me(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        return {
            **bot.user.as_dict(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _set_webhook(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        url = params.get("url") or ""
        secret = params.get("secret_token")
        if secret is not None and not SECRET_TOKEN.fullmatch(secret):
            raise BotAPIError(400, "Bad Request: secret token contains unallowed characters")
        if url and not url.startswith(("http://", "https://")):
            raise BotAPIError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        with self._lock:
            bot.webhook_url, bot.webhook_secret = url, (secret if url else None)
            self._keep_allowed_updates(bot, params)
            if params.get("drop_pending_updates"):
                bot.pending.clear()
        self._wake(bot.token)  # a waiting getUpdates is terminated by it
        return True

    async def _delete_webhook(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        with self._lock:
            bot.webhook_url, bot.webhook_secret = "", None
            if params.get("drop_pending_updates"):
                bot.pending.clear()
        return True

    async def _get_webhook_info(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": bot.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(bot.pending),
        }
        if bot.webhook_url:
            info["allowed_updates"] = sorted(bot.allowed_updates)
        return info

    async def _get_updates(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        if bot.webhook_url:
            raise BotAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        with self._lock:
            self._keep_allowed_updates(bot, params)
            self._confirm(bot, int(params.get("offset") or 0))
            bot.polls += 1
            poll = bot.polls
        self._wake(bot.token)  # an older poll of this bot ends with a conflict
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        deadline = time.monotonic() + max(int(params.get("timeout") or 0), 0)
        while True:
            arrival = self._arrival(bot.token)
            arrival.clear()
            if bot.polls != poll:
                raise BotAPIError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if bot.webhook_url:
                raise BotAPIError(409, "Conflict: terminated by setWebhook request")
            with self._lock:
                ready = [u for u in bot.pending if _kind(u) in bot.allowed_updates][:limit]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0 or self._closing:
                return ready
            try:
                await asyncio.wait_for(arrival.wait(), remaining)
            except TimeoutError:
                continue

    async def _send_message(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise BotAPIError(400, "Bad Request: chat_id is empty")
        text = params.get("text") or ""
        try:
            shown = plain_text(text, params.get("parse_mode"))
        except UnparsableEntities as exc:
            raise BotAPIError(400, f"Bad Request: can't parse entities: {exc}") from exc
        if not shown.strip():
            raise BotAPIError(400, "Bad Request: message text is empty")
        if utf16_length(shown) > MESSAGE_LIMIT:
            raise BotAPIError(400, "Bad Request: message is too long")
        reply = params.get("reply_parameters")
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        message = SentMessage(
            message_id=next(self._message_ids),
            chat_id=chat_id,
            text=text,
            parse_mode=params.get("parse_mode"),
            reply_to=reply_to or params.get("reply_to_message_id"),
            params=params,
        )
        with self._lock:
            self._messages[bot.token].append(message)
        return {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": bot.user.as_dict(),
            "text": shown,
        }

    async def _send_chat_action(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        if params.get("chat_id") in (None, ""):
            raise BotAPIError(400, "Bad Request: chat_id is empty")
        if not params.get("action"):
            raise BotAPIError(400, "Bad Request: action is empty")
        return True

    async def _answer_callback_query(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            raise BotAPIError(400, "Bad Request: query is too old and response timeout expired")
        return True

    async def _set_my_commands(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise BotAPIError(400, "Bad Request: can't parse commands JSON object")
        with self._lock:
            bot.commands = commands
        return True

    async def _get_my_commands(self, bot: BotAccount, params: dict[str, Any]) -> Any:
        return bot.commands

    @staticmethod
    def _keep_allowed_updates(bot: BotAccount, params: dict[str, Any]) -> None:
        """Telegram keeps the previous setting when ``allowed_updates`` is absent or empty."""
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list) and allowed:
            bot.allowed_updates = frozenset(allowed)

    @staticmethod
    def _confirm(bot: BotAccount, offset: int) -> None:
        if offset < 0:
            bot.pending = bot.pending[offset:]
        elif offset:
            bot.pending = [u for u in bot.pending if u["update_id"] >= offset]


def _kind(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


def _chat(chat_id: int | str) -> dict[str, Any]:
    if isinstance(chat_id, int) and chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Chat"}
    if isinstance(chat_id, int):
        return {"id": chat_id, "type": "supergroup", "title": "Group"}
    return {"id": -1_001_000_000_001, "type": "channel", "title": chat_id.lstrip("@")}


def _parameters(scope: Scope, raw: bytes) -> dict[str, Any]:
    """A method's parameters from the query string and a JSON, urlencoded or multipart body."""
    fields = parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    content_type = headers.get("content-type", "")
    params: dict[str, Any] = {key: _field(key, value) for key, value in fields}
    if not raw:
        return params
    if content_type.startswith("application/json"):
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BotAPIError(400, "Bad Request: can't parse JSON") from exc
        if isinstance(body, dict):
            params.update(body)
    elif content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + raw)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                is_file = part.get_filename() is not None
                params[name] = payload if is_file else _field(name, payload.decode())
    else:
        params.update((k, _field(k, v)) for k, v in parse_qsl(raw.decode(), True))
    return params


def _field(key: str, value: str) -> Any:
    """A form field's value: text parameters as sent, others JSON-decoded where they parse."""
    if key in TEXT_PARAMETERS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _json(send: Send, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


# -- updates as Telegram sends them --------------------------------------------------------


def _message(
    text: str,
    chat: dict[str, Any],
    sender: TelegramUser,
    entities: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": next(_update_message_ids),
        "date": int(time.time()),
        "chat": chat,
        "from": sender.as_dict(),
        "text": text,
        **extra,
    }
    if entities:
        message["entities"] = entities
    return {"message": message}


_update_message_ids = itertools.count(10_001)


def _private_chat(user: TelegramUser) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": user.id, "type": "private", "first_name": user.first_name}
    if user.username:
        chat["username"] = user.username
    return chat


def _group_chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "supergroup", "title": "Team chat"}


def private_message(text: str, *, sender: TelegramUser = ALICE) -> dict[str, Any]:
    """A text message in the sender's private chat with the bot."""
    return _message(text, _private_chat(sender), sender)


def start_command(payload: str = "", *, sender: TelegramUser = ALICE) -> dict[str, Any]:
    """``/start <payload>`` as a deep link ``t.me/<bot>?start=<payload>`` sends it."""
    text = f"/start {payload}" if payload else "/start"
    entity = {"type": "bot_command", "offset": 0, "length": len("/start")}
    return _message(text, _private_chat(sender), sender, [entity])


def group_message(
    text: str,
    *,
    mention: str | None = None,
    chat_id: int = -1_001_234_567_890,
    sender: TelegramUser = ALICE,
) -> dict[str, Any]:
    """A group message; with ``mention`` (a bot's username) it starts with ``@mention``."""
    if mention is None:
        return _message(text, _group_chat(chat_id), sender)
    handle = f"@{mention}"
    entity = {"type": "mention", "offset": 0, "length": utf16_length(handle)}
    return _message(f"{handle} {text}", _group_chat(chat_id), sender, [entity])


def reply_to_bot(
    text: str,
    bot: BotAccount,
    *,
    replied_text: str = "an earlier answer",
    chat_id: int = -1_001_234_567_890,
    sender: TelegramUser = ALICE,
) -> dict[str, Any]:
    """A group message replying to one of the bot's messages."""
    chat = _group_chat(chat_id)
    replied = _message(replied_text, chat, bot.user)["message"]
    return _message(text, chat, sender, reply_to_message=replied)


def callback_query(data: str, *, sender: TelegramUser = ALICE) -> dict[str, Any]:
    """A press on an inline button carrying ``data``, under a message in a private chat."""
    message = _message("choose", _private_chat(sender), sender)["message"]
    return {
        "callback_query": {
            "id": str(next(_update_message_ids)),
            "from": sender.as_dict(),
            "chat_instance": "1",
            "message": message,
            "data": data,
        }
    }


@contextmanager
def telegram_api() -> Iterator[TelegramBotAPI]:
    """Serve a :class:`TelegramBotAPI` on 127.0.0.1 (a free port) in a background thread;
    ``api.url`` is the base for ``TENANTRY_TELEGRAM_API_BASE``."""
    from tests.doubles.http_server import serve_in_thread

    api = TelegramBotAPI()
    with serve_in_thread(api, lifespan="off") as server:
        api.url = server.url
        try:
            yield api
        finally:
            api.close()
