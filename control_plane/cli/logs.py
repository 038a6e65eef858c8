"""Logging of the control-plane process: text for people, JSON lines for collectors.

``TENANTRY_LOG_FORMAT`` picks ``text`` or ``json``; ``auto`` (the default) gives text on a
terminal and JSON otherwise (a container, a service manager, a file). Every handler carries
:class:`~control_plane.cli.redaction.RedactSecrets`, so a credential that reaches a log call
by mistake is masked in either format. uvicorn's own loggers go through the same handler.

A JSON line is one object: ``ts`` (Unix seconds), ``level``, ``logger``, ``msg``, ``exc``
(a traceback, when there is one) and any ``extra={...}`` fields of the call, such as
``tenant_id``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import msgspec

from control_plane.cli import redaction

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_NOISY = ("alembic", "httpx", "httpcore")


class JsonLines(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                plain = value if isinstance(value, int | float | bool) else str(value)
                entry[name] = redaction.redact(plain) if isinstance(plain, str) else plain
        if record.exc_text is None and record.exc_info:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return msgspec.json.encode(entry).decode()


def resolve_format(log_format: str, stream: TextIO) -> str:
    if log_format != "auto":
        return log_format
    return "text" if stream.isatty() else "json"


def configure(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Make the root logger write ``log_format`` lines at ``level`` to ``stream`` (stderr)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if resolve_format(log_format, stream) == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(redaction.RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request logs of our own HTTP client (readiness probes) would drown the rest.
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
