"""Session keys: which conversation a channel message belongs to.

A key names the agent first, so two agents of a tenant never share a session. A group chat
always has a session of its own per channel and group. A direct message follows the
``dm_scope``:

* ``main``: every DM of the agent, whoever sends it on whatever channel, is one session (a
  personal assistant with one owner);
* ``per-peer``: one session per person, shared across channels (``peer`` must then be an
  identity that is the same on every channel, which is the caller's business);
* ``per-channel-peer``: one session per person per channel (the default: nobody reads another
  person's conversation, and a Telegram user id is never taken for a Discord one).

Each part is percent-encoded, so a ``:`` inside a peer id cannot make two keys collide.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from tenant_gateway.sessions.errors import SessionError
from tenant_gateway.settings import DM_SCOPES

DmScope = Literal["main", "per-peer", "per-channel-peer"]
ChatType = Literal["dm", "group"]
CHAT_TYPES: tuple[ChatType, ...] = ("dm", "group")


class BadSessionKey(SessionError):
    """A session key was asked for with a part missing or unknown."""

    status_code = 400
    problem = "bad-session-key"
    title = "Bad session key"
    error_type = "invalid_request_error"
    code = "bad_session_key"


def _part(name: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise BadSessionKey(f"a session key needs a {name}")
    return quote(value.strip(), safe="")


def session_key(
    agent: str,
    channel: str,
    peer: str | None,
    chat_id: str | None,
    chat_type: ChatType,
    dm_scope: DmScope | str,
) -> str:
    """The key of the session a message belongs to (see the module docstring)."""
    if chat_type not in CHAT_TYPES:
        raise BadSessionKey(f"chat type {chat_type!r}: expected {', '.join(CHAT_TYPES)}")
    if dm_scope not in DM_SCOPES:
        raise BadSessionKey(f"dm_scope {dm_scope!r}: expected {', '.join(DM_SCOPES)}")
    prefix = f"agent:{_part('agent', agent)}"
    if chat_type == "group":
        return f"{prefix}:{_part('channel', channel)}:group:{_part('chat id', chat_id)}"
    if dm_scope == "main":
        return f"{prefix}:main"
    if dm_scope == "per-peer":
        return f"{prefix}:dm:{_part('peer', peer)}"
    return f"{prefix}:{_part('channel', channel)}:dm:{_part('peer', peer)}"
