"""Context trimming: a session's history cut to what fits the model's window.

The gateway does not run each model's tokenizer, so sizes are estimated: a message counts
``ceil(len(json) / 4) + 4`` tokens, where ``json`` is the message object encoded as JSON
(content, tool calls and names alike; about four characters per token for English text in
the common BPE vocabularies) and 4 is the per-message framing of the chat templates. The
estimate leans high for ordinary text, so a trimmed prompt errs on the side of fitting.

What is kept: every ``system`` message, where it stood, and then as many of the newest other
turns as fit in ``context_length - reserve_for_answer`` tokens. An assistant message that
calls tools and the ``tool`` messages answering it are one unit, kept or dropped together
(a model refuses a tool result whose call is missing). The newest unit is always kept, even
if it alone is too large: a prompt without its last message answers nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

Message = dict[str, Any]

MESSAGE_OVERHEAD = 4
CHARS_PER_TOKEN = 4


def estimate_tokens(message: Message) -> int:
    """The estimated prompt tokens of one message (see the module docstring)."""
    return math.ceil(len(msgspec.json.encode(message)) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD


def _units(indexed: list[tuple[int, Message]]) -> list[list[tuple[int, Message]]]:
    """Non-system messages grouped so a tool-calling assistant message holds its results."""
    units: list[list[tuple[int, Message]]] = []
    for index, message in indexed:
        role = message.get("role")
        if role == "tool" and units and _calls_tools(units[-1][0][1]):
            units[-1].append((index, message))
        else:
            units.append([(index, message)])
    return units


def _calls_tools(message: Message) -> bool:
    return message.get("role") == "assistant" and bool(message.get("tool_calls"))


def trim_to_window(
    messages: Sequence[Message], context_length: int, reserve_for_answer: int
) -> list[Message]:
    """``messages`` without the oldest non-system turns that do not fit (see above)."""
    system = [(i, m) for i, m in enumerate(messages) if m.get("role") == "system"]
    others = [(i, m) for i, m in enumerate(messages) if m.get("role") != "system"]
    budget = context_length - reserve_for_answer - sum(estimate_tokens(m) for _, m in system)
    kept: list[tuple[int, Message]] = []
    for unit in reversed(_units(others)):
        size = sum(estimate_tokens(m) for _, m in unit)
        if kept and size > budget:
            break
        kept.extend(unit)
        budget -= size
    return [m for _, m in sorted(system + kept, key=lambda pair: pair[0])]
