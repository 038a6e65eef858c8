"""Sessions: the conversations of channel messages, on the tenant's volume.

::

    message (agent, channel, peer, chat) --session_key--> key
    key --SessionStore.current/append/reset--> session and its history (sessions.sqlite3)
    history --trim_to_window--> the prompt that fits the model

The reset policy (idle timeout, daily reset) comes from the gateway's settings through
:func:`reset_policy`; an explicit reset is :meth:`SessionStore.reset`.
"""

from tenant_gateway.sessions.errors import SessionError
from tenant_gateway.sessions.keys import (
    CHAT_TYPES,
    BadSessionKey,
    ChatType,
    DmScope,
    session_key,
)
from tenant_gateway.sessions.resets import EndReason, ResetPolicy, expiry, last_daily_reset
from tenant_gateway.sessions.store import SESSIONS_FILE, Session, SessionStore
from tenant_gateway.sessions.trimming import estimate_tokens, trim_to_window
from tenant_gateway.settings import DM_SCOPES, SessionSettings


def reset_policy(settings: SessionSettings) -> ResetPolicy:
    """The reset policy of the gateway's settings. Per-tenant choices, once the bundle
    carries them, are to be laid over ``settings`` here."""
    return ResetPolicy(
        idle_timeout=settings.idle_timeout,
        daily_hour=settings.daily_reset_hour,
        timezone=settings.timezone,
    )


__all__ = [
    "CHAT_TYPES",
    "DM_SCOPES",
    "SESSIONS_FILE",
    "BadSessionKey",
    "ChatType",
    "DmScope",
    "EndReason",
    "ResetPolicy",
    "Session",
    "SessionError",
    "SessionStore",
    "estimate_tokens",
    "expiry",
    "last_daily_reset",
    "reset_policy",
    "session_key",
    "trim_to_window",
]
