"""Passwords: Argon2id hashes (argon2-cffi), a minimal policy, and rehashing on login.

Passwords are guessable, so they get a slow, memory-hard KDF; the random tokens we issue
get fast keyed digests instead (:mod:`control_plane.vault.digests`).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from control_plane.errors import InvalidInputError

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()
# Verified against when the account does not exist, so both cases take the same time.
_DUMMY = _hasher.hash("tenantry-dummy-password-for-timing")


def check_policy(password: str, email: str) -> None:
    """Refuse passwords that are too short, too long, or the email itself."""
    if len(password) < MIN_LENGTH:
        raise InvalidInputError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInputError(f"the password may have at most {MAX_LENGTH} characters")
    if password.strip().lower() == email.strip().lower():
        raise InvalidInputError("the password may not be the email address")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such account, still as slow)."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True
