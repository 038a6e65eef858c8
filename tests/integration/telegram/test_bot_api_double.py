"""The Telegram Bot API double speaks the wire format aiogram uses: a real aiogram ``Bot`` and
``Dispatcher`` pointed at it through ``TelegramAPIServer.from_base`` get what Telegram gives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import Message, ReplyParameters
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.doubles.telegram_api import (
    ALICE,
    BotAccount,
    TelegramBotAPI,
    group_message,
    private_message,
    reply_to_bot,
    start_command,
    telegram_api,
)
from tests.waiting import eventually


@pytest.fixture
def api() -> Iterator[TelegramBotAPI]:
    with telegram_api() as served:
        yield served


@pytest.fixture
def account(api: TelegramBotAPI) -> BotAccount:
    return api.add_bot("tenant_bot", first_name="Tenant assistant")


def aiogram_bot(api: TelegramBotAPI, token: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    return Bot(token, session=session)


@pytest.fixture
async def bot(api: TelegramBotAPI, account: BotAccount) -> AsyncIterator[Bot]:
    client = aiogram_bot(api, account.token)
    yield client
    await client.session.close()


async def test_get_me_answers_each_bot_as_itself(api: TelegramBotAPI, bot: Bot) -> None:
    other = api.add_bot("platform_bot")
    other_bot = aiogram_bot(api, other.token)
    try:
        me, platform = await bot.get_me(), await other_bot.get_me()
    finally:
        await other_bot.session.close()
    assert (me.id, me.username, me.first_name, me.is_bot) == (
        api.bots[bot.token].id,
        "tenant_bot",
        "Tenant assistant",
        True,
    )
    assert platform.username == "platform_bot"
    assert platform.id != me.id


async def test_an_unknown_token_is_unauthorized(api: TelegramBotAPI) -> None:
    stranger = aiogram_bot(api, "123456:not-a-token-the-server-issued")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()
    finally:
        await stranger.session.close()


async def test_send_message_is_recorded_and_answered_with_a_message(
    api: TelegramBotAPI, bot: Bot
) -> None:
    sent = await bot.send_message(
        ALICE.id,
        "*hello* there\\!",
        parse_mode="MarkdownV2",
        reply_parameters=ReplyParameters(message_id=41),
    )
    assert isinstance(sent, Message)
    assert sent.chat.id == ALICE.id
    assert sent.text == "hello there!"
    [recorded] = api.sent(bot.token)
    assert (recorded.message_id, recorded.chat_id, recorded.text) == (
        sent.message_id,
        ALICE.id,
        "*hello* there\\!",
    )
    assert (recorded.parse_mode, recorded.reply_to) == ("MarkdownV2", 41)


async def test_a_message_over_4096_characters_is_refused(api: TelegramBotAPI, bot: Bot) -> None:
    await bot.send_message(ALICE.id, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(ALICE.id, "x" * 4097)
    assert [len(m.text) for m in api.sent(bot.token)] == [4096]


async def test_refused_calls_fail_after_the_ones_let_through(api: TelegramBotAPI, bot: Bot) -> None:
    api.refuse(bot.token, "sendMessage", times=2, after=1)
    await bot.send_message(ALICE.id, "first")
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Internal Server Error"):
            await bot.send_message(ALICE.id, "refused")
    await bot.send_message(ALICE.id, "third")
    await bot.send_chat_action(ALICE.id, "typing")  # other methods are not refused
    assert [m.text for m in api.sent(bot.token)] == ["first", "third"]
    assert len(api.calls(bot.token, "sendMessage")) == 4


@pytest.mark.parametrize(
    ("text", "parse_mode", "problem"),
    [
        ("Done. 2+2=4", "MarkdownV2", "Character '.' is reserved"),
        ("*bold without end", "MarkdownV2", "Can't find end of Bold entity"),
        ("`code", "MarkdownV2", "Can't find end of Code entity"),
        ("<b>bold</i>", "HTML", "Unmatched end tag"),
        ("<blink>x</blink>", "HTML", 'Unsupported start tag "blink"'),
        ("<b>open", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
    ],
)
async def test_text_its_parse_mode_cannot_parse_is_refused(
    api: TelegramBotAPI, bot: Bot, text: str, parse_mode: str, problem: str
) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as refused:
        await bot.send_message(ALICE.id, text, parse_mode=parse_mode)
    assert problem in refused.value.message
    assert api.sent(bot.token) == []


@pytest.mark.parametrize(
    ("text", "parse_mode"),
    [
        ("Done\\. 2\\+2\\=4 [docs](https://example.org/a_(b\\))", "MarkdownV2"),
        ("__under__ ||spoiler|| ~gone~ ```\npre `x\\`\n```", "MarkdownV2"),
        ('<b>1 &lt; 2</b> <a href="https://example.org">x</a> & more', "HTML"),
        ("Done. 2+2=4", None),
    ],
)
async def test_well_formed_text_is_sent(
    api: TelegramBotAPI, bot: Bot, text: str, parse_mode: str | None
) -> None:
    await bot.send_message(ALICE.id, text, parse_mode=parse_mode)
    assert [m.text for m in api.sent(bot.token)] == [text]


async def test_chat_actions_commands_and_callback_answers_are_recorded(
    api: TelegramBotAPI, bot: Bot
) -> None:
    from aiogram.types import BotCommand

    assert await bot.send_chat_action(ALICE.id, "typing")
    assert await bot.set_my_commands([BotCommand(command="start", description="Begin")])
    assert await bot.answer_callback_query("cb-1", text="ok")
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert api.calls(bot.token, "sendChatAction") == [{"chat_id": ALICE.id, "action": "typing"}]
    assert api.calls(bot.token, "answerCallbackQuery")[0]["callback_query_id"] == "cb-1"


async def test_a_polling_dispatcher_receives_a_pushed_update_and_answers_it(
    api: TelegramBotAPI, bot: Bot
) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.reply(f"you said: {message.text}")

    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=5)
    )
    try:
        pushed = api.push_update(bot.token, private_message("hello"))

        async def answered() -> list[str]:
            return [m.text for m in api.sent(bot.token)]

        assert await eventually(answered, timeout=10, what="the bot's answer") == [
            "you said: hello"
        ]
        [reply] = api.sent(bot.token)
        assert reply.chat_id == ALICE.id
        assert reply.reply_to == pushed["message"]["message_id"]
    finally:
        await dispatcher.stop_polling()
        await polling


async def test_long_polls_wait_without_holding_up_other_requests(
    api: TelegramBotAPI, account: BotAccount
) -> None:
    base = f"{api.url}/bot{account.token}"
    async with httpx.AsyncClient(timeout=30) as client:
        poll = asyncio.create_task(client.post(f"{base}/getUpdates", json={"timeout": 20}))
        me = await client.get(f"{base}/getMe")
        assert me.json()["result"]["username"] == "tenant_bot"
        assert not poll.done()
        first = api.push_update(account.token, group_message("hi", mention="tenant_bot"))
        answer = (await poll).json()
        assert answer["ok"] is True
        assert [u["update_id"] for u in answer["result"]] == [first["update_id"]]
        # An update is delivered until a later offset confirms it.
        second = api.push_update(account.token, reply_to_bot("and?", account))
        again = (await client.post(f"{base}/getUpdates", data={"offset": "0"})).json()
        assert [u["update_id"] for u in again["result"]] == [
            first["update_id"],
            second["update_id"],
        ]
        confirmed = {"offset": str(second["update_id"])}
        rest = (await client.post(f"{base}/getUpdates", data=confirmed)).json()
        assert [u["update_id"] for u in rest["result"]] == [second["update_id"]]


async def test_allowed_updates_are_kept_between_polls(
    api: TelegramBotAPI, account: BotAccount
) -> None:
    base = f"{api.url}/bot{account.token}"
    api.push_update(account.token, start_command("pair-123"))
    async with httpx.AsyncClient(timeout=30) as client:
        only_callbacks = {"allowed_updates": '["callback_query"]'}
        skipped = (await client.post(f"{base}/getUpdates", data=only_callbacks)).json()
        assert skipped["result"] == []
        still = (await client.get(f"{base}/getUpdates")).json()
        assert still["result"] == []
        widened = await client.post(f"{base}/getUpdates", json={"allowed_updates": ["message"]})
        [update] = widened.json()["result"]
    assert update["message"]["text"] == "/start pair-123"
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]


async def test_a_newer_poll_ends_an_older_one_with_a_conflict(
    api: TelegramBotAPI, account: BotAccount
) -> None:
    base = f"{api.url}/bot{account.token}"
    async with httpx.AsyncClient(timeout=30) as client:
        older = asyncio.create_task(client.post(f"{base}/getUpdates", json={"timeout": 20}))

        async def older_polling() -> bool:
            return len(api.calls(account.token, "getUpdates")) == 1

        await eventually(older_polling, timeout=10, what="the first poll")
        newer = asyncio.create_task(client.post(f"{base}/getUpdates", json={"timeout": 20}))
        conflict = await older
        assert conflict.status_code == 409
        assert "terminated by other getUpdates request" in conflict.json()["description"]
        api.push_update(account.token, private_message("late"))
        assert len((await newer).json()["result"]) == 1


async def webhook_receiver(bot: Bot, secret: str) -> tuple[web.AppRunner, str, list[str]]:
    """aiogram's own webhook handler on 127.0.0.1; returns what its dispatcher heard."""
    heard: list[str] = []
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def record(message: Message) -> None:
        heard.append(message.text or "")

    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token=secret).register(app, path="/telegram")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/telegram", heard


async def test_webhook_registration_and_delivery_with_and_without_the_secret(
    api: TelegramBotAPI, bot: Bot
) -> None:
    runner, url, heard = await webhook_receiver(bot, "s3cret-Token_1")
    try:
        assert await bot.set_webhook(url, secret_token="s3cret-Token_1")
        account = api.bots[bot.token]
        assert (account.webhook_url, account.webhook_secret) == (url, "s3cret-Token_1")
        assert (await bot.get_webhook_info()).url == url
        delivered = await api.post_webhook_update(bot.token, private_message("via webhook"))
        wrong = await api.post_webhook_update(bot.token, private_message("forged"), secret="x")
        missing = await api.post_webhook_update(bot.token, private_message("bare"), secret=None)
        assert (delivered.status_code, wrong.status_code, missing.status_code) == (200, 401, 401)
        assert heard == ["via webhook"]
        with pytest.raises(TelegramBadRequest, match="unallowed characters"):
            await bot.set_webhook(url, secret_token="spaces are not allowed")
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()


async def test_get_updates_is_refused_while_a_webhook_is_set(api: TelegramBotAPI, bot: Bot) -> None:
    from aiogram.exceptions import TelegramConflictError

    await bot.set_webhook("https://tenant.example.org/telegram")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()


async def test_setting_a_webhook_ends_a_waiting_poll_with_a_conflict(
    api: TelegramBotAPI, bot: Bot
) -> None:
    from aiogram.exceptions import TelegramConflictError

    waiting = asyncio.create_task(bot.get_updates(timeout=25, request_timeout=35))
    await eventually(lambda: _polled(api, bot.token), what="the poll waiting")
    await bot.set_webhook("https://tenant.example.org/telegram")
    with pytest.raises(TelegramConflictError, match="terminated by setWebhook request"):
        await asyncio.wait_for(waiting, 5)


async def _polled(api: TelegramBotAPI, token: str) -> bool:
    return bool(api.calls(token, "getUpdates"))


async def test_parameters_arrive_by_query_string_json_form_and_multipart(
    api: TelegramBotAPI, account: BotAccount
) -> None:
    base = f"{api.url}/bot{account.token}/sendMessage"
    async with httpx.AsyncClient(timeout=30) as client:
        by_query = await client.get(base, params={"chat_id": "7", "text": "123"})
        by_json = await client.post(base, json={"chat_id": 8, "text": "json"})
        by_form = await client.post(base, data={"chat_id": "9", "text": "true"})
        multipart = {"chat_id": (None, "10"), "text": (None, "multi part")}
        by_multipart = await client.post(base, files=multipart)
        missing = await client.post(base, data={"text": "to nobody"})
    assert all(r.json()["ok"] for r in (by_query, by_json, by_form, by_multipart))
    assert [(m.chat_id, m.text) for m in api.sent(account.token)] == [
        (7, "123"),
        (8, "json"),
        (9, "true"),
        (10, "multi part"),
    ]
    assert missing.status_code == 400
    assert missing.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat_id is empty",
    }
