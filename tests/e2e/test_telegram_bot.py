"""A tenant's own Telegram bot, end to end: a real ``tenantry up`` and gateway process, the
tenant's bot token in the vault, aiogram in the gateway pointed at the Telegram Bot API
double. Long polling in the embedded default, the control plane's webhook (secret checked)
with a public URL; DM policies pairing (the owner approves the code the bot gave), allowlist
and open; groups answered when the bot is mentioned or replied to; long replies split;
Markdown sent as Telegram HTML, plain text when Telegram cannot parse it; typing shown; the
token in no log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from control_plane.runtime.local.processes import read_state
from tests.doubles.openai_upstream import openai_upstream
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
from tests.e2e.conftest import ControlPlaneProcess
from tests.e2e.test_chat_platforms import assert_no_secret_logged, control_plane, problem
from tests.e2e.test_embedded_default import wait_running
from tests.environment import without_settings
from tests.waiting import eventually_sync

pytestmark = pytest.mark.slow

BOB = TelegramUser(id=5_000_002, first_name="Bob", username="bob")
CAROL = TelegramUser(id=5_000_003, first_name="Carol")
GROUP = -1_001_234_567_890


def shown(api: TelegramBotAPI, bot: BotAccount, chat: int) -> list[str]:
    """What the chat shows of the bot's messages, markup taken out."""
    return [
        plain_text(m.text, m.parse_mode) for m in api.sent(bot.token) if str(m.chat_id) == str(chat)
    ]


def wait_shown(api: TelegramBotAPI, bot: BotAccount, chat: int, text: str) -> list[str]:
    def arrived() -> list[str] | None:
        texts = shown(api, bot, chat)
        return texts if any(text in t for t in texts) else None

    return eventually_sync(arrived, timeout=30, what=f"{text!r} shown in chat {chat}")


def run_channels_cli(cp: ControlPlaneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "channels",
            "--data-dir",
            str(cp.data_dir),
            *list(args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=without_settings(),
        check=False,
    )


def channels_cli(cp: ControlPlaneProcess, *args: str) -> str:
    result = run_channels_cli(cp, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def tenant_with_bot(client: httpx.Client, slug: str, bot: BotAccount) -> str:
    made = client.post("/api/v1/tenants", json={"slug": slug}).json()
    wait_running(client, slug)
    stored = client.put(
        f"/api/v1/tenants/{slug}/credentials/telegram_bot?validate=true",
        json={"token": bot.token},
    )
    assert stored.status_code == 200, stored.text
    return str(made["id"])


def bot_mode(client: httpx.Client, slug: str, mode: str) -> dict[str, object]:
    def running() -> dict[str, object] | None:
        answer = client.get(f"/api/v1/tenants/{slug}/channels/telegram")
        found = answer.json() if answer.status_code == 200 else {}
        return found if found.get("mode") == mode and found.get("username") else None

    return eventually_sync(running, timeout=30, what=f"the bot {mode}")


def test_own_bot_by_polling(tmp_path: Path) -> None:
    with openai_upstream(["stub-model"]) as fleet, telegram_api() as api:
        bot = api.add_bot("acme_bot")
        env = {"TENANTRY_PLATFORM_MODELS_URL": fleet.url, "TENANTRY_TELEGRAM_API_BASE": api.url}
        with control_plane(tmp_path, **env) as cp, cp.client() as client:
            tenant_id = tenant_with_bot(client, "acme", bot)
            access = bot_mode(client, "acme", "polling")
            assert access["dm_policy"] == "pairing"
            assert access["username"] == "acme_bot"
            settings = "/api/v1/tenants/acme/channels/telegram"

            # Pairing: a stranger gets a code, not an answer, until the owner approves it.
            api.push_update(bot.token, private_message("hello", sender=ALICE))
            told = wait_shown(api, bot, ALICE.id, "Your code is")[-1]
            code = re.search(r"Your code is ([A-Z2-9]{8})", told)
            assert code is not None, told
            unknown = client.post(f"{settings}/approvals", json={"code": "ZZZZZZZZ"})
            assert "no one waits" in problem(unknown, 404)
            # The owner approves with the CLI (the API's POST .../telegram/approvals).
            approved = channels_cli(cp, "telegram", "approve", "acme", code[1].lower())
            assert approved.strip() == f"approved Alice (Telegram user {ALICE.id})"
            failed = run_channels_cli(cp, "telegram", "approve", "acme", code[1])
            assert failed.returncode == 1
            assert "404: no one waits with this code" in failed.stderr, "a code works once"
            wait_shown(api, bot, ALICE.id, "You are in")
            assert not any(t.startswith("echo:") for t in shown(api, bot, ALICE.id))
            api.push_update(bot.token, private_message("hello again", sender=ALICE))
            wait_shown(api, bot, ALICE.id, "echo: hello again")
            typing = [c for c in api.calls(bot.token, "sendChatAction") if c["chat_id"] == ALICE.id]
            assert typing
            assert typing[0]["action"] == "typing"
            listed = client.get(settings).json()
            assert [p["user_id"] for p in listed["approved"]] == [ALICE.id]

            # Allowlist: only the listed ids; open: everyone.
            changed = channels_cli(
                cp, "telegram", "set", "acme", "--dm-policy", "allowlist", "--allow", str(BOB.id)
            )
            assert "dm policy:  allowlist" in changed
            assert f"allowlist:  {BOB.id}" in changed
            assert f"Alice ({ALICE.id})" in channels_cli(cp, "telegram", "show", "acme")
            api.push_update(bot.token, private_message("not on the list", sender=ALICE))
            api.push_update(bot.token, private_message("hi from bob", sender=BOB))
            wait_shown(api, bot, BOB.id, "echo: hi from bob")
            assert not any("not on the list" in t for t in shown(api, bot, ALICE.id))
            bad = client.put(settings, json={"dm_policy": "everyone"})
            assert bad.status_code == 400, bad.text
            client.put(settings, json={"dm_policy": "open"})
            api.push_update(bot.token, private_message("hey", sender=CAROL))
            wait_shown(api, bot, CAROL.id, "echo: hey")

            # Groups: only when mentioned or replied to.
            api.push_update(bot.token, group_message("talking among ourselves"))
            api.push_update(bot.token, group_message("what is new?", mention="acme_bot"))
            api.push_update(bot.token, reply_to_bot("and then?", bot))
            wait_shown(api, bot, GROUP, "echo: and then?")
            group = [t for t in shown(api, bot, GROUP) if t.startswith("echo:")]
            assert group == ["echo: @acme_bot what is new?", "echo: and then?"], group

            # Long replies split at 4096 (UTF-16); Markdown as HTML, plain when unparsable.
            long_text = "🙂 ok " * 900  # 5400 UTF-16 code units
            api.push_update(bot.token, private_message(long_text, sender=CAROL))
            api.push_update(bot.token, private_message("**bold** <tag> & co", sender=CAROL))
            api.push_update(bot.token, private_message("**a _b** c_", sender=CAROL))
            wait_shown(api, bot, CAROL.id, "echo: **a _b** c_")
            texts = shown(api, bot, CAROL.id)
            start = texts.index(next(t for t in texts if t.startswith("echo: 🙂")))
            pieces = texts[start : start + 2]
            assert "".join(pieces) == f"echo: {long_text}", "split, nothing lost"
            assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in pieces)
            sent = [m for m in api.sent(bot.token) if str(m.chat_id) == str(CAROL.id)]
            html = next(m for m in sent if "bold" in m.text)
            assert html.parse_mode == "HTML"
            assert html.text == "echo: <b>bold</b> &lt;tag&gt; &amp; co"
            assert sent[-1].parse_mode is None
            assert sent[-1].text == "echo: **a _b** c_"

            # The gateway killed mid-conversation: what it had not confirmed to Telegram is
            # answered once it is back (and the open policy, on the volume, still holds).
            state = read_state(cp.data_dir / "gateways" / tenant_id)
            assert state is not None
            api.push_update(bot.token, private_message("across a crash", sender=CAROL))
            os.kill(state.pid, signal.SIGKILL)
            wait_shown(api, bot, CAROL.id, "echo: across a crash")
            assert shown(api, bot, CAROL.id).count("echo: across a crash") == 1
            stored = [p for p in cp.data_dir.rglob("*") if p.is_file()]
            assert not [p for p in stored if bot.token.encode() in p.read_bytes()], "sealed"

            # The credential deleted: the bot stops.
            assert client.delete("/api/v1/tenants/acme/credentials/telegram_bot").status_code == 204
            bot_mode_off = eventually_sync(
                lambda: client.get(settings).json()["mode"] == "off", what="the bot stopped"
            )
            assert bot_mode_off
            assert_no_secret_logged(cp, tenant_id, bot.token)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_own_bot_by_webhook(tmp_path: Path) -> None:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    with openai_upstream(["stub-model"]) as fleet, telegram_api() as api:
        bot = api.add_bot("acme_bot")
        env = {
            "TENANTRY_PLATFORM_MODELS_URL": fleet.url,
            "TENANTRY_TELEGRAM_API_BASE": api.url,
            "TENANTRY_PUBLIC_URL": public_url,
        }
        with control_plane(tmp_path, ("--port", str(port)), **env) as cp, cp.client() as client:
            tenant_id = tenant_with_bot(client, "acme", bot)
            assert bot.webhook_url == f"{public_url}/webhooks/telegram/{tenant_id}"
            secret = bot.webhook_secret
            assert secret, "registered with a secret token"
            bot_mode(client, "acme", "webhook")
            client.put("/api/v1/tenants/acme/channels/telegram", json={"dm_policy": "open"})

            update = private_message("hello by webhook", sender=ALICE)
            for secret in (None, "not-the-secret"):
                refused = asyncio.run(api.post_webhook_update(bot.token, update, secret=secret))
                assert refused.status_code == 401, refused.text
            for _ in range(2):  # delivered again: answered once
                answer = asyncio.run(api.post_webhook_update(bot.token, update))
                assert answer.status_code == 200, answer.text
            wait_shown(api, bot, ALICE.id, "echo: hello by webhook")
            assert [t for t in shown(api, bot, ALICE.id) if t.startswith("echo:")] == [
                "echo: hello by webhook"
            ]
            assert api.calls(bot.token, "getUpdates") == [], "no polling beside the webhook"

            assert client.delete("/api/v1/tenants/acme/credentials/telegram_bot").status_code == 204
            assert bot.webhook_url == "", "the webhook is removed with the credential"
            assert_no_secret_logged(cp, tenant_id, bot.token, secret)
