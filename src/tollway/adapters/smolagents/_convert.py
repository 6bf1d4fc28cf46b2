"""smolagents values <-> tollway values.

Inputs: smolagents' own ``get_clean_message_list`` turns its memory into OpenAI-style
dicts (tool-call / tool-response roles folded into assistant / user text, images as
data URLs), which tollway's request builder reads directly; tools go through
``get_tool_json_schema``, the same OpenAI function schema smolagents' API models send.
Outputs: a tollway Response becomes a ``ChatMessage`` (the Response itself kept in
``raw``), a stream event a ``ChatMessageStreamDelta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smolagents.models import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    get_clean_message_list,
    get_tool_json_schema,
    tool_role_conversions,
)
from smolagents.monitoring import TokenUsage

from tollway.core.types import Response, ToolCallDelta, Usage


@dataclass
class TollwayTokenUsage(TokenUsage):
    """smolagents' TokenUsage plus the cache and reasoning subsets tollway measured.

    ``input_tokens`` includes cache reads and writes, ``output_tokens`` includes
    reasoning (tollway's one meaning of usage), so smolagents' totals and monitor
    match the ledger; the extra fields say how much of that was cached or reasoning.
    smolagents' own stream aggregation rebuilds a plain TokenUsage, so in streaming
    mode only the two totals survive (the Response in ``ChatMessage.raw`` and the
    ledger keep the rest).
    """

    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def of(cls, usage: Usage) -> TollwayTokenUsage:
        return cls(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )

    def dict(self) -> dict[str, int]:
        return {
            **super().dict(),
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


def messages_for_tollway(
    messages: list[ChatMessage | dict[str, Any]],
    role_conversions: dict[Any, Any] | None,
    flatten_messages_as_text: bool,
) -> list[dict[str, Any]]:
    """smolagents messages as OpenAI-style dicts with plain string roles."""
    cleaned = get_clean_message_list(
        messages,
        role_conversions=role_conversions or tool_role_conversions,
        convert_images_to_image_urls=True,
        flatten_messages_as_text=flatten_messages_as_text,
    )
    for message in cleaned:
        role = message["role"]
        message["role"] = role.value if isinstance(role, MessageRole) else str(role)
    return cleaned


def tools_for_tollway(tools: list[Any]) -> list[dict[str, Any]]:
    return [get_tool_json_schema(tool) for tool in tools]


def chat_message(response: Response, content: str) -> ChatMessage:
    """The assistant ChatMessage for a Response (tool-call arguments stay the model's
    JSON text, which the agents parse, as with smolagents' OpenAI model)."""
    calls = [
        ChatMessageToolCall(
            function=ChatMessageToolCallFunction(name=call.name, arguments=call.arguments_json),
            id=call.id,
            type="function",
        )
        for call in response.tool_calls
    ]
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=content if content or not calls else None,
        tool_calls=calls or None,
        raw=response,
        token_usage=TollwayTokenUsage.of(response.usage),
    )


def tool_call_delta(event: ToolCallDelta) -> ChatMessageStreamDelta:
    return ChatMessageStreamDelta(
        tool_calls=[
            ChatMessageToolCallStreamDelta(
                index=event.index,
                id=event.id,
                type="function",
                function=ChatMessageToolCallFunction(name=event.name or "", arguments=event.arguments),
            )
        ]
    )


def usage_delta(usage: Usage) -> ChatMessageStreamDelta:
    """The one delta of a stream that carries usage (smolagents sums usage over all
    deltas, so it must be sent exactly once: the final totals)."""
    return ChatMessageStreamDelta(content="", token_usage=TollwayTokenUsage.of(usage))
