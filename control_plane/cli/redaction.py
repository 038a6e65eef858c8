"""The control plane's log filter: the gateway's (:mod:`tenant_gateway.redaction`), reused.

Installed on the control plane's log handler (:mod:`control_plane.cli.logs`), so a
credential that reaches a log call by mistake (in the message or its arguments, or an
exception's text) never reaches a log line: secret shapes are masked, and so is every exact
value the vault has handled in this process (registered in
:data:`~tenant_gateway.redaction.SECRET_VALUES` while it validates, stores or reveals a
credential). It is a safety net: code must still not log secrets.
"""

from __future__ import annotations

from tenant_gateway.redaction import MASK, SECRET_SHAPES, RedactSecrets, redact

__all__ = ["MASK", "SECRET_SHAPES", "RedactSecrets", "redact"]
