"""Chat completions: check a request, relay it to the model endpoint, remember the exchange.

The body is checked only as far as the gateway needs (a JSON object with a ``model`` string
and a non-empty ``messages`` list of objects with a ``role``) and is forwarded byte for byte,
so everything else in it reaches the model untouched. A streamed answer is passed on chunk
by chunk as it arrives; alongside, :class:`ReplyAssembler` rebuilds the assistant message
from the chunks so it can be stored once the stream is complete (before ``[DONE]`` is passed
on, so a client that has seen the end can read the conversation back).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import msgspec

from tenant_gateway.budgets import BudgetKeeper, Reservation
from tenant_gateway.models import (
    AnswerStream,
    ModelList,
    ModelRouter,
    Target,
    UpstreamUnavailable,
)
from tenant_gateway.settings import GatewayError
from tenant_gateway.store import ConversationStore, Message, StoreError

log = logging.getLogger(__name__)

CONVERSATION_HEADER = "X-Tenantry-Conversation"
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MAX_SSE_LINE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What one chat completion request cost and how it ended, once it has ended."""

    stream: bool
    outcome: str
    """``ok``, ``upstream_error``, ``unreachable``, ``broken`` (a stream cut off by the
    provider) or ``disconnected`` (by the client)."""
    model: str
    """The model as the client asked for it."""
    provider: str | None
    """The provider kind that answered (None when none could be reached)."""
    byok: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    latency: float
    """Seconds from the request to its last byte."""
    time_to_first_token: float | None
    """Seconds to the first streamed content or tool-call fragment."""


CallObserver = Callable[[CallRecord], None]
"""Told every :class:`CallRecord`; the app feeds its metrics with it."""


class BadRequest(GatewayError):
    """The request is not something the gateway can forward."""

    status_code = 400
    problem = "invalid-request"
    title = "Invalid request"
    error_type = "invalid_request_error"
    code = "invalid_request"


class ChatRequest(msgspec.Struct):
    """The part of an OpenAI chat request the gateway reads; the rest is passed on as is."""

    model: str
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None


def parse_chat_request(body: bytes) -> ChatRequest:
    """Check a chat completion body; :class:`BadRequest` says what is wrong."""
    try:
        request = msgspec.json.decode(body, type=ChatRequest)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid chat completion request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    for index, message in enumerate(request.messages):
        if not isinstance(message.get("role"), str):
            raise BadRequest(
                f"invalid chat completion request: `$.messages[{index}]` needs a string `role`"
            )
    return request


def conversation_id(header: str | None) -> str:
    """The conversation a request belongs to: the client's, or a new one."""
    if header is None or not header.strip():
        return uuid.uuid4().hex
    value = header.strip()
    if not _CONVERSATION_ID.fullmatch(value):
        raise BadRequest(
            f"invalid {CONVERSATION_HEADER} header: use 1 to 128 letters, digits, '.', '_', "
            "':' or '-', starting with a letter or digit"
        )
    return value


class _Choice(msgspec.Struct):
    index: int = 0
    message: Message | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None


def _read_completion(content: bytes) -> _Completion:
    try:
        return msgspec.json.decode(content, type=_Completion)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Completion()


def completion_message(content: bytes) -> Message | None:
    """The assistant message of a (non-streaming) completion body, if it has one."""
    return _first_message(_read_completion(content))


def _first_message(completion: _Completion) -> Message | None:
    for choice in completion.choices:
        if choice.index == 0 and choice.message is not None:
            return choice.message
    return None


class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct):
    role: str | None = None
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None


class ReplyAssembler:
    """Rebuilds the assistant message from the server-sent events of a streamed completion.

    Feed it the stream's bytes in any pieces; it reads ``data:`` lines, decodes each
    ``chat.completion.chunk`` and joins the first choice's ``delta.content`` (and tool call
    fragments). :attr:`done` turns true at ``data: [DONE]``.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._role = "assistant"
        self._content: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self.chunks = 0
        self.done = False
        self.overflowed = False
        self.tokens_seen = False
        """Whether a content or tool-call fragment has arrived (the first token)."""
        self.usage: _Usage | None = None

    def feed(self, data: bytes) -> bool:
        """Take the next bytes of the stream; True once ``[DONE]`` has been seen."""
        if self.overflowed:
            return self.done
        self._buffer += data
        if b"\n" not in data:
            if len(self._buffer) > _MAX_SSE_LINE:
                self._give_up()
            return self.done
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line.rstrip(b"\r"))
        return self.done

    def close(self) -> None:
        """The stream ended: take whatever is left as a last line and event."""
        if self._buffer and not self.overflowed:
            self._line(self._buffer.rstrip(b"\r"))
        self._buffer = b""
        self._dispatch()

    def _give_up(self) -> None:
        log.warning("a streamed line exceeds %d bytes; the reply will not be stored", _MAX_SSE_LINE)
        self.overflowed = True
        self._buffer = b""
        self._data = []

    def _line(self, line: bytes) -> None:
        if not line:
            self._dispatch()
        elif line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            if value.strip() == b"[DONE]":
                self._data = []
                self.done = True
            else:
                self._data.append(value)

    def _dispatch(self) -> None:
        if not self._data:
            return
        data = b"\n".join(self._data)
        self._data = []
        try:
            chunk = msgspec.json.decode(data, type=_Chunk)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self.chunks += 1
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0 or choice.delta is None:
                continue
            delta = choice.delta
            if delta.role:
                self._role = delta.role
            if delta.content:
                self._content.append(delta.content)
                self.tokens_seen = True
            for call in delta.tool_calls or ():
                self._tool_call(call)
                self.tokens_seen = True

    def _tool_call(self, delta: _ToolCallDelta) -> None:
        call = self._tool_calls.setdefault(
            delta.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if delta.id:
            call["id"] = delta.id
        if delta.type:
            call["type"] = delta.type
        if delta.function is not None:
            if delta.function.name:
                call["function"]["name"] += delta.function.name
            if delta.function.arguments:
                call["function"]["arguments"] += delta.function.arguments

    @property
    def content(self) -> str:
        return "".join(self._content)

    def message(self) -> Message | None:
        """The assistant message so far, or None if no chunk has arrived."""
        if self.chunks == 0 or self.overflowed:
            return None
        message: Message = {"role": self._role}
        if self._tool_calls:
            message["content"] = self.content or None
            message["tool_calls"] = [self._tool_calls[i] for i in sorted(self._tool_calls)]
        else:
            message["content"] = self.content
        return message


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A complete answer to pass to the client."""

    conversation_id: str
    status: int
    content: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class ChatStream:
    """A streamed answer to pass to the client, chunk by chunk."""

    conversation_id: str
    content_type: str
    chunks: AsyncIterator[bytes]


def _sse_error(exc: GatewayError) -> bytes:
    body = {"error": {"message": exc.detail, "type": exc.error_type, "code": exc.code}}
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def _failure(exc: GatewayError) -> str:
    return "unreachable" if isinstance(exc, UpstreamUnavailable) else "upstream_error"


class _Call:
    """A request in flight: when it started, who answers it; becomes a :class:`CallRecord`."""

    __slots__ = ("first_token", "model", "reservation", "started", "stream", "target")

    def __init__(self, model: str, stream: bool) -> None:
        self.model = model
        self.stream = stream
        self.started = time.perf_counter()
        self.target: Target | None = None
        self.first_token: float | None = None
        self.reservation: Reservation | None = None

    def record(self, outcome: str, usage: _Usage | None = None) -> CallRecord:
        target = self.target
        return CallRecord(
            stream=self.stream,
            outcome=outcome,
            model=self.model,
            provider=None if target is None else target.provider.kind,
            byok=target is not None and target.byok,
            prompt_tokens=None if usage is None else usage.prompt_tokens,
            completion_tokens=None if usage is None else usage.completion_tokens,
            latency=time.perf_counter() - self.started,
            time_to_first_token=(
                None if self.first_token is None else self.first_token - self.started
            ),
        )


class ChatService:
    """What ``/v1/chat/completions`` and ``/v1/models`` do, without the HTTP framework."""

    def __init__(
        self,
        router: ModelRouter,
        store: ConversationStore,
        *,
        budgets: BudgetKeeper | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        self.router = router
        self.store = store
        self.budgets = budgets
        self._observe = observe

    async def _done(self, call: _Call, outcome: str, usage: _Usage | None = None) -> None:
        record = call.record(outcome, usage)
        if self.budgets is not None:
            tokens = None
            if record.prompt_tokens is not None or record.completion_tokens is not None:
                tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
            elif record.outcome in ("upstream_error", "unreachable"):
                tokens = 0  # refused or never reached: nothing was spent
            await self.budgets.settle(call.reservation, tokens)
        if self._observe is not None:
            self._observe(record)

    async def list_models(self) -> ModelList:
        return await self.router.list_models()

    async def complete(self, body: bytes, conversation: str | None) -> ChatReply | ChatStream:
        """Answer one chat completion request (``conversation``: the client's header)."""
        request = parse_chat_request(body)
        conversation_id_ = conversation_id(conversation)
        call = _Call(request.model, bool(request.stream))
        if self.budgets is not None:
            call.reservation = await self.budgets.reserve(
                request.messages, request.max_completion_tokens or request.max_tokens
            )
        if request.stream:
            return await self._stream(body, call, conversation_id_, request.messages)
        try:
            reply, call.target = await self.router.complete(body, request.model)
        except GatewayError as exc:
            await self._done(call, _failure(exc))
            raise
        completion = _read_completion(reply.content)
        message = _first_message(completion)
        if message is not None:
            self._remember(conversation_id_, request.messages, message)
        await self._done(call, "ok", completion.usage)
        return ChatReply(
            conversation_id=conversation_id_,
            status=reply.status,
            content=reply.content,
            content_type=reply.content_type,
        )

    async def _stream(
        self, body: bytes, call: _Call, conversation_id: str, messages: list[Message]
    ) -> ChatStream:
        try:
            upstream, call.target = await self.router.stream(body, call.model)
        except GatewayError as exc:
            await self._done(call, _failure(exc))
            raise
        return ChatStream(
            conversation_id=conversation_id,
            content_type=upstream.content_type,
            chunks=self._relay(upstream, call, conversation_id, messages),
        )

    def _remember(
        self, conversation_id: str, messages: list[Message], reply: Message | None
    ) -> None:
        # Queued, not awaited: the answer does not wait for its memory to be written (a read
        # of the conversation afterwards still sees it: the store has one writer, in order).
        try:
            self.store.record_soon(conversation_id, messages, reply)
        except StoreError as exc:
            # The model has answered; losing the memory of it beats losing the answer.
            log.error("conversation not stored: %s", exc.detail)

    async def _relay(
        self,
        upstream: AnswerStream,
        call: _Call,
        conversation_id: str,
        messages: list[Message],
    ) -> AsyncIterator[bytes]:
        assembler = ReplyAssembler()
        stored = False
        outcome = "disconnected"
        try:
            try:
                async for chunk in upstream.chunks():
                    if assembler.feed(chunk) and not stored:
                        stored = True
                        self._remember(conversation_id, messages, assembler.message())
                    if call.first_token is None and assembler.tokens_seen:
                        call.first_token = time.perf_counter()
                    yield chunk
            except UpstreamUnavailable as exc:
                outcome = "broken"
                log.warning("stream of conversation %s cut off: %s", conversation_id, exc.detail)
                yield _sse_error(exc)
                return
            if not stored:
                assembler.close()
                reply = assembler.message()
                if reply is not None:
                    self._remember(conversation_id, messages, reply)
            outcome = "ok"
        finally:
            await upstream.aclose()
            with anyio.CancelScope(shield=True):  # the client may be gone; settle anyway
                await self._done(call, outcome, assembler.usage)
