"""The tenant's own Telegram bot's pieces that need no network: Markdown to Telegram HTML
(checked with the Bot API double's parser), who may talk to the bot (on a real SQLite file),
and reading mentions and commands, how far replies got."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from tenant_gateway.channels.contract import TelegramAccessUpdate
from tenant_gateway.channels.telegram import access as access_module
from tenant_gateway.channels.telegram.access import AccessStore, UnknownApproval
from tenant_gateway.channels.telegram.markup import to_html
from tenant_gateway.channels.telegram.updates import command, mentions
from tests.doubles.telegram_markup import plain_text


@pytest.mark.parametrize(
    ("markdown", "html", "shown"),
    [
        ("**bold** and *it*", "<b>bold</b> and <i>it</i>", "bold and it"),
        ("a < b & c > d", "a &lt; b &amp; c &gt; d", "a < b & c > d"),
        ("`x<y` code", "<code>x&lt;y</code> code", "x<y code"),
        ("snake_case_name 2*3*4", "snake_case_name 2*3*4", "snake_case_name 2*3*4"),
        ("# Title\ntext", "<b>Title</b>\ntext", "Title\ntext"),
        ("~~gone~~ __strong__", "<s>gone</s> <b>strong</b>", "gone strong"),
        (
            '[docs](https://e.com/?a=1&b="2")',
            '<a href="https://e.com/?a=1&amp;b=&quot;2&quot;">docs</a>',
            "docs",
        ),
        (
            "```python\nprint(1 < 2)\n```\nafter **x**",
            '<pre><code class="language-python">print(1 &lt; 2)</code></pre>\nafter <b>x</b>',
            "print(1 < 2)\nafter x",
        ),
        ("`**not bold**`", "<code>**not bold**</code>", "**not bold**"),
        ("unpaired *star and _under", "unpaired *star and _under", "unpaired *star and _under"),
    ],
)
def test_markdown_becomes_html_telegram_parses(markdown: str, html: str, shown: str) -> None:
    rendered = to_html(markdown)
    assert rendered == html
    assert plain_text(rendered, "HTML") == shown


async def test_pairing_codes_let_people_in_once_and_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AccessStore(tmp_path / "telegram.sqlite3")
    await store.open()
    try:
        assert store.policy == "pairing"
        assert not store.allows(1)
        code = await store.request(1, "Alice")
        assert code is not None
        assert len(code) == 8
        assert await store.request(1, "Alice") is None, "told once a minute, not per message"
        peer = await store.approve(f" {code[:4].lower()}-{code[4:]} ")  # as people type it
        assert (peer.user_id, peer.display_name) == (1, "Alice")
        assert store.allows(1)
        with pytest.raises(UnknownApproval):
            await store.approve(code)  # used

        now = access_module.time.time()
        monkeypatch.setattr(access_module.time, "time", lambda: now - 2 * 3600)
        stale = await store.request(2, "Bob")  # told two hours ago
        monkeypatch.setattr(access_module.time, "time", lambda: now)
        assert stale is not None
        with pytest.raises(UnknownApproval):
            await store.approve(stale)  # an hour is over
        fresh = await store.request(2, "Bob")  # the minute has passed: a new code
        assert fresh is not None
        assert fresh != stale
        await store.approve(fresh)
        assert store.allows(2)

        assert await store.revoke(2)
        assert not store.allows(2)
        assert not await store.revoke(2)
    finally:
        await store.close()
    # Nothing on the volume tells a code: only its digest is kept.
    with sqlite3.connect(tmp_path / "telegram.sqlite3") as db:
        stored = db.execute("SELECT code_digest FROM peers WHERE user_id = 2").fetchone()[0]
    assert stored is None, "approved: the code is gone"
    assert hashlib.sha256(fresh.encode()).hexdigest() not in (
        tmp_path / "telegram.sqlite3"
    ).read_text(errors="replace")


async def test_policies_and_allowlist_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "telegram.sqlite3"
    store = AccessStore(path)
    await store.open()
    code = await store.request(7, "Carol")
    assert code is not None
    await store.approve(code)
    await store.update(TelegramAccessUpdate(dm_policy="allowlist", allowlist=[5, 5, 6]))
    assert (store.allows(5), store.allows(7), store.allows(8)) == (True, False, False)
    await store.close()

    again = AccessStore(path)
    await again.open()
    try:
        assert again.policy == "allowlist"
        assert again.allowlist == frozenset({5, 6})
        assert list(again.approved) == [7]
        await again.update(TelegramAccessUpdate(dm_policy="pairing"))
        assert again.allows(7), "approved people are let in again under pairing"
        await again.update(TelegramAccessUpdate(dm_policy="open"))
        assert again.allows(12345)
    finally:
        await again.close()


async def test_sent_pieces_of_replies_are_remembered_across_a_restart_for_a_week(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "telegram.sqlite3"
    store = AccessStore(path)
    try:
        assert await store.pieces_sent("42", "42:7") == 0
        now = access_module.time.time()
        monkeypatch.setattr(access_module.time, "time", lambda: now - 8 * 86400)
        await store.record_sent("42", "42:1", 1)  # a reply of eight days ago
        monkeypatch.setattr(access_module.time, "time", lambda: now)
        await store.record_sent("42", "42:7", 1)
        await store.record_sent("42", "42:7", 2)
        assert await store.pieces_sent("42", "42:7") == 2
        assert await store.pieces_sent("43", "42:7") == 0, "per chat"
    finally:
        await store.close()

    again = AccessStore(path)
    try:
        assert await again.pieces_sent("42", "42:7") == 2
        assert await again.pieces_sent("42", "42:1") == 0, "forgotten after a week"
    finally:
        await again.close()


def _message(text: str, reply_author: int | None = None) -> SimpleNamespace:
    replied = None
    if reply_author is not None:
        replied = SimpleNamespace(from_user=SimpleNamespace(id=reply_author))
    return SimpleNamespace(text=text, reply_to_message=replied)


def test_mentions_and_commands() -> None:
    assert mentions(_message("hey @Acme_Bot, help"), 42, "acme_bot")
    assert mentions(_message("thanks"), 42, "acme_bot") is False
    assert mentions(_message("@acme_bot"), 42, "acme_bot")
    assert mentions(_message("(@acme_bot) what now?"), 42, "acme_bot")
    assert mentions(_message("ask @acme_bot_helper"), 42, "acme_bot") is False, "another bot"
    assert mentions(_message("ask @acme_botany"), 42, "acme_bot") is False
    assert mentions(_message("mail me at x@acme_bot"), 42, "acme_bot") is False
    assert mentions(_message("and then?", reply_author=42), 42, "acme_bot")
    assert mentions(_message("and then?", reply_author=7), 42, "acme_bot") is False
    assert command("/start ABCD", "acme_bot") == "/start"
    assert command("/start@acme_bot ABCD", "acme_bot") == "/start"
    assert command("/start@other_bot", "acme_bot") is None
    assert command("hello /start", "acme_bot") is None
    assert command("", "acme_bot") is None
