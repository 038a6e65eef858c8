"""Passwords: the policy refuses weak ones by rule, hashes are Argon2id, and hashes made with
older parameters are recognised so a login can rehash them."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from control_plane.errors import InvalidInputError
from control_plane.identity import passwords

EMAIL = "ann@example.com"


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("short pass1", "at least 12"),
        ("x" * 1025, "at most 1024"),
        ("ANN@example.com", "email"),
        ("  ann@example.com ", "email"),
    ],
)
def test_the_policy_refuses_weak_passwords(password: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        passwords.check_policy(password, EMAIL)


def test_the_policy_accepts_twelve_characters() -> None:
    passwords.check_policy("twelve chars", EMAIL)
    assert len("twelve chars") == passwords.MIN_LENGTH


def test_a_hash_verifies_its_password_only() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse batterY")


def test_an_unknown_account_or_a_broken_hash_never_verifies() -> None:
    assert not passwords.verify_password(None, "tenantry-dummy-password-for-timing")
    assert not passwords.verify_password(None, "anything at all")
    assert not passwords.verify_password("not-a-hash", "anything at all")


def test_hashes_with_other_parameters_need_rehashing() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("a password 123")
    assert passwords.verify_password(weaker, "a password 123")
    assert passwords.needs_rehash(weaker)
    assert not passwords.needs_rehash(passwords.hash_password("a password 123"))
    assert passwords.needs_rehash("not-a-hash")
