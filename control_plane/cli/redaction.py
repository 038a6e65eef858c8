"""A logging filter that masks anything shaped like a Tenantry token or a provider secret.

Installed on the control plane's log handler (:mod:`control_plane.cli.logs`), so a
credential that reaches a log call by mistake (in the message or its arguments, or an
exception's text) never reaches a log line. It is a safety net: code must still not log secrets.
"""

from __future__ import annotations

import logging
import re

SECRET_SHAPES = re.compile(
    r"(?:tnt_admin_|tgk_|tgi_)[A-Za-z0-9_\-]{16,}"  # our admin tokens, gateway keys, identities
    r"|sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style API keys
    r"|\b\d{6,12}:[A-Za-z0-9_\-]{30,}"  # Telegram bot tokens
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*"  # any bearer credential
)
MASK = "[redacted]"


def redact(text: str) -> str:
    return SECRET_SHAPES.sub(MASK, text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg, record.args = redact(message), None
        return True
