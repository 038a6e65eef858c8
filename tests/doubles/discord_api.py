"""Discord's HTTP API as far as an interactions bot uses it, for tests, reached through
``TENANTRY_DISCORD_API_BASE`` (``api.base``, with the ``/api/v10`` prefix).

* ``GET /users/@me`` (the vault's probe) and ``PUT /applications/{id}/commands`` with
  ``Authorization: Bot <token>`` (401 ``{"message": "401: Unauthorized", "code": 0}`` else);
* ``POST /webhooks/{application_id}/{interaction_token}``: a follow-up, no auth; the token must
  be one :meth:`DiscordAPI.interaction_token` issued (404 "Unknown Webhook" else);
* ``POST /channels/{channel_id}/messages`` with the bot token.

Message ``content`` longer than 2000 characters is refused (400, code 50035). What was posted
is in :attr:`DiscordAPI.posted`.

:class:`InteractionSigner` plays Discord posting interactions: a fresh Ed25519 key pair whose
public key the application's credential carries, and signed headers for a body.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.doubles.json_api import APIError, Call, JsonAPI

PREFIX = "/api/v10"
CONTENT_LIMIT = 2000
_snowflakes = itertools.count(1_100_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_snowflakes))


@dataclass
class Application:
    id: str
    bot_token: str
    bot_user_id: str = field(default_factory=snowflake)
    commands: list[dict[str, Any]] = field(default_factory=list)
    interaction_tokens: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Posted:
    via: str
    """``followup`` or ``channel``."""
    where: str
    """The interaction token (follow-ups) or the channel id."""
    content: str


UNAUTHORIZED = APIError(401, {"message": "401: Unauthorized", "code": 0})


class DiscordAPI(JsonAPI):
    def __init__(self) -> None:
        super().__init__()
        self.applications: dict[str, Application] = {}
        self.posted: list[Posted] = []

    @property
    def base(self) -> str:
        return f"{self.url}{PREFIX}"

    def add_application(self) -> Application:
        app = Application(
            snowflake(), f"MT{secrets.token_urlsafe(20)}.G{secrets.token_urlsafe(30)}"
        )
        self.applications[app.id] = app
        return app

    def interaction_token(self, app: Application) -> str:
        token = f"aW50ZXJhY3Rpb24{secrets.token_urlsafe(60)}"
        with self.lock:
            app.interaction_tokens.add(token)
        return token

    def contents(self, via: str | None = None) -> list[str]:
        with self.lock:
            return [p.content for p in self.posted if via is None or p.via == via]

    def _bot(self, call: Call) -> Application:
        token = call.headers.get("authorization", "").removeprefix("Bot ")
        for app in self.applications.values():
            if app.bot_token == token:
                return app
        raise UNAUTHORIZED

    def handle(self, call: Call) -> tuple[int, Any]:
        path = call.path.removeprefix(PREFIX)
        if call.method == "GET" and path == "/users/@me":
            app = self._bot(call)
            return 200, {"id": app.bot_user_id, "username": "assistant", "bot": True}
        if match := re.fullmatch(r"/applications/(\d+)/commands", path):
            app = self._bot(call)
            if app.id != match[1] or call.method != "PUT" or not isinstance(call.body, list):
                raise APIError(403, {"message": "Missing Access", "code": 50001})
            with self.lock:
                app.commands = [
                    {**c, "id": snowflake(), "application_id": app.id} for c in call.body
                ]
            return 200, app.commands
        if call.method == "POST" and (match := re.fullmatch(r"/webhooks/(\d+)/([^/]+)", path)):
            app = self.applications.get(match[1])
            if app is None or match[2] not in app.interaction_tokens:
                raise APIError(404, {"message": "Unknown Webhook", "code": 10015})
            return 200, self._post("followup", match[2], call.body)
        if call.method == "POST" and (match := re.fullmatch(r"/channels/(\d+)/messages", path)):
            self._bot(call)
            return 200, self._post("channel", match[1], call.body)
        raise APIError(404, {"message": "404: Not Found", "code": 0})

    def _post(self, via: str, where: str, body: Any) -> dict[str, Any]:
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content:
            raise APIError(400, {"message": "Cannot send an empty message", "code": 50006})
        if len(content) > CONTENT_LIMIT:
            error = {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
            raise APIError(
                400,
                {
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {"content": {"_errors": [error]}},
                },
            )
        with self.lock:
            self.posted.append(Posted(via, where, content))
        return {
            "id": snowflake(),
            "content": content,
            "channel_id": where if via == "channel" else "",
        }


class InteractionSigner:
    """Discord's side of an application's interactions endpoint: its signing key."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def headers(self, body: bytes, timestamp: float | None = None) -> dict[str, str]:
        stamp = str(int(time.time() if timestamp is None else timestamp))
        signature = self._key.sign(stamp.encode() + body).hex()
        return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp}


def ping() -> bytes:
    return json.dumps(
        {"type": 1, "id": snowflake(), "application_id": "1", "token": "x", "version": 1}
    ).encode()


def ask(
    app: Application,
    token: str,
    prompt: str,
    *,
    channel_id: str = "1200000000000000001",
    guild_id: str | None = "1300000000000000001",
    user_id: str = "1400000000000000001",
) -> bytes:
    """``/ask prompt:<prompt>`` as Discord posts it (in a guild, or a DM without one)."""
    user = {"id": user_id, "username": "kerry", "global_name": "Kerry"}
    interaction: dict[str, Any] = {
        "type": 2,
        "id": snowflake(),
        "application_id": app.id,
        "token": token,
        "version": 1,
        "channel_id": channel_id,
        "data": {
            "id": snowflake(),
            "name": "ask",
            "type": 1,
            "options": [{"name": "prompt", "type": 3, "value": prompt}],
        },
    }
    if guild_id is None:
        interaction["user"] = user
    else:
        interaction["guild_id"] = guild_id
        interaction["member"] = {"user": user, "roles": []}
    return json.dumps(interaction).encode()


@contextmanager
def discord_api() -> Iterator[DiscordAPI]:
    """Serve a :class:`DiscordAPI` on 127.0.0.1; ``api.base`` is ``TENANTRY_DISCORD_API_BASE``."""
    from tests.doubles.http_server import serve_in_thread

    api = DiscordAPI()
    with serve_in_thread(api, lifespan="off") as server:
        api.url = server.url
        yield api
