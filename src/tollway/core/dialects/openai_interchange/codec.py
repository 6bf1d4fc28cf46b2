"""The reverse direction: OpenAI chat JSON from clients -> canonical, canonical -> the
JSON a client expects back.

The gateway reads OpenAI request bodies from programs that only speak HTTP and answers
in OpenAI's shape whatever provider served the call; adapters may use it too. OpenAI
JSON is an interchange format here, never the internal model: everything goes through
the canonical types, and keys tollway has no field for ride along in ``request.extra``
(top level) or ``provider_data["openai_chat"]["extra"]`` (messages and parts) so that
building the request again for an OpenAI-compatible provider loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tollway.core.dialects.openai_chat.wire import DIALECT_NAME, usage_to_openai
from tollway.core.dialects.openai_interchange.reading import (
    message_from_openai,
    to_response_format,
    to_tool_choice,
    tool_from_openai,
)
from tollway.core.errors import BadRequestError
from tollway.core.types import (
    FinishEvent,
    Message,
    Part,
    Reasoning,
    Request,
    Response,
    StreamEnd,
    StreamEvent,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    Usage,
    UsageEvent,
)

_REQUEST_KEYS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "response_format",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "parallel_tool_calls",
        "reasoning_effort",
        "stream",
        "stream_options",
    }
)
_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content", "refusal"}
)
_PART_KEYS = {
    "text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
    "input_audio": frozenset({"type", "input_audio"}),
    "file": frozenset({"type", "file"}),
}
_CALL_KEYS = frozenset({"id", "type", "function"})


# --------------------------------------------------------------------------- requests


def request_from_openai(body: Mapping[str, Any]) -> tuple[str, Request, bool]:
    """``(model, Request, stream)`` from a chat-completions request body.

    Unknown top-level keys (``n``, ``user``, ``prompt_cache_key``, ``logprobs``...) go to
    ``request.extra`` untouched. ``stream_options.include_usage`` is not carried: the
    dialect always asks for usage (cost needs it); the gateway reads the client's wish
    from the body itself.
    """
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("the request body needs 'model' (a model name or alias)")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequestError("the request body needs 'messages' (a non-empty list)")
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    effort = body.get("reasoning_effort")
    extra = {k: v for k, v in body.items() if k not in _REQUEST_KEYS}
    options = body.get("stream_options")
    if isinstance(options, Mapping):
        rest = {k: v for k, v in options.items() if k != "include_usage"}
        if rest:
            extra["stream_options"] = rest
    for index, raw in enumerate(raw_messages):
        if not isinstance(raw, Mapping):
            raise BadRequestError(
                f"messages[{index}] must be a message object, got {type(raw).__name__}"
            )
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise BadRequestError("'tools' must be a list of tool objects")
    stop = body.get("stop")
    tool_choice = body.get("tool_choice")
    response_format = body.get("response_format")
    request = Request(
        messages=[message_from_openai(raw) for raw in raw_messages],
        tools=[tool_from_openai(tool) for tool in tools],
        tool_choice=None if tool_choice is None else to_tool_choice(tool_choice),
        response_format=None if response_format is None else to_response_format(response_format),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=max_tokens,
        stop=[stop] if isinstance(stop, str) else (list(stop) if stop else None),
        seed=body.get("seed"),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        reasoning=Reasoning(effort=str(effort)) if effort is not None else None,
        extra=extra,
    )
    for raw, message in zip(raw_messages, request.messages, strict=True):
        if isinstance(raw, Mapping):
            _keep_unknown_keys(raw, message)
    return model, request, bool(body.get("stream"))


def _keep_unknown_keys(raw: Mapping[str, Any], message: Message) -> None:
    """Store what the canonical types have no field for, so the OpenAI dialect can put
    it back; and mark reasoning the client sent as reasoning to send on."""
    target: Message | Part = message
    unknown = {k: v for k, v in raw.items() if k not in _MESSAGE_KEYS}
    if message.role == "tool" and message.parts:
        target = message.parts[0]  # the ToolResult is the OpenAI message
        if "name" in raw:
            unknown["name"] = raw["name"]  # some servers take it; pass the client's on
    _store_extra(target, unknown)
    content = raw.get("content")
    if isinstance(content, list):
        parts = message.parts
        if message.role == "tool" and isinstance(message.parts[0], ToolResult):
            result_content = message.parts[0].content
            parts = result_content if isinstance(result_content, list) else []
        else:
            parts = [p for p in parts if not isinstance(p, Thinking) and not _is_call(p)]
        for raw_part, part in zip(content, parts, strict=False):
            if isinstance(raw_part, Mapping):
                known = _PART_KEYS.get(str(raw_part.get("type")), frozenset({"type"}))
                _store_extra(part, {k: v for k, v in raw_part.items() if k not in known})
    for part in message.parts:
        if isinstance(part, Thinking) and raw.get("reasoning_content"):
            part.provider = DIALECT_NAME
            part.provider_data = {DIALECT_NAME: {"field": "reasoning_content", "echo": True}}
    if raw.get("refusal") and message.role == "assistant":
        text = Text(str(raw["refusal"]), {DIALECT_NAME: {"refusal": True}})
        calls_at = next((i for i, p in enumerate(message.parts) if _is_call(p)), len(message.parts))
        message.parts.insert(calls_at, text)
    raw_calls = raw.get("tool_calls")
    if isinstance(raw_calls, list):
        calls = [p for p in message.parts if _is_call(p)]
        for raw_call, call in zip(raw_calls, calls, strict=False):
            if isinstance(raw_call, Mapping):
                _store_extra(call, {k: v for k, v in raw_call.items() if k not in _CALL_KEYS})


def _is_call(part: Part) -> bool:
    return isinstance(part, ToolCall)


def _store_extra(target: Message | Part, extra: dict[str, Any]) -> None:
    if not extra:
        return
    data = dict(target.provider_data or {})
    mine = dict(data.get(DIALECT_NAME) or {})
    mine["extra"] = {**mine.get("extra", {}), **extra}
    data[DIALECT_NAME] = mine
    target.provider_data = data


# --------------------------------------------------------------------------- responses


def response_to_openai(response: Response, *, created: int | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object for ``response`` (usage with its details).

    ``created`` defaults to the provider's own timestamp when the response came from an
    OpenAI-style server, else now.
    """
    meta = _meta(response)
    content: list[str] = []
    refusal: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    annotations: list[Any] = []
    for part in response.parts:
        if isinstance(part, Text):
            (refusal if _own(part).get("refusal") else content).append(part.text)
            annotations.extend(_own(part).get("annotations") or ())
        elif isinstance(part, Thinking):
            reasoning.append(part.text)
        elif isinstance(part, ToolCall):
            calls.append(
                {
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": part.arguments_json},
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(content) if content else None,
        "refusal": "".join(refusal) if refusal else None,
    }
    if annotations:
        message["annotations"] = annotations
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": _created(created, meta),
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _wire_finish(response.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": usage_to_openai(response.usage),
    }
    for key in ("system_fingerprint", "service_tier"):
        if key in meta:
            out[key] = meta[key]
    return out


def _wire_finish(reason: str) -> str:
    return "stop" if reason == "error" else reason


def _meta(response: Response) -> dict[str, Any]:
    data = (response.provider_data or {}).get(DIALECT_NAME)
    return data if isinstance(data, dict) else {}


def _own(part: Part) -> dict[str, Any]:
    data = (part.provider_data or {}).get(DIALECT_NAME)
    return data if isinstance(data, dict) else {}


def _created(created: int | None, meta: Mapping[str, Any]) -> int:
    if created is not None:
        return created
    value = meta.get("created")
    return value if isinstance(value, int) else int(time.time())


# --------------------------------------------------------------------------- streams


def stream_to_openai_chunks(
    events: Iterable[StreamEvent],
    *,
    id: str,
    model: str,
    created: int,
    include_usage: bool = True,
) -> Iterator[dict[str, Any]]:
    """``chat.completion.chunk`` dicts for canonical stream events.

    Tool calls are renumbered 0, 1, 2... in order of appearance (canonical indexes may
    be content-block indexes with gaps); usage is held back and sent in a last chunk with
    ``choices: []``, as OpenAI does with ``stream_options.include_usage``. A finish chunk
    is always sent, even when the events carried no FinishEvent. SSE framing and
    ``[DONE]`` are the caller's job. :class:`OpenAIChunkEncoder` is the same, one event
    at a time (for a stream that arrives asynchronously).
    """
    encoder = OpenAIChunkEncoder(id=id, model=model, created=created, include_usage=include_usage)
    for event in events:
        yield from encoder.feed(event)
    yield from encoder.close()


class OpenAIChunkEncoder:
    """Canonical stream events -> ``chat.completion.chunk`` dicts, incrementally:
    ``feed(event)`` returns the chunks that event produces, ``close()`` the finish and
    usage chunks (see :func:`stream_to_openai_chunks` for the rules)."""

    __slots__ = (
        "_end_response", "_finished", "_indexes", "_refusal_block", "_started", "_usage",
        "created", "id", "include_usage", "model",
    )

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool = True) -> None:
        self.id = id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self._started = False
        self._finished = False
        self._usage: Usage | None = None
        self._indexes: dict[int, int] = {}
        self._refusal_block: int | None = None
        self._end_response: Response | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, UsageEvent):
            self._usage = event.usage
            return []
        if isinstance(event, StreamEnd):
            self._end_response = event.response
            self._usage = event.response.usage
            return []
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if isinstance(event, TextDelta):
            if ((event.provider_data or {}).get(DIALECT_NAME) or {}).get("refusal"):
                self._refusal_block = event.block  # later fragments of that block lack the mark
            key = "refusal" if event.block == self._refusal_block else "content"
            out.append(self._chunk({key: event.text}))
        elif isinstance(event, ThinkingDelta):
            if event.text:
                out.append(self._chunk({"reasoning_content": event.text}))
        elif isinstance(event, ToolCallDelta):
            indexes = self._indexes
            if event.index not in indexes:
                indexes[event.index] = len(indexes)
                call: dict[str, Any] = {
                    "index": indexes[event.index],
                    "id": event.id or "",
                    "type": "function",
                    "function": {"name": event.name or "", "arguments": event.arguments},
                }
            else:
                call = {"index": indexes[event.index], "function": {"arguments": event.arguments}}
            out.append(self._chunk({"tool_calls": [call]}))
        elif isinstance(event, FinishEvent) and not self._finished:
            self._finished = True
            out.append(self._chunk({}, _wire_finish(event.finish_reason)))
        return out

    def close(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if not self._finished:
            self._finished = True
            if self._end_response is not None:
                reason = self._end_response.finish_reason
            else:
                reason = "tool_calls" if self._indexes else "stop"
            out.append(self._chunk({}, _wire_finish(reason)))
        if self.include_usage and self._usage is not None:
            out.append({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_to_openai(self._usage),
            })
        return out
