"""Anthropic Messages API responses and streams -> canonical parts, usage, events.

Block mapping (the same for a whole message and for a stream):

- ``text`` -> Text (``citations`` kept in ``provider_data["anthropic"]``);
- ``thinking`` / ``redacted_thinking`` -> Thinking with signature / redacted data and
  ``provider="anthropic"``, so they can be sent back verbatim on the next turn;
- ``tool_use`` -> ToolCall, except the synthetic structured-output tool (when the request
  used one), which becomes a Text holding the JSON so ``Response.parsed`` works;
- anything else (``server_tool_use``, ``web_search_tool_result``, ``compaction``, ...) is
  run by Anthropic, not by the client: kept losslessly as an empty Text whose
  ``provider_data["anthropic"]["block"]`` is the raw block, in its original position, so
  continuing the conversation on Anthropic sends it back unchanged.

Usage follows DESIGN.md: ``input_tokens`` counts uncached input + cache reads + cache
writes; ``output_tokens`` includes thinking. Context compaction runs an extra sampling
step whose tokens Anthropic reports only in ``usage.iterations`` (entries of type
``compaction``), not in the top-level counts; those are billed at the same model's rates,
so they are added. Other iteration types that name their own ``model`` (an advisor
sub-call) are priced as a different model and are NOT folded into this call's counts.
``usage.service_tier`` (``priority``, ``batch``) and fast mode (``usage.speed: fast``)
become ``Usage.service_tier``, which selects the tier's rates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tollway.core.dialects.anthropic.errors import error_from_event
from tollway.core.dialects.anthropic.request import NAME, RAW_BLOCK_KEY
from tollway.core.dialects.base import SSEEvent
from tollway.core.errors import StreamError, scrub
from tollway.core.types import (
    FinishEvent,
    FinishReason,
    Part,
    StreamEvent,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
    service_tier_of,
)

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "compaction": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None, has_tool_calls: bool) -> FinishReason:
    """Canonical finish reason; ``tool_use`` without client tool calls (only the synthetic
    structured-output tool was called) is a normal stop."""
    reason = FINISH_REASONS.get(stop_reason or "", "stop")
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"
    return reason


# --------------------------------------------------------------------------- usage


def _count(source: Mapping[str, Any], key: str) -> int:
    value = source.get(key)
    return value if isinstance(value, int) else 0


def usage_from_wire(usage: Mapping[str, Any]) -> Usage:
    """Canonical Usage from an Anthropic ``usage`` object (see the module docstring)."""
    sources: list[Mapping[str, Any]] = [usage]
    for item in usage.get("iterations") or ():
        if isinstance(item, Mapping) and item.get("type") == "compaction":
            sources.append(item)
    input_tokens = output_tokens = cache_read = cache_write = cache_write_1h = 0
    for source in sources:
        read = _count(source, "cache_read_input_tokens")
        write = _count(source, "cache_creation_input_tokens")
        input_tokens += _count(source, "input_tokens") + read + write
        output_tokens += _count(source, "output_tokens")
        cache_read += read
        cache_write += write
        breakdown = source.get("cache_creation")
        if isinstance(breakdown, Mapping):
            cache_write_1h += _count(breakdown, "ephemeral_1h_input_tokens")
    details = usage.get("output_tokens_details")
    reasoning = _count(details, "thinking_tokens") if isinstance(details, Mapping) else 0
    units: dict[str, int] = {}
    server = usage.get("server_tool_use")
    if isinstance(server, Mapping):
        searches = _count(server, "web_search_requests")
        if searches:
            units["web_search"] = searches
    # ``service_tier`` is standard | priority | batch; fast mode (``speed: fast``) is
    # priced as its own tier.
    tier = "fast" if usage.get("speed") == "fast" else service_tier_of(usage.get("service_tier"))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_write_1h,
        reasoning_tokens=reasoning,
        units=units,
        service_tier=tier,
    )


# --------------------------------------------------------------------------- whole message


def raw_block_part(block: Mapping[str, Any]) -> Text:
    """A block Anthropic ran itself (server tools, compaction), kept for the next turn."""
    return Text("", {NAME: {RAW_BLOCK_KEY: dict(block)}})


def parse_content(content: list[Any], structured_tool: str | None) -> tuple[list[Part], bool]:
    """``(parts, has_client_tool_calls)`` for a message's content blocks."""
    parts: list[Part] = []
    has_calls = False
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            citations = block.get("citations")
            data = {NAME: {"citations": list(citations)}} if citations else None
            parts.append(Text(str(block.get("text") or ""), data))
        elif kind == "thinking":
            parts.append(
                Thinking(
                    str(block.get("thinking") or ""),
                    signature=block.get("signature") or None,
                    provider=NAME,
                )
            )
        elif kind == "redacted_thinking":
            parts.append(Thinking("", redacted=block.get("data") or None, provider=NAME))
        elif kind == "tool_use":
            arguments = block.get("input")
            arguments = arguments if isinstance(arguments, Mapping) else {}
            if structured_tool is not None and block.get("name") == structured_tool:
                parts.append(Text(json.dumps(arguments, ensure_ascii=False)))
                continue
            call_id, name = str(block.get("id") or ""), str(block.get("name") or "")
            parts.append(ToolCall.from_arguments(call_id, name, arguments))
            has_calls = True
        else:
            parts.append(raw_block_part(block))
    return parts, has_calls


# --------------------------------------------------------------------------- stream


class _Block:
    """One open content block of a stream."""

    __slots__ = ("citations", "json", "kind", "raw", "start_input")

    def __init__(self, kind: str, raw: dict[str, Any] | None = None) -> None:
        self.kind = kind  # "text" | "thinking" | "tool" | "structured" | "raw"
        self.raw = raw
        self.json: list[str] = []
        self.citations: list[Any] = []
        self.start_input: Any = None


class AnthropicStreamParser:
    """Stateful translator of one Messages API event stream into canonical events.

    Usage: ``message_start`` carries the input / cache counts and a tiny output count;
    ``message_delta`` carries the cumulative output count (and, on newer API versions,
    updated input / cache counts). The two are combined field by field, the later value
    replacing the earlier one, never added, and each UsageEvent holds the totals so far.
    """

    __slots__ = ("_blocks", "_done", "_has_calls", "_structured_tool", "_usage")

    def __init__(self, structured_tool: str | None = None) -> None:
        self._structured_tool = structured_tool
        self._blocks: dict[int, _Block] = {}
        self._usage: dict[str, Any] = {}
        self._has_calls = False
        self._done = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data
        if not data.strip():
            return []
        try:
            payload = json.loads(data)
        except ValueError:
            raise StreamError(
                f"Anthropic sent a stream event that is not JSON: {scrub(data, 200)}"
            ) from None
        if not isinstance(payload, dict):
            raise StreamError(
                f"Anthropic sent a stream event that is not an object: {scrub(data, 200)}"
            )
        kind = payload.get("type") or event.event
        if kind == "content_block_delta":
            return self._delta(payload)
        if kind == "content_block_start":
            return self._start(payload)
        if kind == "content_block_stop":
            return self._stop(self._index(payload))
        if kind == "message_start":
            return self._message_start(payload)
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_stop":
            self._done = True
            return self._flush()
        if kind == "error":
            raise error_from_event(payload, data)
        return []  # ping, and event types newer than this parser

    def close(self) -> list[StreamEvent]:
        if not self._done:
            raise StreamError(
                "the Anthropic stream ended before message_stop: the connection was cut or "
                "the server stopped early, so the answer is incomplete"
            )
        return []

    # -- message events

    def _message_start(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        message = payload.get("message")
        if not isinstance(message, Mapping):
            raise StreamError("Anthropic message_start event without a message object")
        usage = message.get("usage")
        self._usage = dict(usage) if isinstance(usage, Mapping) else {}
        return [
            StreamStart(id=message.get("id"), model=message.get("model")),
            UsageEvent(usage_from_wire(self._usage)),
        ]

    def _message_delta(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        usage = payload.get("usage")
        if isinstance(usage, Mapping):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            events.append(UsageEvent(usage_from_wire(self._usage)))
        delta = payload.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        if stop_reason:
            events.append(FinishEvent(finish_reason(stop_reason, self._has_calls)))
        return events

    # -- content blocks

    @staticmethod
    def _index(payload: Mapping[str, Any]) -> int:
        index = payload.get("index")
        if not isinstance(index, int):
            raise StreamError(f"Anthropic {payload.get('type')} event without an integer index")
        return index

    def _start(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        index = self._index(payload)
        block = payload.get("content_block")
        if not isinstance(block, Mapping):
            raise StreamError("Anthropic content_block_start event without a content_block")
        kind = block.get("type")
        if kind == "text":
            state = _Block("text")
            state.citations = list(block.get("citations") or ())
            self._blocks[index] = state
            text = block.get("text") or ""
            return [TextDelta(text, index)] if text else []
        if kind == "thinking":
            self._blocks[index] = _Block("thinking")
            return [
                ThinkingDelta(
                    block.get("thinking") or "",
                    index,
                    signature=block.get("signature") or None,
                    provider=NAME,
                )
            ]
        if kind == "redacted_thinking":
            self._blocks[index] = _Block("thinking")
            return [ThinkingDelta("", index, redacted=block.get("data") or None, provider=NAME)]
        if kind == "tool_use":
            if self._structured_tool is not None and block.get("name") == self._structured_tool:
                state = _Block("structured")
                state.start_input = block.get("input")
                self._blocks[index] = state
                return []
            state = _Block("tool")
            state.start_input = block.get("input")
            self._blocks[index] = state
            self._has_calls = True
            return [ToolCallDelta(index, id=block.get("id") or "", name=block.get("name") or "")]
        self._blocks[index] = _Block("raw", dict(block))
        return []

    def _delta(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        index = self._index(payload)
        delta = payload.get("delta")
        if not isinstance(delta, Mapping):
            raise StreamError("Anthropic content_block_delta event without a delta")
        state = self._blocks.get(index)
        if state is None:
            raise StreamError(f"Anthropic sent a delta for content block {index} before its start")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text") or ""
            return [TextDelta(text, index)] if text else []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json") or ""
            if not fragment:
                return []  # the first fragment is always empty
            state.json.append(fragment)
            if state.kind == "tool":
                return [ToolCallDelta(index, arguments=fragment)]
            if state.kind == "structured":
                return [TextDelta(fragment, index)]
            return []
        if kind == "thinking_delta":
            return [ThinkingDelta(delta.get("thinking") or "", index, provider=NAME)]
        if kind == "signature_delta":
            signature = delta.get("signature") or None
            return [ThinkingDelta("", index, signature=signature, provider=NAME)]
        if kind == "citations_delta":
            citation = delta.get("citation")
            if citation is not None:
                state.citations.append(citation)
            return []
        if state.raw is not None and isinstance(delta.get("content"), str):
            # e.g. compaction_delta: the block's content arrives in pieces
            state.raw["content"] = (state.raw.get("content") or "") + delta["content"]
        return []

    def _stop(self, index: int) -> list[StreamEvent]:
        state = self._blocks.pop(index, None)
        if state is None:
            return []
        return self._finish_block(index, state)

    def _finish_block(self, index: int, state: _Block) -> list[StreamEvent]:
        if state.kind == "text" and state.citations:
            return [TextDelta("", index, {NAME: {"citations": state.citations}})]
        if state.kind in ("tool", "structured") and not state.json and state.start_input:
            # the whole input came with content_block_start instead of as deltas
            arguments = json.dumps(state.start_input, ensure_ascii=False)
            if state.kind == "tool":
                return [ToolCallDelta(index, arguments=arguments)]
            return [TextDelta(arguments, index)]
        if state.kind == "raw" and state.raw is not None:
            if state.json:
                text = "".join(state.json)
                try:
                    state.raw["input"] = json.loads(text)
                except ValueError:
                    raise StreamError(
                        f"Anthropic streamed {state.raw.get('type')} input that is not JSON: "
                        f"{scrub(text, 200)}"
                    ) from None
            return [TextDelta("", index, {NAME: {RAW_BLOCK_KEY: state.raw}})]
        return []

    def _flush(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for index in sorted(self._blocks):
            events.extend(self._finish_block(index, self._blocks[index]))
        self._blocks.clear()
        return events
