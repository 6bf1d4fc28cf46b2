"""tollway Responses and stream events -> LangChain AIMessage / AIMessageChunk.

A streamed answer, merged by LangChain (``chunk + chunk``), equals the non-streamed
one: text and reasoning arrive as deltas; everything a provider needs back next turn
(thinking signatures, tool-call provider data), the usage and the response metadata
arrive ONCE, on the last chunk, so LangChain's merge (which adds numbers and
concatenates strings) never double counts or garbles them.

Content is a plain string when the answer is only text (what LangChain users expect);
when the model also reasoned it is a list of standard blocks
(``{"type": "reasoning", "reasoning": ..., "extras": {"signature": ...}}`` and
``{"type": "text", ...}``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk

from tollway.adapters.langgraph.convert import PROVIDER_DATA_KEY
from tollway.core.errors import ToolArgumentsError
from tollway.core.types import (
    Response,
    StreamEnd,
    StreamEvent,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)


def usage_metadata(usage: Usage) -> UsageMetadata:
    """tollway's Usage has LangChain's meaning already: ``input_tokens`` includes cache
    reads and writes, ``output_tokens`` includes reasoning; details are subsets."""
    return UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        input_token_details={
            "cache_read": usage.cache_read_tokens,
            "cache_creation": usage.cache_write_tokens,
        },
        output_token_details={"reasoning": usage.reasoning_tokens},
    )


def response_metadata(response: Response) -> dict[str, Any]:
    """What LangChain shows under ``response_metadata``; ``cost`` is USD as a float (None
    when the model has no known price), ``cost_nanos`` the exact integer."""
    cost = response.cost
    return {
        "model_name": response.model,
        "finish_reason": response.finish_reason,
        "id": response.id or None,
        "provider": response.provider,
        "deployment": response.deployment,
        "cost": None if cost is None else float(cost),
        "cost_nanos": response.cost_nanos,
        "trace_id": response.trace_id,
    }


def _reasoning_extras(part: Thinking) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if part.signature:
        extras["signature"] = part.signature
    if part.redacted:
        extras["redacted"] = part.redacted
    if part.provider:
        extras["provider"] = part.provider
    if part.provider_data:
        extras["provider_data"] = part.provider_data
    return extras


def _stored_provider_data(response: Response) -> dict[str, Any]:
    calls = {c.id: c.provider_data for c in response.tool_calls if c.provider_data}
    text = next((p.provider_data for p in response.parts
                 if isinstance(p, Text) and p.provider_data), None)
    stored: dict[str, Any] = {}
    if calls:
        stored["tool_calls"] = calls
    if text:
        stored["text"] = text
    return {PROVIDER_DATA_KEY: stored} if stored else {}


def to_ai_message(response: Response) -> AIMessage:
    """The complete answer as an AIMessage (tool calls parsed; bad JSON -> invalid_tool_calls)."""
    has_thinking = any(isinstance(p, Thinking) for p in response.parts)
    content: str | list[str | dict[str, Any]]
    if has_thinking:
        blocks: list[str | dict[str, Any]] = []
        for part in response.parts:
            if isinstance(part, Thinking):
                block: dict[str, Any] = {"type": "reasoning", "reasoning": part.text}
                if extras := _reasoning_extras(part):
                    block["extras"] = extras
                blocks.append(block)
            elif isinstance(part, Text):
                blocks.append({"type": "text", "text": part.text})
        content = blocks
    else:
        content = response.text
    calls, invalid = [], []
    for call in response.tool_calls:
        try:
            calls.append(tool_call(name=call.name, args=call.parse_arguments(), id=call.id))
        except ToolArgumentsError as exc:
            invalid.append(invalid_tool_call(name=call.name, args=call.raw_arguments,
                                             id=call.id, error=str(exc)))
    return AIMessage(
        content=content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        additional_kwargs=_stored_provider_data(response),
        usage_metadata=usage_metadata(response.usage),
        response_metadata=response_metadata(response),
        id=response.id or None,
    )


class ChunkBuilder:
    """Turns one stream's events into AIMessageChunks (one builder per stream).

    Content blocks are numbered the way tollway's StreamAccumulator splits parts, so the
    last chunk can attach each Thinking part's signature to the block that streamed it.
    """

    __slots__ = ("_blocks", "_calls", "_next", "_open", "_reasoning")

    def __init__(self) -> None:
        self._blocks = False
        """True once reasoning arrived: content is then a list of blocks, not a str."""
        self._open: tuple[str, int] | None = None
        self._next = 0
        self._reasoning: list[int] = []
        self._calls: set[int] = set()

    def _index(self, key: tuple[str, int]) -> tuple[int, bool]:
        if key == self._open:
            return self._next - 1, False
        self._open = key
        self._next += 1
        return self._next - 1, True

    def _empty(self) -> str | list[str | dict[str, Any]]:
        return [] if self._blocks else ""

    def chunk(self, event: StreamEvent) -> AIMessageChunk | None:
        """The chunk for ``event``; None for events LangChain has no use for mid-stream
        (usage and finish arrive with the last chunk, from the complete Response)."""
        if isinstance(event, TextDelta):
            index, _ = self._index(("text", event.block))
            if not self._blocks:
                return AIMessageChunk(content=event.text)
            return AIMessageChunk(content=[{"type": "text", "text": event.text, "index": index}])
        if isinstance(event, ThinkingDelta):
            self._blocks = True
            index, new = self._index(("thinking", event.block))
            if new:
                self._reasoning.append(index)
            block = {"type": "reasoning", "reasoning": event.text, "index": index}
            return AIMessageChunk(content=[block])
        if isinstance(event, ToolCallDelta):
            if event.index not in self._calls:
                self._calls.add(event.index)
                self._open = ("tool", event.index)
            piece = tool_call_chunk(name=event.name, args=event.arguments or None, id=event.id,
                                    index=event.index)
            return AIMessageChunk(content=self._empty(), tool_call_chunks=[piece])
        if isinstance(event, StreamEnd):
            return self._last(event.response)
        return None

    def _last(self, response: Response) -> AIMessageChunk:
        content = self._empty()
        if self._blocks:
            thinking = [p for p in response.parts if isinstance(p, Thinking)]
            content = [
                {"type": "reasoning", "index": index, "extras": extras}
                for index, part in zip(self._reasoning, thinking, strict=False)
                if (extras := _reasoning_extras(part))
            ]
        return AIMessageChunk(
            content=content,
            additional_kwargs=_stored_provider_data(response),
            usage_metadata=usage_metadata(response.usage),
            response_metadata=response_metadata(response),
            id=response.id or None,
            chunk_position="last",
        )


def chunk_text(chunk: AIMessageChunk) -> str:
    """The text of a chunk (what on_llm_new_token reports as the token)."""
    content = chunk.content
    if isinstance(content, str):
        return content
    return "".join(
        str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
    )


def generation_info(response: Response) -> dict[str, Any]:
    return {"finish_reason": response.finish_reason, "model_name": response.model}
