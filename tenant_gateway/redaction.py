"""Masking of secrets in log lines, for every Tenantry process that handles them.

Two nets, both applied by :class:`RedactSecrets` to a record's message, its arguments and its
traceback:

* **shapes**: anything that looks like one of our tokens (``tnt_admin_…``, ``tgk_…``,
  ``tgi_…``), a provider API key (``sk-…``), a Telegram bot token or a bearer credential;
* **values**: the exact values this process has handled in plaintext, registered with
  :meth:`SecretValues.add` by the code that handles them (the control plane's vault while it
  validates and stores a credential, the gateway's credential keeper for everything it
  unseals). This catches what has no recognisable shape, such as an OpenAI-compatible
  server's key. The values are held in this process's memory only; values shorter than
  :data:`MIN_SECRET_LENGTH` are not registered (they would mask ordinary words).

It is a safety net: code must still not log secrets. The gateway installs the filter on its
log handler; the control plane reuses it (the gateway never imports the control plane).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable

SECRET_SHAPES = re.compile(
    r"(?:tnt_admin_|tgk_|tgi_)[A-Za-z0-9_\-]{16,}"  # our admin tokens, gateway keys, identities
    r"|sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style API keys
    r"|\b\d{6,12}:[A-Za-z0-9_\-]{30,}"  # Telegram bot tokens
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*"  # any bearer credential
)
MASK = "[redacted]"
MIN_SECRET_LENGTH = 8
"""Shortest value :meth:`SecretValues.add` registers."""
DEFAULT_CAPACITY = 4096
"""Values a registry keeps; past that the oldest are forgotten (the control plane handles
every tenant's credentials over its life, the gateway a handful)."""


class SecretValues:
    """The exact secret values this process holds, to be masked wherever they appear.

    Lookup is by the first :data:`MIN_SECRET_LENGTH` characters of each value, so masking a
    line costs one dictionary probe per character whatever the number of values, and adding
    a value costs the same whatever the number held. Readers never lock: they only look
    entries up, which writers replace whole.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._values: OrderedDict[str, None] = OrderedDict()  # the oldest is forgotten first
        self._index: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __repr__(self) -> str:
        return f"SecretValues({len(self)} values)"  # never the values

    def add(self, *values: str) -> None:
        """Register ``values`` (and their JSON-escaped forms); short ones are ignored."""
        forms = [form for value in values for form in _forms(value)]
        if not forms:
            return
        with self._lock:
            for form in forms:
                if form in self._values:
                    self._values.move_to_end(form)
                    continue
                self._values[form] = None
                prefix = form[:MIN_SECRET_LENGTH]
                self._index[prefix] = (*self._index.get(prefix, ()), form)
            while len(self._values) > self.capacity:
                self._forget(self._values.popitem(last=False)[0])

    def _forget(self, form: str) -> None:
        prefix = form[:MIN_SECRET_LENGTH]
        left = tuple(value for value in self._index.get(prefix, ()) if value != form)
        if left:
            self._index[prefix] = left
        else:
            self._index.pop(prefix, None)

    def mask(self, text: str) -> str:
        """``text`` with every registered value in it replaced by :data:`MASK`."""
        index = self._index
        if not index or len(text) < MIN_SECRET_LENGTH:
            return text
        found: set[str] = set()
        for start in range(len(text) - MIN_SECRET_LENGTH + 1):
            candidates = index.get(text[start : start + MIN_SECRET_LENGTH])
            if candidates:
                found.update(value for value in candidates if text.startswith(value, start))
        for value in sorted(found, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text


def _forms(value: str) -> Iterable[str]:
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return ()
    escaped = json.dumps(value)[1:-1]  # how it shows inside a JSON document or a repr
    return (value,) if escaped == value else (value, escaped)


SECRET_VALUES = SecretValues()
"""This process's registry: what :class:`RedactSecrets` masks unless given another."""


def redact(text: str, values: SecretValues | None = None) -> str:
    """``text`` with secret shapes and registered secret values masked."""
    registry = SECRET_VALUES if values is None else values
    return SECRET_SHAPES.sub(MASK, registry.mask(text))


class RedactSecrets(logging.Filter):
    """A handler filter masking secrets in each record's message, arguments and traceback."""

    def __init__(self, values: SecretValues | None = None) -> None:
        super().__init__()
        self.values = SECRET_VALUES if values is None else values

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.values)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.values)
        record.msg, record.args = redact(message, self.values), None
        return True
