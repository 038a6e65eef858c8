"""The chat layer's pieces: request checks, conversation ids, rebuilding a streamed reply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenant_gateway.chat import (
    BadRequest,
    ReplyAssembler,
    completion_message,
    conversation_id,
    parse_chat_request,
)


def test_a_minimal_request_is_accepted_and_the_rest_ignored() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi", "name": "ann"}],
        "stream": True,
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    request = parse_chat_request(json.dumps(body).encode())
    assert request.model == "m"
    assert request.messages == body["messages"]
    assert request.stream is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'"text"', "Expected `object`"),
        (b'{"messages": [{"role": "user"}]}', "`model`"),
        (b'{"model": "m"}', "`messages`"),
        (b'{"model": "m", "messages": []}', "length >= 1"),
        (b'{"model": "m", "messages": ["hi"]}', "Expected `object`"),
        (b'{"model": "m", "messages": [{"role": 1}]}', "messages[0]"),
        (b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_chat_request(body)
    assert message in caught.value.detail
    assert caught.value.status_code == 400


def test_conversation_ids() -> None:
    made = conversation_id(None)
    assert len(made) == 32
    assert made != conversation_id(None)
    assert len(conversation_id("  ")) == 32
    assert conversation_id(" abc-1.2:x_y ") == "abc-1.2:x_y"
    for bad in ("../x", "-x", "a b", "x" * 129, "é"):
        with pytest.raises(BadRequest):
            conversation_id(bad)


def test_the_message_of_a_completion() -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    assert completion_message(json.dumps(body).encode()) == {"role": "assistant", "content": "hi"}
    assert completion_message(b"not json") is None
    assert completion_message(b'{"choices": []}') is None


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def delta(**fields: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": fields}]}


STREAM = sse(
    delta(role="assistant", content=""),
    delta(content="echo: "),
    delta(content="héllo "),
    delta(content="wörld"),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"total_tokens": 3}},
)


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_a_streamed_reply_is_rebuilt_from_pieces_of_any_size(size: int) -> None:
    assembler = ReplyAssembler()
    seen_done_at = None
    for start in range(0, len(STREAM), size):
        if assembler.feed(STREAM[start : start + size]) and seen_done_at is None:
            seen_done_at = start
    assert assembler.done
    assert seen_done_at is not None
    assert assembler.message() == {"role": "assistant", "content": "echo: héllo wörld"}


def test_crlf_lines_comments_and_other_choices() -> None:
    data = (
        b": keep-alive\r\n\r\n"
        b'data: {"choices": [{"index": 1, "delta": {"content": "other"}}]}\r\n\r\n'
        b'data: {"choices": [{"index": 0, "delta": {"content": "mine"}}]}\r\n\r\n'
        b"data: not json\r\n\r\n"
    )
    assembler = ReplyAssembler()
    assert assembler.feed(data) is False
    assert assembler.message() == {"role": "assistant", "content": "mine"}


def test_tool_call_fragments_are_joined() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_", "arguments": ""},
    }
    stream = sse(
        delta(role="assistant", content=None, tool_calls=[call]),
        delta(tool_calls=[{"index": 0, "function": {"name": "weather", "arguments": '{"ci'}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]),
    )
    assembler = ReplyAssembler()
    assembler.feed(stream)
    assert assembler.message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }


def test_a_stream_without_done_is_taken_at_its_end() -> None:
    assembler = ReplyAssembler()
    data = sse(delta(content="partial"), done=False).rstrip(b"\n")
    assert assembler.feed(data) is False
    assert assembler.message() is None, "the last event is not complete yet"
    assembler.close()
    assert assembler.message() == {"role": "assistant", "content": "partial"}


def test_nothing_received_means_no_reply() -> None:
    assembler = ReplyAssembler()
    assembler.close()
    assert assembler.message() is None
