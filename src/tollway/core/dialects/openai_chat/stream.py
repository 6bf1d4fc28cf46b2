"""OpenAI ``chat.completion.chunk`` SSE stream -> canonical stream events.

What real streams contain, and how each is treated:
- a first chunk with ``delta: {"role": "assistant", "content": ""}`` (and sometimes
  ``refusal: null``): nothing to emit but the StreamStart;
- ``obfuscation`` padding on every chunk (OpenAI): ignored;
- tool calls as fragments keyed by ``index``, id and name on the first fragment only;
  some compatible servers omit ``index`` or send whole calls per chunk, so a new ``id``
  without an index opens a new call;
- the finish reason on a chunk with an empty delta, then (with
  ``stream_options.include_usage``) a last chunk with ``choices: []`` and ``usage``,
  then ``data: [DONE]``;
- ``reasoning_content`` / ``reasoning`` deltas from compatible servers: ThinkingDelta;
- an ``{"error": ...}`` payload mid-stream: the typed ProviderError is raised.
"""

from __future__ import annotations

import json
from typing import Any

from tollway.core.dialects.base import SSEEvent, sse_json
from tollway.core.dialects.openai_chat.errors import error_from_payload
from tollway.core.dialects.openai_chat.wire import (
    REASONING_FIELDS,
    finish_reason,
    usage_from_openai,
)
from tollway.core.errors import StreamError
from tollway.core.types import (
    FinishEvent,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageEvent,
)

TEXT_BLOCK = 0
REFUSAL_BLOCK = 1
"""Refusal text is its own block so it accumulates into its own Text part, as
``parse_response`` gives it (marked ``provider_data[name]["refusal"]``)."""

_META_KEYS = ("system_fingerprint", "service_tier", "created")


class OpenAIChatStreamParser:
    """One parser per stream; see the module docstring for what it accepts."""

    __slots__ = (
        "_call_ids",
        "_done",
        "_finished",
        "_name",
        "_open_calls",
        "_reasoning_field",
        "_refusal_marked",
        "_refused",
        "_started",
        "_tier",
    )

    def __init__(self, name: str, requested_tier: str | None = None) -> None:
        self._name = name
        self._tier: Any = requested_tier
        """The service tier the chunks report (every chunk carries it), else the
        request's."""
        self._started = False
        self._finished = False
        self._done = False
        self._refused = False
        self._refusal_marked = False
        self._reasoning_field: str | None = None
        self._call_ids: dict[int, str] = {}
        self._open_calls: list[int] = []

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data.strip()
        if not data or self._done:
            return []  # keep-alive, or anything a server sends after [DONE]
        if data == "[DONE]":
            self._done = True
            return []
        chunk = sse_json(data, "stream chunk")
        if chunk.get("error"):
            raise error_from_payload(chunk, data)
        out: list[StreamEvent] = []
        choices = chunk.get("choices")
        # Azure opens with an id-less chunk holding only prompt_filter_results: start at
        # the first chunk that names the completion or carries choices.
        if not self._started and (chunk.get("id") or chunk.get("model") or choices):
            self._started = True
            meta = {k: chunk[k] for k in _META_KEYS if chunk.get(k) is not None}
            out.append(
                StreamStart(
                    chunk.get("id"), chunk.get("model"), {self._name: meta} if meta else None
                )
            )
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._choice(choice, out)
        tier = chunk.get("service_tier")
        if tier:
            self._tier = tier
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            out.append(UsageEvent(usage_from_openai(usage, self._tier)))
        return out

    def close(self) -> list[StreamEvent]:
        if not (self._finished or self._done):
            raise StreamError(
                "the stream ended before the provider finished it (no chunk with a "
                "finish_reason and no [DONE]); the connection was probably cut, so the "
                "answer is incomplete"
            )
        return []

    def _choice(self, choice: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._delta(delta, out)
        raw_finish = choice.get("finish_reason")
        if raw_finish and not self._finished:
            self._finished = True
            out.append(
                FinishEvent(
                    finish_reason(
                        raw_finish, has_tool_calls=bool(self._call_ids), refused=self._refused
                    )
                )
            )

    def _delta(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        for field in REASONING_FIELDS:
            text = delta.get(field)
            if isinstance(text, str) and text:
                first: dict[str, Any] | None = None
                if self._reasoning_field is None:
                    self._reasoning_field = field
                    first = {self._name: {"field": field}}
                out.append(ThinkingDelta(text, provider=self._name, provider_data=first))
                break
        content = delta.get("content")
        if isinstance(content, str):
            if content:
                out.append(TextDelta(content, TEXT_BLOCK))
        elif isinstance(content, list):  # Mistral-style content chunks
            for item in content:
                if isinstance(item, dict) and item.get("type") == "text" and item.get("text"):
                    out.append(TextDelta(str(item["text"]), TEXT_BLOCK))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            mark: dict[str, Any] | None = None
            if not self._refusal_marked:
                self._refusal_marked = True
                mark = {self._name: {"refusal": True}}
            out.append(TextDelta(refusal, REFUSAL_BLOCK, mark))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    out.append(self._tool_delta(position, call))
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            out.append(self._tool_delta(0, {"index": 0, **legacy_call(legacy)}))

    def _tool_delta(self, position: int, call: dict[str, Any]) -> ToolCallDelta:
        raw_fn = call.get("function")
        fn: dict[str, Any] = raw_fn if isinstance(raw_fn, dict) else {}
        call_id = call.get("id") or None
        index = call.get("index")
        if not isinstance(index, int):
            # No index: a new id opens a new call, no id continues the last one.
            if call_id is not None and call_id not in self._call_ids.values():
                index = len(self._open_calls)
            elif call_id is not None:
                index = next(i for i, known in self._call_ids.items() if known == call_id)
            else:
                index = self._open_calls[-1] if self._open_calls else position
        arguments = fn.get("arguments")
        if isinstance(arguments, dict):  # a few servers send parsed arguments
            arguments = json.dumps(arguments, separators=(",", ":"))
        if index not in self._call_ids:
            self._call_ids[index] = call_id or ""
            self._open_calls.append(index)
            return ToolCallDelta(index, call_id, fn.get("name"), arguments or "")
        return ToolCallDelta(index, None, None, arguments or "")


def legacy_call(function_call: dict[str, Any]) -> dict[str, Any]:
    """The deprecated ``function_call`` as a ``tool_calls`` entry (it had no id)."""
    return {"id": "function_call", "type": "function", "function": dict(function_call)}
