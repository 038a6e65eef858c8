"""Sessions: keys under each dm_scope, the reset policies, and trimming to the window."""

from __future__ import annotations

from datetime import datetime
from itertools import product
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tenant_gateway.sessions import (
    DM_SCOPES,
    BadSessionKey,
    ResetPolicy,
    estimate_tokens,
    expiry,
    last_daily_reset,
    session_key,
    trim_to_window,
)
from tenant_gateway.settings import SettingsError, load_settings

CHANNELS = ("telegram", "discord")
PEERS = ("alice", "bob")


def dm(channel: str, peer: str, scope: str, agent: str = "main") -> str:
    return session_key(agent, channel, peer, f"chat-{peer}", "dm", scope)


def test_main_scope_puts_every_dm_of_an_agent_in_one_session() -> None:
    keys = {dm(c, p, "main") for c, p in product(CHANNELS, PEERS)}
    assert len(keys) == 1


def test_per_peer_scope_keeps_people_apart_and_follows_a_person_across_channels() -> None:
    assert dm("telegram", "alice", "per-peer") == dm("discord", "alice", "per-peer")
    assert dm("telegram", "alice", "per-peer") != dm("telegram", "bob", "per-peer")


def test_per_channel_peer_scope_gives_each_person_on_each_channel_a_session() -> None:
    keys = {dm(c, p, "per-channel-peer") for c, p in product(CHANNELS, PEERS)}
    assert len(keys) == len(CHANNELS) * len(PEERS)


@pytest.mark.parametrize("scope", DM_SCOPES)
def test_agents_never_share_a_session(scope: str) -> None:
    assert dm("telegram", "alice", scope, agent="a") != dm("telegram", "alice", scope, agent="b")


@pytest.mark.parametrize("scope", DM_SCOPES)
def test_groups_get_a_session_per_channel_and_group_whatever_the_scope(scope: str) -> None:
    def group(channel: str, chat: str, peer: str) -> str:
        return session_key("main", channel, peer, chat, "group", scope)

    assert group("telegram", "g1", "alice") == group("telegram", "g1", "bob")
    assert group("telegram", "g1", "alice") != group("telegram", "g2", "alice")
    assert group("telegram", "g1", "alice") != group("discord", "g1", "alice")
    assert group("telegram", "g1", "alice") not in {
        dm(c, p, scope) for c, p in product(CHANNELS, PEERS)
    }


def test_separators_inside_ids_cannot_make_keys_collide() -> None:
    first = session_key("main", "telegram", "a:dm:b", None, "dm", "per-channel-peer")
    second = session_key("main", "telegram:dm:a", "b", None, "dm", "per-channel-peer")
    assert first != second


@pytest.mark.parametrize(
    ("peer", "chat_id", "chat_type", "scope", "words"),
    [
        (None, None, "dm", "per-peer", "peer"),
        ("  ", None, "dm", "per-channel-peer", "peer"),
        ("alice", None, "group", "main", "chat id"),
        ("alice", "c", "channel", "main", "chat type"),
        ("alice", "c", "dm", "everyone", "dm_scope"),
    ],
)
def test_a_key_with_a_part_missing_or_unknown_is_refused(
    peer: str | None, chat_id: str | None, chat_type: Any, scope: str, words: str
) -> None:
    with pytest.raises(BadSessionKey, match=words):
        session_key("main", "telegram", peer, chat_id, chat_type, scope)


BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int, zone: ZoneInfo = BERLIN) -> float:
    return datetime(*parts, tzinfo=zone).timestamp()  # type: ignore[misc]


def test_the_daily_reset_is_the_last_time_the_clock_read_its_hour() -> None:
    assert last_daily_reset(at(2026, 3, 10, 9, 30), 4, "Europe/Berlin") == at(2026, 3, 10, 4)
    assert last_daily_reset(at(2026, 3, 10, 3, 59), 4, "Europe/Berlin") == at(2026, 3, 9, 4)
    assert last_daily_reset(at(2026, 3, 10, 4), 4, "Europe/Berlin") == at(2026, 3, 10, 4)


def test_the_daily_reset_follows_the_wall_clock_across_a_dst_change() -> None:
    # Summer time starts in Berlin on 29 March 2026: that day has 23 hours.
    assert last_daily_reset(at(2026, 3, 29, 3, 30), 4, "Europe/Berlin") == at(2026, 3, 28, 4)
    assert last_daily_reset(at(2026, 3, 29, 5), 4, "Europe/Berlin") == at(2026, 3, 29, 4)


def test_a_session_last_active_before_the_daily_reset_is_over() -> None:
    policy = ResetPolicy(daily_hour=4, timezone="Europe/Berlin")
    assert expiry(policy, at(2026, 3, 10, 3, 59), at(2026, 3, 10, 4, 1)) == "daily"
    assert expiry(policy, at(2026, 3, 10, 4, 0, 1), at(2026, 3, 10, 23)) is None


def test_an_idle_session_is_over_after_its_timeout() -> None:
    policy = ResetPolicy(idle_timeout=600, daily_hour=None)
    assert expiry(policy, 1000.0, 1600.0) is None
    assert expiry(policy, 1000.0, 1600.5) == "idle"


def test_with_both_policies_off_a_session_never_ends_by_itself() -> None:
    assert expiry(ResetPolicy(idle_timeout=None, daily_hour=None), 0.0, 1e9) is None


def test_session_settings_have_defaults_and_name_a_bad_variable() -> None:
    defaults = load_settings({}).sessions
    assert defaults.dm_scope == "per-channel-peer"
    assert (defaults.idle_timeout, defaults.daily_reset_hour) == (None, 4)
    chosen = load_settings(
        {
            "TENANTRY_GATEWAY_DM_SCOPE": "main",
            "TENANTRY_GATEWAY_SESSION_IDLE_TIMEOUT": "3600",
            "TENANTRY_GATEWAY_SESSION_DAILY_RESET": "off",
            "TENANTRY_GATEWAY_SESSION_TIMEZONE": "Europe/Berlin",
        }
    ).sessions
    assert (chosen.dm_scope, chosen.idle_timeout, chosen.daily_reset_hour) == ("main", 3600, None)
    assert chosen.timezone == "Europe/Berlin"
    for name, value in (
        ("TENANTRY_GATEWAY_DM_SCOPE", "everyone"),
        ("TENANTRY_GATEWAY_SESSION_IDLE_TIMEOUT", "soon"),
        ("TENANTRY_GATEWAY_SESSION_DAILY_RESET", "24"),
        ("TENANTRY_GATEWAY_SESSION_TIMEZONE", "Mars/Olympus"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


SYSTEM = {"role": "system", "content": "be brief"}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "t", "arguments": "{}"}},
    ],
}
RESULTS = [
    {"role": "tool", "tool_call_id": "c1", "content": "x" * 400},
    {"role": "tool", "tool_call_id": "c2", "content": "y" * 400},
]


def size(messages: list[dict[str, Any]]) -> int:
    return sum(estimate_tokens(m) for m in messages)


def test_what_fits_is_left_alone() -> None:
    messages = [SYSTEM, user("one"), assistant("two"), user("three")]
    assert trim_to_window(messages, size(messages) + 100, 100) == messages


def test_the_oldest_turns_go_first_and_system_messages_stay() -> None:
    old = [user("a" * 200), assistant("b" * 200)]
    new = [user("c" * 200), assistant("d" * 200), user("e")]
    messages = [SYSTEM, *old, *new]
    trimmed = trim_to_window(messages, size([SYSTEM, *new]) + 50, 50)
    assert trimmed == [SYSTEM, *new]


def test_a_tool_call_and_its_results_are_kept_or_dropped_together() -> None:
    tail = [assistant("done"), user("thanks")]
    messages = [SYSTEM, user("weather?"), CALL, *RESULTS, *tail]
    # Room for the tail and one tool result, not for the call with both results.
    window = size([SYSTEM, *tail, RESULTS[1]]) + 1
    assert trim_to_window(messages, window, 0) == [SYSTEM, *tail]
    window = size([SYSTEM, CALL, *RESULTS, *tail])
    assert trim_to_window(messages, window, 0) == [SYSTEM, CALL, *RESULTS, *tail]


def test_the_newest_turn_is_kept_even_when_it_alone_is_too_large() -> None:
    huge = user("z" * 10_000)
    assert trim_to_window([SYSTEM, user("old"), huge], 100, 50) == [SYSTEM, huge]


def test_the_estimate_grows_with_the_text() -> None:
    assert estimate_tokens(user("a" * 400)) >= 100
    assert estimate_tokens(user("a" * 400)) > estimate_tokens(user("a" * 40))
