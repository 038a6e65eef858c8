"""Meta's Graph API as far as WhatsApp's Cloud API uses it, for tests, reached through
``TENANTRY_WHATSAPP_API_BASE`` (``api.base``, with the ``/v21.0`` version segment).

* ``GET /{phone_number_id}``: the phone number (the vault's probe);
* ``POST /{phone_number_id}/messages``: a text message (``messaging_product: whatsapp``,
  ``to``, ``text.body`` of at most 4096 characters), recorded in :attr:`GraphAPI.sent`.

Every call needs ``Authorization: Bearer <access token>`` of the number; a bad token is
refused as Meta does (401, ``OAuthException`` code 190), an unknown number with 400 (code 100).

Builders of what Meta posts to a webhook: :func:`text_notification`, :func:`status_notification`
and :func:`signature` (``X-Hub-Signature-256``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.doubles.json_api import APIError, Call, JsonAPI

VERSION = "v21.0"
TEXT_LIMIT = 4096
_ids = itertools.count(1)


@dataclass(frozen=True)
class SentText:
    phone_number_id: str
    to: str
    text: str


def _graph_error(status: int, message: str, kind: str, code: int) -> APIError:
    error = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}
    return APIError(status, {"error": error})


class GraphAPI(JsonAPI):
    def __init__(self) -> None:
        super().__init__()
        self.numbers: dict[str, str] = {}
        """phone_number_id → its access token."""
        self.sent: list[SentText] = []

    @property
    def base(self) -> str:
        return f"{self.url}/{VERSION}"

    def add_number(self) -> tuple[str, str]:
        """A new business phone number: its id and access token."""
        number_id, token = str(100_000_000_000_000 + next(_ids)), "EAAG" + secrets.token_hex(24)
        self.numbers[number_id] = token
        return number_id, token

    def texts(self, to: str) -> list[str]:
        with self.lock:
            return [s.text for s in self.sent if s.to == to]

    def handle(self, call: Call) -> tuple[int, Any]:
        match = re.fullmatch(rf"/{re.escape(VERSION)}/(\d+)(/messages)?", call.path)
        if match is None:
            raise _graph_error(400, "Unknown path components", "OAuthException", 2500)
        token = call.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.numbers.values():
            raise _graph_error(
                401, "Invalid OAuth access token - Cannot parse access token", "OAuthException", 190
            )
        number_id = match[1]
        if self.numbers.get(number_id) != token:
            raise _graph_error(
                400,
                f"Unsupported get request. Object with ID '{number_id}' does not exist",
                "GraphMethodException",
                100,
            )
        if match[2] is None:
            if call.method != "GET":
                raise _graph_error(400, "Unsupported request", "GraphMethodException", 100)
            return 200, {"id": number_id, "display_phone_number": "+1 555 0100"}
        return 200, self._message(number_id, call.body)

    def _message(self, number_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            raise _graph_error(
                400, "(#100) The parameter messaging_product is required.", "OAuthException", 100
            )
        text = (body.get("text") or {}).get("body")
        if body.get("type") != "text" or not isinstance(text, str) or not body.get("to"):
            raise _graph_error(400, "(#100) Invalid parameter", "OAuthException", 100)
        if len(text) > TEXT_LIMIT:
            raise _graph_error(
                400,
                f"(#100) Param text['body'] must be at most {TEXT_LIMIT} characters long.",
                "OAuthException",
                100,
            )
        with self.lock:
            self.sent.append(SentText(number_id, body["to"], text))
        wamid = f"wamid.{secrets.token_hex(16)}"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": wamid}],
        }


def _notification(number_id: str, value: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": number_id},
        **value,
    }
    entry = {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


def text_notification(
    number_id: str, text: str, *, wamid: str | None = None, sender: str = "16315551181"
) -> bytes:
    """What Meta posts when ``sender`` writes ``text`` to the number."""
    message = {
        "from": sender,
        "id": wamid or f"wamid.{secrets.token_hex(16)}",
        "timestamp": str(int(time.time())),
        "text": {"body": text},
        "type": "text",
    }
    contact = {"profile": {"name": "Kerry Fisher"}, "wa_id": sender}
    return _notification(number_id, {"contacts": [contact], "messages": [message]})


def status_notification(number_id: str, *, recipient: str = "16315551181") -> bytes:
    """What Meta posts when a sent message was delivered."""
    status = {
        "id": f"wamid.{secrets.token_hex(16)}",
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }
    return _notification(number_id, {"statuses": [status]})


def signature(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` as Meta computes it."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


@contextmanager
def graph_api() -> Iterator[GraphAPI]:
    """Serve a :class:`GraphAPI` on 127.0.0.1; ``api.base`` is ``TENANTRY_WHATSAPP_API_BASE``."""
    from tests.doubles.http_server import serve_in_thread

    api = GraphAPI()
    with serve_in_thread(api, lifespan="off") as server:
        api.url = server.url
        yield api
