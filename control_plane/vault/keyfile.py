"""Private key files of the embedded default: created once, atomically, mode 0600.

Where production supplies a key through an environment variable (``TENANTRY_KEK``,
``TENANTRY_TOKEN_HASH_KEY``), the embedded default generates one on first start and keeps it
in the data dir. Two control-plane processes starting at once must end up with the same key,
so a new file is published with ``link(2)`` (which never replaces an existing one), and a
file readable by anyone but its owner is refused rather than used.

Errors are raised as the caller's own type (``error(problem)``), so each key's messages name
its own variable.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

ErrorFactory = Callable[[str], Exception]


def read_private(key_file: Path, error: ErrorFactory) -> str | None:
    """The key file's text, or None when it does not exist; refuses loose permissions."""
    try:
        with key_file.open("rb") as handle:
            status = os.fstat(handle.fileno())
            _check_private(key_file, status, error)
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"not set, and the key file {key_file} cannot be read: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not set, and the key file {key_file} is not UTF-8 text") from exc


def create_private(key_file: Path, text: str, error: ErrorFactory) -> bool:
    """Publish ``text`` as a new 0600 ``key_file``; False if another process got there first."""
    try:
        key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = _write_private_temporary(key_file, text)
        try:
            os.link(temporary, key_file)  # atomic, and never replaces an existing key
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)
        _sync_directory(key_file.parent)
    except OSError as exc:
        raise error(
            f"not set, and the key file {key_file} cannot be created: {exc.strerror}"
        ) from exc
    return True


def replace_private(key_file: Path, text: str, error: ErrorFactory) -> None:
    """Replace ``key_file`` (mode 0600) with ``text``, atomically."""
    try:
        key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = _write_private_temporary(key_file, text)
        try:
            os.replace(temporary, key_file)
        finally:
            temporary.unlink(missing_ok=True)
        _sync_directory(key_file.parent)
    except OSError as exc:
        raise error(f"cannot write the key file {key_file}: {exc.strerror}") from exc


def _check_private(key_file: Path, status: os.stat_result, error: ErrorFactory) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise error(f"not set, and the key file {key_file} is not a regular file")
    if status.st_mode & 0o077:
        raise error(
            f"not set, and the key file {key_file} is accessible to other users "
            f"(mode {stat.S_IMODE(status.st_mode):04o}); run `chmod 600 {key_file}`"
        )


def _write_private_temporary(key_file: Path, text: str) -> Path:
    """A fully written, fsynced 0600 file next to ``key_file`` holding ``text``."""
    temporary = key_file.with_name(f".{key_file.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
