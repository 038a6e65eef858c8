"""Splitting by UTF-16 code units, as Telegram counts a message's 4096."""

from __future__ import annotations

from tenant_gateway.channels.text import split_text, utf16_length

LIMIT = 4096


def test_emoji_count_twice_and_are_never_cut_in_half() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units in 3000 characters
    pieces = split_text(text, LIMIT, utf16=True)
    assert "".join(pieces) == text
    assert [utf16_length(p) for p in pieces] == [4096, 1904]
    assert all(p == "😀" * len(p) for p in pieces), "no surrogate pair split"
    assert split_text(text, LIMIT) == [text[:LIMIT]], "counting characters: one piece"


def test_a_message_at_the_limit_is_one_piece_and_mixed_text_cuts_at_spaces() -> None:
    assert split_text("a" * LIMIT, LIMIT, utf16=True) == ["a" * LIMIT]
    assert split_text("😀" * (LIMIT // 2), LIMIT, utf16=True) == ["😀" * (LIMIT // 2)]
    text = "привет 🙂 " * 1000
    pieces = split_text(text, LIMIT, utf16=True)
    assert "".join(pieces) == text
    assert all(utf16_length(p) <= LIMIT for p in pieces)
    assert all(p.endswith(" ") for p in pieces[:-1]), "cut after a space"
    assert split_text("", LIMIT, utf16=True) == [""]
