"""The channels' wire shapes, inbound keys, commands and backoff."""

from __future__ import annotations

import msgspec
import pytest

from tenant_gateway.channels.assistant import is_reset, lane_of
from tenant_gateway.channels.contract import InboundMessage, OutboundReply
from tenant_gateway.channels.worker import Backoff
from tenant_gateway.contract import digest_gateway_key, inbound_key, inbound_key_digest
from tenant_gateway.settings import SettingsError, load_settings

MESSAGE = {
    "channel": "telegram",
    "message_id": "42",
    "chat_id": "100",
    "peer_id": "7",
    "chat_type": "dm",
    "text": "hi",
    "received_at": "2026-01-02T03:04:05Z",
}


def test_an_inbound_message_decodes_with_defaults() -> None:
    message = msgspec.json.decode(msgspec.json.encode(MESSAGE), type=InboundMessage)
    assert (message.mentioned, message.sender_name) == (False, None)


@pytest.mark.parametrize(
    "change",
    [{"extra": 1}, {"chat_type": "channel"}, {"message_id": ""}, {"channel": "Tele gram"}],
)
def test_an_inbound_message_rejects_what_it_does_not_know(change: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode({**MESSAGE, **change}), type=InboundMessage)


def test_an_outbound_reply_rejects_unknown_fields() -> None:
    body = b'{"channel": "telegram", "chat_id": "1", "text": "x", "sent": true}'
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body, type=OutboundReply)


def test_the_inbound_key_is_per_tenant_and_its_digest_is_a_gateway_key_digest() -> None:
    secret, digest_key = b"s" * 32, bytes(range(32))
    key = inbound_key(secret, "tenant-a")
    assert key not in (inbound_key(secret, "tenant-b"), inbound_key(b"t" * 32, "tenant-a"))
    assert inbound_key_digest(secret, "tenant-a", digest_key) == digest_gateway_key(key, digest_key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/reset", True),
        ("  /reset now", True),
        ("/reset@acme_bot", True),
        ("/resetting", False),
        ("please /reset", False),
        ("", False),
    ],
)
def test_reset_is_the_first_word(text: str, expected: bool) -> None:
    assert is_reset(text) is expected


def test_a_lane_is_the_session_key_of_the_scope() -> None:
    message = msgspec.json.decode(msgspec.json.encode(MESSAGE), type=InboundMessage)
    assert lane_of(message, "per-channel-peer") == "agent:main:telegram:dm:7"
    assert lane_of(message, "main") == "agent:main:main"


def test_backoff_doubles_to_its_longest_and_resets() -> None:
    backoff = Backoff(0.5, 1.5)
    assert [backoff.next() for _ in range(4)] == [0.5, 1.0, 1.5, 1.5]
    backoff.reset()
    assert backoff.next() == 0.5


def test_channel_settings_are_read_and_a_bad_one_is_named() -> None:
    settings = load_settings(
        {
            "TENANTRY_GATEWAY_CHANNEL_MODEL": " platform-llama ",
            "TENANTRY_GATEWAY_CHANNEL_CONTEXT_LENGTH": "32768",
            "TENANTRY_GATEWAY_REPLY_URL": "http://127.0.0.1:9000/replies/",
        }
    ).channels
    assert (settings.model, settings.context_length, settings.reply_url) == (
        "platform-llama",
        32768,
        "http://127.0.0.1:9000/replies",
    )
    assert load_settings({}).channels.model is None
    for name, value in (
        ("TENANTRY_GATEWAY_CHANNEL_CONTEXT_LENGTH", "lots"),
        ("TENANTRY_GATEWAY_REPLY_URL", "ftp://example"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})
