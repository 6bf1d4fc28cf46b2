"""Canonical stream events -> the Messages API event stream an Anthropic client reads.

The sequence the Anthropic SDK's accumulator expects: ``message_start``, then for each
content block ``content_block_start`` / ``content_block_delta``... / ``content_block_stop``
(indexes 0, 1, 2... in order), then ``message_delta`` (stop reason and usage) and
``message_stop``. Canonical events from any upstream are regrouped into blocks: a new
block starts whenever the kind (text, thinking, tool call) or the canonical block /
tool index changes. Usage is only known at the end for most upstreams, so
``message_start`` carries what is known then and ``message_delta`` the full count
(input and cache tokens included, which the SDK folds into the final message).
SSE framing is the caller's job: :meth:`AnthropicEventEncoder.feed` returns
``(event name, payload)`` pairs.
"""

from __future__ import annotations

import secrets
from typing import Any

from tollway.core.dialects.anthropic.request import NAME, wire_tool_id
from tollway.core.types import (
    FinishEvent,
    Response,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

__all__ = ["AnthropicEventEncoder", "stop_reason", "usage_to_anthropic"]

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "content_filter": "refusal", "error": "end_turn"}

Event = tuple[str, dict[str, Any]]


def usage_to_anthropic(usage: Usage | None) -> dict[str, int]:
    """Anthropic's usage object: ``input_tokens`` excludes cache reads and writes."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    fresh = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    return {
        "input_tokens": fresh,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def stop_reason(finish: str, has_calls: bool, upstream: Any = None) -> str:
    """The wire stop reason: Anthropic's own when the upstream was Anthropic."""
    if isinstance(upstream, str) and upstream:
        return upstream
    reason = _STOP_REASONS.get(finish, "end_turn")
    if reason == "tool_use" and not has_calls:
        return "end_turn"
    return reason


class AnthropicEventEncoder:
    """``feed(event)`` -> the wire events it produces; ``close()`` -> the closing ones."""

    __slots__ = ("_block", "_finish", "_has_calls", "_index", "_response", "_started",
                 "_upstream_stop", "_usage", "id", "model")

    def __init__(self, *, model: str, id: str | None = None) -> None:
        self.id = id or "msg_" + secrets.token_hex(12)
        self.model = model
        self._started = False
        self._block: tuple[str, int] | None = None
        """The open block: (kind, canonical key)."""
        self._index = -1
        self._finish: str | None = None
        self._has_calls = False
        self._usage: Usage | None = None
        self._response: Response | None = None
        self._upstream_stop: Any = None

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": usage_to_anthropic(self._usage) | {"output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _open(self, kind: str, key: int, block: dict[str, Any]) -> list[Event]:
        out = self._close_block()
        self._index += 1
        self._block = (kind, key)
        out.append(("content_block_start", {
            "type": "content_block_start", "index": self._index, "content_block": block,
        }))
        return out

    def _close_block(self) -> list[Event]:
        if self._block is None:
            return []
        self._block = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any]) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                        "delta": delta})

    def feed(self, event: StreamEvent) -> list[Event]:
        if isinstance(event, StreamStart):
            if event.id and event.id.startswith("msg_"):
                self.id = event.id
            return self._start()
        if isinstance(event, UsageEvent):
            self._usage = event.usage
            return []
        if isinstance(event, FinishEvent):
            self._finish = event.finish_reason
            return []
        if isinstance(event, StreamEnd):
            self._response = event.response
            self._usage = event.response.usage
            self._upstream_stop = ((event.response.provider_data or {}).get(NAME) or {}).get(
                "stop_reason")
            return []
        out = self._start()
        if isinstance(event, TextDelta):
            if self._block != ("text", event.block):
                out += self._open("text", event.block, {"type": "text", "text": ""})
            if event.text:
                out.append(self._delta({"type": "text_delta", "text": event.text}))
        elif isinstance(event, ThinkingDelta):
            if event.redacted:
                out += self._open("redacted", event.block,
                                  {"type": "redacted_thinking", "data": event.redacted})
                out += self._close_block()
                return out
            if self._block != ("thinking", event.block):
                out += self._open("thinking", event.block,
                                  {"type": "thinking", "thinking": "", "signature": ""})
            if event.text:
                out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
            if event.signature and event.provider == NAME:
                out.append(self._delta({"type": "signature_delta", "signature": event.signature}))
        elif isinstance(event, ToolCallDelta):
            self._has_calls = True
            if self._block != ("tool", event.index):
                out += self._open("tool", event.index, {
                    "type": "tool_use", "id": wire_tool_id(event.id or f"toolu_{event.index}"),
                    "name": event.name or "", "input": {},
                })
            if event.arguments:
                out.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments}))
        return out

    def close(self) -> list[Event]:
        out = self._start()
        out += self._close_block()
        finish = self._finish or (self._response.finish_reason if self._response else "stop")
        out.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(finish, self._has_calls, self._upstream_stop),
                      "stop_sequence": None},
            "usage": usage_to_anthropic(self._usage),
        }))
        out.append(("message_stop", {"type": "message_stop"}))
        return out

