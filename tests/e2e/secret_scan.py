"""Searching everything a flow left behind for planted secret values.

A planted value is looked for as it is and in the encodings it could hide in: hex (how
PostgreSQL's ``COPY`` shows a ``bytea``) and base64 at each of the three byte alignments, in
both alphabets (how bundles, API answers and JSON documents carry bytes).

Sources: files under a directory, a PostgreSQL database dumped table by table, and (for the
one place the values must be) a process's writable memory.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from tests.services import psycopg_url


def encodings(secret: str) -> list[bytes]:
    """``secret`` as bytes, hex, and the parts of its base64 that do not depend on what
    surrounds it, at each alignment and in both alphabets."""
    raw = secret.encode()
    forms = [raw, raw.hex().encode()]
    for shift in range(3):
        data = bytes(shift) + raw
        encoded = base64.b64encode(data)
        core = encoded[4 if shift else 0 : 4 * (len(data) // 3)]
        forms += [core, core.replace(b"+", b"-").replace(b"/", b"_")]
    return forms


class SecretScan:
    """Which of the planted values (by label) occur in some bytes, in any of their forms."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.labels: dict[bytes, str] = {}
        for label, value in secrets.items():
            for form in encodings(value):
                self.labels[form] = label
        self._pattern = re.compile(
            b"|".join(re.escape(form) for form in sorted(self.labels, key=len, reverse=True))
        )

    def hits(self, data: bytes) -> set[str]:
        matched = {match.group() for match in self._pattern.finditer(data)}
        # A value found inside a longer one (a bot token's secret part) is found too.
        return {label for form, label in self.labels.items() if any(form in m for m in matched)}

    def files(self, root: Path) -> dict[str, set[str]]:
        """Every file under ``root`` holding a planted value, with the values it holds."""
        found: dict[str, set[str]] = {}
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                labels = self.hits(path.read_bytes())
                if labels:
                    found[str(path.relative_to(root))] = labels
        return found

    def texts(self, texts: Iterable[bytes]) -> set[str]:
        return {label for text in texts for label in self.hits(text)}


def dump_postgres(owner_url: str) -> bytes:
    """Every row of every table of the database, as ``COPY … TO STDOUT`` writes them.

    Read as the schema owner in platform mode, so row-level security shows every tenant's
    rows."""
    chunks: list[bytes] = []
    with psycopg.connect(psycopg_url(owner_url)) as connection, connection.transaction():
        connection.execute(
            "SELECT set_config('app.platform', 'on', true),"
            " set_config('app.platform_reason', 'test: secret scan', true)"
        )
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
        for (table,) in tables:
            chunks.append(f"-- {table}\n".encode())
            query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(sql.Identifier(table))
            with connection.cursor().copy(query) as copy:
                chunks.extend(bytes(block) for block in copy)
    return b"".join(chunks)


def process_memory(pid: int) -> bytes:
    """The writable private memory of process ``pid`` (its heap, where Python keeps
    strings), read through ``/proc/<pid>/mem``."""
    chunks: list[bytes] = []
    with (
        open(f"/proc/{pid}/maps", encoding="ascii") as maps,
        open(f"/proc/{pid}/mem", "rb", buffering=0) as memory,
    ):
        for line in maps:
            span, permissions = line.split()[:2]
            if not permissions.startswith("rw") or permissions[3] != "p":
                continue
            start, end = (int(address, 16) for address in span.split("-"))
            try:
                memory.seek(start)
                chunks.append(memory.read(end - start))
            except (OSError, OverflowError, ValueError):  # a region that went away or is guarded
                continue
    return b"".join(chunks)
