"""Cutting a reply into the pieces a chat platform takes. Imports nothing else of the
gateway: the control plane's platform bot splits its replies with it too."""

from __future__ import annotations

from collections.abc import Callable


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts a message (a character outside the
    Basic Multilingual Plane, most emoji, counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int, *, utf16: bool = False) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters (UTF-16 code units if ``utf16``),
    cut after a line break or a space where there is one in the second half of a piece."""
    fits: Callable[[str, int], int] = _utf16_prefix if utf16 else _prefix
    pieces: list[str] = []
    while True:
        end = fits(text, limit) if len(text) > limit or utf16 else len(text)
        if end >= len(text):
            break
        cut = max(text.rfind("\n", end // 2, end), text.rfind(" ", end // 2, end))
        cut = cut + 1 if cut > 0 else end
        pieces.append(text[:cut])
        text = text[cut:]
    if text or not pieces:
        pieces.append(text)
    return pieces


def _prefix(text: str, limit: int) -> int:
    return min(len(text), limit)


def _utf16_prefix(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` UTF-16 code units."""
    if len(text) <= limit // 2 or text.isascii():
        return min(len(text), limit)
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)
