"""The tenant's own Telegram bot in a real gateway app, without a control plane: the bundle
carries the sealed bot token (opened through an unseal double) and points aiogram at the
Telegram Bot API double. The fast counterpart of ``tests/e2e/test_telegram_bot.py``: pairing
and the gateway's approval endpoint, allowlist and open, groups, replies split and rendered,
typing, a restart losing and repeating nothing, the token followed as it is rotated and
removed, and webhook mode taking relayed updates instead of polling."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec
import pytest

from tenant_gateway.app import create_app
from tenant_gateway.channels.contract import (
    TELEGRAM_ACCESS_PATH,
    TELEGRAM_APPROVALS_PATH,
    WEBHOOK_PATH,
)
from tenant_gateway.contract import BUNDLE_FILE, IDENTITY_FILE, GatewayBundle
from tenant_gateway.keys import BundleSource
from tenant_gateway.models import ModelClient
from tenant_gateway.settings import load_settings
from tenant_gateway.store import DATABASE_FILE, ConversationStore
from tests.doubles.http_server import serve_in_thread
from tests.doubles.openai_upstream import OpenAIUpstream
from tests.doubles.telegram_api import (
    ALICE,
    BotAccount,
    TelegramBotAPI,
    TelegramUser,
    group_message,
    private_message,
    reply_to_bot,
    telegram_api,
)
from tests.doubles.telegram_markup import plain_text
from tests.integration.gateway.conftest import new_key, write_bundle
from tests.integration.gateway.test_channels import INBOUND_KEY, NO_DAILY_RESET, enable_inbound
from tests.integration.vault.test_log_redaction import IDENTITY, TENANT_ID, UnsealAnswer, sealed
from tests.waiting import eventually

BOB = TelegramUser(id=5_000_002, first_name="Bob", username="bob")
CAROL = TelegramUser(id=5_000_003, first_name="Carol")
GROUP = -1_001_234_567_890
TELEGRAM_WEBHOOK = WEBHOOK_PATH.format(channel="telegram")


@dataclass
class BotGateway:
    url: str
    api: TelegramBotAPI
    bot: BotAccount
    upstream: OpenAIUpstream
    runtime_dir: Path
    dek: bytes

    def client(self, key: str | None = INBOUND_KEY) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def access(self) -> dict[str, Any]:
        async with self.client() as client:
            answer = await client.get(TELEGRAM_ACCESS_PATH)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def set_access(self, **change: Any) -> dict[str, Any]:
        async with self.client() as client:
            answer = await client.put(TELEGRAM_ACCESS_PATH, json=change)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def running(self, mode: str, bot: BotAccount | None = None) -> dict[str, Any]:
        """The access settings once the bot (``bot``, default this one) runs in ``mode``."""
        username = (bot or self.bot).username if mode != "off" else None

        async def probe() -> dict[str, Any] | None:
            found = await self.access()
            return found if (found["mode"], found["username"]) == (mode, username) else None

        return await eventually(probe, what=f"the bot {mode} as @{username}")

    def shown(self, chat: int, bot: BotAccount | None = None) -> list[str]:
        """What ``chat`` shows of the bot's messages, markup taken out."""
        return [
            plain_text(m.text, m.parse_mode)
            for m in self.api.sent((bot or self.bot).token)
            if str(m.chat_id) == str(chat)
        ]

    async def wait_shown(self, chat: int, text: str, bot: BotAccount | None = None) -> list[str]:
        async def probe() -> list[str] | None:
            texts = self.shown(chat, bot)
            return texts if any(text in t for t in texts) else None

        return await eventually(probe, what=f"{text!r} shown in chat {chat}")

    async def handled(self, bot: BotAccount | None = None) -> None:
        """Wait until the gateway confirmed every update queued for ``bot`` (it confirms an
        update with its next getUpdates offset, once the update was handled)."""

        async def probe() -> bool:
            return not (bot or self.bot).pending

        await eventually(probe, what="every update confirmed")

    def rewrite_bundle(self, **changes: Any) -> None:
        """Give the running gateway a new bundle (its watcher reads the file)."""
        path = self.runtime_dir / BUNDLE_FILE
        bundle = msgspec.json.decode(path.read_bytes(), type=GatewayBundle)
        bundle = msgspec.structs.replace(bundle, **changes)
        tmp = self.runtime_dir / ".bundle.tmp"
        tmp.write_bytes(msgspec.json.encode(bundle))
        tmp.replace(path)

    def token_credential(self, bot: BotAccount) -> Any:
        return sealed(self.dek, "c-telegram", "telegram_bot", {"token": bot.token})

    def echoes(self, chat: int) -> list[str]:
        return [t for t in self.shown(chat) if t.startswith("echo:")]


class BotGatewayFactory(Protocol):
    def __call__(self, *, webhooks: bool = False) -> AbstractContextManager[BotGateway]: ...


@pytest.fixture
def telegram(upstream: OpenAIUpstream) -> Iterator[tuple[TelegramBotAPI, BotAccount]]:
    with telegram_api() as api:
        yield api, api.add_bot("acme_bot")


@pytest.fixture
def bot_gateway(
    tmp_path: Path, upstream: OpenAIUpstream, telegram: tuple[TelegramBotAPI, BotAccount]
) -> Iterator[BotGatewayFactory]:
    """``with bot_gateway() as gw``: a gateway whose tenant holds ``acme_bot``'s token; every
    gateway of a test uses the same directories, so a second one is the first restarted."""
    api, bot = telegram
    runtime_dir, data_dir = tmp_path / "run", tmp_path / "data"
    runtime_dir.mkdir()
    (runtime_dir / IDENTITY_FILE).write_text(IDENTITY + "\n")
    dek = os.urandom(32)
    with serve_in_thread(UnsealAnswer(dek)) as control_plane:
        write_bundle(runtime_dir, [new_key()], upstream.url)
        enable_inbound(runtime_dir, INBOUND_KEY)
        path = runtime_dir / BUNDLE_FILE
        bundle = msgspec.json.decode(path.read_bytes(), type=GatewayBundle)
        bundle = msgspec.structs.replace(
            bundle,
            tenant_id=TENANT_ID,  # the tenant the credential is sealed for
            credentials=[sealed(dek, "c-telegram", "telegram_bot", {"token": bot.token})],
            control_plane_url=control_plane.url,
            provider_bases={"telegram": api.url},
        )
        path.write_bytes(msgspec.json.encode(bundle))

        @contextmanager
        def start(*, webhooks: bool = False) -> Iterator[BotGateway]:
            current = msgspec.json.decode(path.read_bytes(), type=GatewayBundle)
            current = msgspec.structs.replace(current, channel_webhooks=webhooks)
            path.write_bytes(msgspec.json.encode(current))
            settings = load_settings(NO_DAILY_RESET)
            app = create_app(
                settings,
                BundleSource(path, current),
                ConversationStore(data_dir / DATABASE_FILE),
                ModelClient(settings),
            )
            with serve_in_thread(app, lifespan="on") as server:
                yield BotGateway(server.url, api, bot, upstream, runtime_dir, dek)

        yield start


async def test_pairing_withholds_a_strangers_messages_until_the_owner_approves_the_code(
    bot_gateway: BotGatewayFactory,
) -> None:
    with bot_gateway() as gw:
        access = await gw.running("polling")
        assert (access["dm_policy"], access["approved"]) == ("pairing", [])
        gw.api.push_update(gw.bot.token, private_message("hello", sender=ALICE))
        told = (await gw.wait_shown(ALICE.id, "Your code is"))[-1]
        code = re.search(r"Your code is ([A-Z2-9]{8})", told)
        assert code is not None, told
        gw.api.push_update(gw.bot.token, private_message("anyone there?", sender=ALICE))
        await gw.handled()
        assert gw.shown(ALICE.id) == [told], "one code a minute, and no answer"
        assert gw.upstream.requests_to("/v1/chat/completions") == [], "withheld from the model"

        async with gw.client(key=None) as anonymous:
            refused = await anonymous.post(TELEGRAM_APPROVALS_PATH, json={"code": code[1]})
        assert refused.status_code == 401, refused.text
        async with gw.client() as client:
            unknown = await client.post(TELEGRAM_APPROVALS_PATH, json={"code": "ZZZZZZZZ"})
            approved = await client.post(TELEGRAM_APPROVALS_PATH, json={"code": code[1].lower()})
            again = await client.post(TELEGRAM_APPROVALS_PATH, json={"code": code[1]})
        assert unknown.status_code == 404, unknown.text
        assert unknown.headers["content-type"].startswith("application/problem+json")
        assert "no one waits with this code" in unknown.json()["detail"]
        assert approved.status_code == 200, approved.text
        assert approved.json()["user_id"] == ALICE.id
        assert approved.json()["display_name"] == "Alice"
        assert again.status_code == 404, "a code works once"
        await gw.wait_shown(ALICE.id, "You are in")

        gw.api.push_update(gw.bot.token, private_message("hello again", sender=ALICE))
        await gw.wait_shown(ALICE.id, "echo: hello again")
        assert gw.echoes(ALICE.id) == ["echo: hello again"], "the withheld ones stay withheld"
        typing = [
            c for c in gw.api.calls(gw.bot.token, "sendChatAction") if c["chat_id"] == ALICE.id
        ]
        assert typing, "typing shown while the model worked"
        assert {c["action"] for c in typing} == {"typing"}
        assert [p["user_id"] for p in (await gw.access())["approved"]] == [ALICE.id]


async def test_allowlist_open_and_groups(bot_gateway: BotGatewayFactory) -> None:
    with bot_gateway() as gw:
        await gw.running("polling")
        changed = await gw.set_access(dm_policy="allowlist", allowlist=[BOB.id])
        assert (changed["dm_policy"], changed["allowlist"]) == ("allowlist", [BOB.id])
        gw.api.push_update(gw.bot.token, private_message("not on the list", sender=ALICE))
        gw.api.push_update(gw.bot.token, private_message("hi from bob", sender=BOB))
        await gw.wait_shown(BOB.id, "echo: hi from bob")
        await gw.handled()
        assert gw.shown(ALICE.id) == [], "under allowlist a stranger is told nothing"

        async with gw.client() as client:
            bad = await client.put(TELEGRAM_ACCESS_PATH, json={"dm_policy": "everyone"})
        assert bad.status_code == 400, bad.text
        await gw.set_access(dm_policy="open")
        gw.api.push_update(gw.bot.token, private_message("hey", sender=CAROL))
        await gw.wait_shown(CAROL.id, "echo: hey")

        # Groups: only messages that mention the bot or reply to it.
        gw.api.push_update(gw.bot.token, group_message("talking among ourselves"))
        gw.api.push_update(gw.bot.token, group_message("what is new?", mention="acme_bot"))
        gw.api.push_update(gw.bot.token, group_message("and you?", mention="acme_bot_helper"))
        gw.api.push_update(gw.bot.token, reply_to_bot("and then?", gw.bot))
        await gw.wait_shown(GROUP, "echo: and then?")
        await gw.handled()
        assert gw.echoes(GROUP) == ["echo: @acme_bot what is new?", "echo: and then?"]
        prompts = [str(r.body["messages"]) for r in gw.upstream.requests_to("/v1/chat/completions")]
        assert not [p for p in prompts if "among ourselves" in p or "and you?" in p], (
            "group chatter never reaches the model"
        )


async def test_replies_are_split_rendered_and_sent_plain_when_unparsable(
    bot_gateway: BotGatewayFactory,
) -> None:
    with bot_gateway() as gw:
        await gw.running("polling")
        await gw.set_access(dm_policy="open")
        long_text = "🙂 ok " * 900  # 5400 UTF-16 code units
        gw.api.push_update(gw.bot.token, private_message(long_text, sender=CAROL))
        gw.api.push_update(gw.bot.token, private_message("**bold** <tag> & co", sender=CAROL))
        gw.api.push_update(gw.bot.token, private_message("**a _b** c_", sender=CAROL))
        await gw.wait_shown(CAROL.id, "echo: **a _b** c_")
        sent = [m for m in gw.api.sent(gw.bot.token) if str(m.chat_id) == str(CAROL.id)]
        assert len(sent) == 4, [m.text[:40] for m in sent]
        pieces = [plain_text(m.text, m.parse_mode) for m in sent[:2]]
        assert "".join(pieces) == f"echo: {long_text}", "split, nothing lost"
        assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in pieces)
        assert all("\ud83d" not in p for p in pieces), "no emoji cut in half"
        assert (sent[2].parse_mode, sent[2].text) == (
            "HTML",
            "echo: <b>bold</b> &lt;tag&gt; &amp; co",
        )
        assert (sent[3].parse_mode, sent[3].text) == (None, "echo: **a _b** c_")


async def test_a_reply_retried_after_telegram_failed_midway_sends_each_piece_once(
    bot_gateway: BotGatewayFactory,
) -> None:
    with bot_gateway() as gw:
        await gw.running("polling")
        await gw.set_access(dm_policy="open")
        # The first piece goes through, the second meets Telegram's 500 twice: the reply is
        # handed to the bot again (delivery is at least once) and goes on where it stopped.
        gw.api.refuse(gw.bot.token, "sendMessage", times=2, after=1)
        long_text = "word " * 1000  # two pieces
        gw.api.push_update(gw.bot.token, private_message(long_text, sender=CAROL))
        gw.api.push_update(gw.bot.token, private_message("next", sender=CAROL))
        await gw.wait_shown(CAROL.id, "echo: next")
        texts = gw.shown(CAROL.id)
        assert len(texts) == 3, [t[:20] for t in texts]
        assert "".join(texts[:2]) == f"echo: {long_text}"
        assert texts[2] == "echo: next"
        assert len(gw.api.calls(gw.bot.token, "sendMessage")) == 5, "3 sent, 2 refused"


async def test_a_restart_loses_nothing_and_repeats_nothing(
    bot_gateway: BotGatewayFactory, tmp_path: Path
) -> None:
    with bot_gateway() as gw:
        await gw.running("polling")
        await gw.set_access(dm_policy="open")
        gw.api.push_update(gw.bot.token, private_message("before", sender=CAROL))
        await gw.wait_shown(CAROL.id, "echo: before")
    # Messages sent while the gateway is down wait at Telegram, unconfirmed.
    gw.api.push_update(gw.bot.token, private_message("while down", sender=CAROL))
    with bot_gateway() as gw:
        assert (await gw.running("polling"))["dm_policy"] == "open", "kept on the volume"
        await gw.wait_shown(CAROL.id, "echo: while down")
        gw.api.push_update(gw.bot.token, private_message("after", sender=CAROL))
        await gw.wait_shown(CAROL.id, "echo: after")
        assert gw.echoes(CAROL.id) == ["echo: before", "echo: while down", "echo: after"]
    token = gw.bot.token.encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "telegram.sqlite3" for p in written)
    assert not [p for p in written if token in p.read_bytes()], "the token is kept sealed"


async def test_the_bot_follows_its_token_rotated_and_removed(
    bot_gateway: BotGatewayFactory,
) -> None:
    with bot_gateway() as gw:
        await gw.running("polling")
        await gw.set_access(dm_policy="open")
        successor = gw.api.add_bot("acme_new_bot")
        gw.rewrite_bundle(credentials=[gw.token_credential(successor)])
        await gw.running("polling", successor)
        gw.api.push_update(successor.token, private_message("new bot?", sender=CAROL))
        await gw.wait_shown(CAROL.id, "echo: new bot?", successor)
        assert (await gw.access())["dm_policy"] == "open", "the policy belongs to the tenant"

        gw.rewrite_bundle(credentials=[])
        await gw.running("off")
        gw.api.push_update(successor.token, private_message("while off", sender=CAROL))
        gw.rewrite_bundle(credentials=[gw.token_credential(successor)])
        await gw.running("polling", successor)
        await gw.wait_shown(CAROL.id, "echo: while off", successor)
        echoes = [t for t in gw.shown(CAROL.id, successor) if t.startswith("echo:")]
        assert echoes == ["echo: new bot?", "echo: while off"], "kept at Telegram, answered once"


async def test_webhook_mode_takes_relayed_updates_and_never_polls(
    bot_gateway: BotGatewayFactory,
) -> None:
    with bot_gateway(webhooks=True) as gw:
        await gw.running("webhook")
        await gw.set_access(dm_policy="open")
        update = {"update_id": 900_001, **private_message("by webhook", sender=ALICE)}
        async with gw.client(key=None) as anonymous:
            refused = await anonymous.post(TELEGRAM_WEBHOOK, json=update)
        assert refused.status_code == 401, "relayed calls carry the inbound key"
        async with gw.client() as client:
            for _ in range(2):  # Telegram delivering it again: answered once
                answer = await client.post(TELEGRAM_WEBHOOK, json=update)
                assert answer.status_code == 200, answer.text
            garbage = await client.post(TELEGRAM_WEBHOOK, content=b'{"update_id": "x"}')
        assert garbage.status_code == 400, garbage.text
        assert "not a Telegram update" in garbage.json()["detail"]
        await gw.wait_shown(ALICE.id, "echo: by webhook")
        # A later message of the chat is answered after it: the replay made no second reply.
        later = {"update_id": 900_002, **private_message("later", sender=ALICE)}
        async with gw.client() as client:
            assert (await client.post(TELEGRAM_WEBHOOK, json=later)).status_code == 200
        await gw.wait_shown(ALICE.id, "echo: later")
        assert gw.echoes(ALICE.id) == ["echo: by webhook", "echo: later"]
        assert gw.api.calls(gw.bot.token, "getUpdates") == [], "no polling beside the webhook"


async def test_webhook_mode_polls_while_telegram_has_no_webhook_and_stops_once_it_has(
    bot_gateway: BotGatewayFactory,
) -> None:
    # The token was stored before the control plane had a public URL: nothing registered.
    with bot_gateway(webhooks=True) as gw:
        await gw.running("polling")
        await gw.set_access(dm_policy="open")
        gw.api.push_update(gw.bot.token, private_message("anyone home?", sender=CAROL))
        await gw.wait_shown(CAROL.id, "echo: anyone home?")

        # The control plane registers it (the credential stored again): polling stops.
        registered = await _bot_call(
            gw, "setWebhook", url="https://cp.example/webhooks/telegram/acme", secret_token="s"
        )
        assert registered.status_code == 200, registered.text
        await gw.running("webhook")
        polls = len(gw.api.calls(gw.bot.token, "getUpdates"))
        update = {"update_id": 900_101, **private_message("by webhook now", sender=CAROL)}
        async with gw.client() as client:
            assert (await client.post(TELEGRAM_WEBHOOK, json=update)).status_code == 200
        await gw.wait_shown(CAROL.id, "echo: by webhook now")
        assert len(gw.api.calls(gw.bot.token, "getUpdates")) == polls, "no polling beside it"
        assert gw.echoes(CAROL.id) == ["echo: anyone home?", "echo: by webhook now"]


async def _bot_call(gw: BotGateway, method: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{gw.api.url}/bot{gw.bot.token}/{method}", json=params)
