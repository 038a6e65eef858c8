"""The platform's one Telegram bot, end to end: a real ``tenantry up`` runs the bot against
the Telegram Bot API double (long polling in the embedded default, a webhook with its secret
token when a public URL is set); people pair their chats with codes their tenants asked for,
talk to their own tenant's assistant (a real gateway process each), and never see another
tenant's replies. A gateway that is down loses no message; the bot's token shows in no log."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from tests.doubles.openai_upstream import openai_upstream
from tests.doubles.telegram_api import (
    ALICE,
    BotAccount,
    TelegramBotAPI,
    TelegramUser,
    group_message,
    private_message,
    start_command,
    telegram_api,
)
from tests.e2e.test_chat_platforms import assert_no_secret_logged, control_plane
from tests.e2e.test_embedded_default import wait_running
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

BOB = TelegramUser(id=5_000_002, first_name="Bob", username="bob")
CAROL = TelegramUser(id=5_000_003, first_name="Carol")


def texts_to(api: TelegramBotAPI, bot: BotAccount, chat: int) -> list[str]:
    return [m.text for m in api.sent(bot.token) if str(m.chat_id) == str(chat)]


def wait_text(api: TelegramBotAPI, bot: BotAccount, chat: int, text: str, timeout: float = 30):
    """Wait until the bot sent ``text`` (or a message containing it) to ``chat``."""

    def arrived() -> list[str] | None:
        texts = texts_to(api, bot, chat)
        return texts if any(text in t for t in texts) else None

    return eventually_sync(arrived, timeout=timeout, what=f"{text!r} sent to chat {chat}")


def pairing_code(client: httpx.Client, tenant: str) -> str:
    issued = client.post(f"/api/v1/tenants/{tenant}/channels/telegram/pairing")
    assert issued.status_code == 201, issued.text
    assert "/start" in issued.json()["instructions"]
    return str(issued.json()["code"])


def tenants(client: httpx.Client, *slugs: str) -> dict[str, str]:
    ids = {slug: client.post("/api/v1/tenants", json={"slug": slug}).json()["id"] for slug in slugs}
    for slug in slugs:
        wait_running(client, slug)
    return ids


def test_pairing_and_chatting_by_polling(tmp_path: Path) -> None:
    with openai_upstream(["stub-model"]) as fleet, telegram_api() as api:
        bot = api.add_bot("tenantry_platform_bot")
        env = {
            "TENANTRY_PLATFORM_MODELS_URL": fleet.url,
            "TENANTRY_TELEGRAM_API_BASE": api.url,
            "TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN": bot.token,
        }
        with control_plane(tmp_path, **env) as cp, cp.client() as client:
            ids = tenants(client, "alpha", "beta")

            # A chat nobody paired gets instructions, and nothing reaches any tenant.
            api.push_update(bot.token, private_message("hi there", sender=CAROL))
            wait_text(api, bot, CAROL.id, "pairing code")

            code_a, code_b = pairing_code(client, "alpha"), pairing_code(client, "beta")
            api.push_update(bot.token, start_command(code_a, sender=ALICE))
            api.push_update(bot.token, start_command(code_b, sender=BOB))
            wait_text(api, bot, ALICE.id, "Connected")
            wait_text(api, bot, BOB.id, "Connected")
            api.push_update(bot.token, start_command(code_a, sender=CAROL))
            wait_text(api, bot, CAROL.id, "used already")
            api.push_update(bot.token, start_command("ZZZZ-ZZZZ", sender=CAROL))
            wait_text(api, bot, CAROL.id, "not valid")

            # Each chat talks to its own tenant's gateway and gets its own replies only.
            api.push_update(bot.token, private_message("hello from alice", sender=ALICE))
            api.push_update(bot.token, private_message("hello from bob", sender=BOB))
            wait_text(api, bot, ALICE.id, "echo: hello from alice")
            wait_text(api, bot, BOB.id, "echo: hello from bob")
            assert not any("bob" in t for t in texts_to(api, bot, ALICE.id))
            assert not any("alice" in t for t in texts_to(api, bot, BOB.id))
            assert not any("hello" in t for t in texts_to(api, bot, CAROL.id))
            typing = [c for c in api.calls(bot.token, "sendChatAction") if c["chat_id"] == ALICE.id]
            assert typing, "typing… was shown while the assistant answered"
            assert typing[0]["action"] == "typing"

            listed = client.get("/api/v1/tenants/alpha/channels").json()
            assert [(b["chat_id"], b["status"]) for b in listed] == [(str(ALICE.id), "active")]

            # Alpha's gateway is down (suspended): Alice's message waits and is answered once
            # it is back.
            client.patch("/api/v1/tenants/alpha", json={"suspended": True})
            eventually_sync(
                lambda: client.get("/api/v1/tenants/alpha").json()["state"] == "suspended",
                timeout=60,
                what="alpha suspended",
            )
            api.push_update(bot.token, private_message("while you were away", sender=ALICE))
            api.push_update(bot.token, private_message("bob is still served", sender=BOB))
            wait_text(api, bot, BOB.id, "echo: bob is still served")
            client.patch("/api/v1/tenants/alpha", json={"suspended": False})
            wait_running(client, "alpha")
            wait_text(api, bot, ALICE.id, "echo: while you were away", timeout=60)

            # Unbound: the chat's messages stop reaching the tenant.
            gone = client.delete(f"/api/v1/tenants/alpha/channels/{listed[0]['id']}")
            assert gone.status_code == 204, gone.text
            before = len(texts_to(api, bot, ALICE.id))
            api.push_update(bot.token, private_message("are you there?", sender=ALICE))
            eventually_sync(
                lambda: len(texts_to(api, bot, ALICE.id)) > before, what="the bot's answer"
            )
            assert "pairing code" in texts_to(api, bot, ALICE.id)[-1]

            assert_no_secret_logged(cp, ids["alpha"], bot.token)
            assert_no_secret_logged(cp, ids["beta"], bot.token)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_with_its_secret(tmp_path: Path) -> None:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    with openai_upstream(["stub-model"]) as fleet, telegram_api() as api:
        bot = api.add_bot("tenantry_platform_bot")
        env = {
            "TENANTRY_PLATFORM_MODELS_URL": fleet.url,
            "TENANTRY_TELEGRAM_API_BASE": api.url,
            "TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN": bot.token,
            "TENANTRY_PUBLIC_URL": public_url,
        }
        with control_plane(tmp_path, ("--port", str(port)), **env) as cp, cp.client() as client:
            assert cp.url.endswith(f":{port}"), cp.url
            ids = tenants(client, "alpha")
            eventually_sync(lambda: bot.webhook_url, what="the webhook registered")
            assert bot.webhook_url == f"{public_url}/webhooks/telegram-platform"
            assert bot.webhook_secret, "registered with a secret token"
            assert bot.webhook_secret not in cp.log.read_text()
            assert api.calls(bot.token, "getUpdates") == [], "no polling beside the webhook"

            code = pairing_code(client, "alpha")
            update = start_command(code, sender=ALICE)
            for secret in (None, "not-the-secret"):
                refused = asyncio.run(api.post_webhook_update(bot.token, update, secret=secret))
                assert refused.status_code == 401, refused.text
                assert "Secret-Token" in refused.json()["detail"]
            assert texts_to(api, bot, ALICE.id) == [], "a refused update does nothing"
            paired = asyncio.run(api.post_webhook_update(bot.token, update))
            assert paired.status_code == 200, paired.text
            wait_text(api, bot, ALICE.id, "Connected")

            hello = private_message("hello by webhook", sender=ALICE)
            for _ in range(2):  # Telegram delivers again when unsure: answered once
                answer = asyncio.run(api.post_webhook_update(bot.token, hello))
                assert answer.status_code == 200, answer.text
            wait_text(api, bot, ALICE.id, "echo: hello by webhook")
            chatter = group_message("nobody asked the bot", chat_id=-100_777)
            assert asyncio.run(api.post_webhook_update(bot.token, chatter)).status_code == 200
            api_texts = [t for t in texts_to(api, bot, ALICE.id) if t.startswith("echo:")]
            assert api_texts == ["echo: hello by webhook"]
            assert texts_to(api, bot, -100_777) == [], "unpaired group chatter is ignored"

            # A group paired like a DM: only messages that mention the bot are answered.
            group = -100_888
            pair_group = group_message(f"/start {pairing_code(client, 'alpha')}", chat_id=group)
            asyncio.run(api.post_webhook_update(bot.token, pair_group))
            wait_text(api, bot, group, "Connected")
            for update in (
                group_message("talking among ourselves", chat_id=group),
                group_message("what is new?", mention=bot.username, chat_id=group),
            ):
                assert asyncio.run(api.post_webhook_update(bot.token, update)).status_code == 200
            wait_text(api, bot, group, "what is new?")
            replies = [t for t in texts_to(api, bot, group) if t.startswith("echo:")]
            assert replies == [f"echo: @{bot.username} what is new?"], replies
            assert_no_secret_logged(cp, ids["alpha"], bot.token, bot.webhook_secret or "")


def test_kept_messages_survive_a_control_plane_crash(tmp_path: Path) -> None:
    with openai_upstream(["stub-model"]) as fleet, telegram_api() as api:
        bot = api.add_bot("tenantry_platform_bot")
        env = {
            "TENANTRY_PLATFORM_MODELS_URL": fleet.url,
            "TENANTRY_TELEGRAM_API_BASE": api.url,
            "TENANTRY_TELEGRAM_PLATFORM_BOT_TOKEN": bot.token,
        }
        with control_plane(tmp_path, **env) as cp, cp.client() as client:
            tenants(client, "alpha")
            api.push_update(bot.token, start_command(pairing_code(client, "alpha")))
            wait_text(api, bot, ALICE.id, "Connected")
            client.patch("/api/v1/tenants/alpha", json={"suspended": True})
            eventually_sync(
                lambda: client.get("/api/v1/tenants/alpha").json()["state"] == "suspended",
                timeout=60,
                what="alpha suspended",
            )
            api.push_update(bot.token, private_message("kept across a crash", sender=ALICE))
            eventually_sync(
                lambda: "keeping a message" in cp.log.read_text(), what="the message kept"
            )
            cp.kill()
            cp.start()
            with cp.client() as again:
                again.patch("/api/v1/tenants/alpha", json={"suspended": False})
                wait_running(again, "alpha")
                wait_text(api, bot, ALICE.id, "echo: kept across a crash", timeout=60)
                answered = [t for t in texts_to(api, bot, ALICE.id) if t.startswith("echo:")]
                assert answered == ["echo: kept across a crash"], "answered once"
