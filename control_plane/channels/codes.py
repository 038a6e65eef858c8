"""Pairing codes: short enough to type into a chat, random enough not to be guessed.

Eight characters from a 32-letter alphabet without the look-alikes 0/O and 1/I (40 bits):
with wrong codes throttled per chat, and each code alive for ten minutes, guessing one is
hopeless. What a user types is forgiven case, spaces and dashes.
"""

from __future__ import annotations

import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LENGTH = 8


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize(typed: str) -> str | None:
    """The code a user typed, in its canonical form; None when it cannot be a code."""
    code = "".join(typed.split()).replace("-", "").upper()
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code
