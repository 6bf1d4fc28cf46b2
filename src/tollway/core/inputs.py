"""The public-input boundary: whatever a caller passes -> a canonical Request.

A prompt string, Messages, OpenAI-style dicts (read by the OpenAI interchange code),
tools as Tool objects, OpenAI dicts or pydantic models, and the everyday parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tollway.core.dialects.openai_interchange.reading import (
    message_from_openai,
    to_response_format,
    to_tool_choice,
    tool_from_openai,
)
from tollway.core.errors import BadRequestError
from tollway.core.types import (
    Message,
    Reasoning,
    Request,
    Tool,
)

__all__ = ["build_request", "to_messages", "to_response_format", "to_tool", "to_tool_choice"]


def to_messages(value: str | Message | Mapping[str, Any] | Iterable[Any]) -> list[Message]:
    """Accept the shapes users already write: a prompt string, a Message, an OpenAI-style
    message dict, or a list mixing Messages and dicts."""
    if isinstance(value, str):
        return [Message.user(value)]
    if isinstance(value, Message):
        return [value]
    if isinstance(value, Mapping):
        return [message_from_openai(value)]
    out: list[Message] = []
    for item in value:
        if type(item) is dict:  # the common case, without the ABC check
            out.append(message_from_openai(item))
        elif isinstance(item, Message):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(message_from_openai(item))
        elif isinstance(item, str):
            out.append(Message.user(item))
        else:
            raise BadRequestError(
                f"a message must be a str, a tollway Message or an OpenAI-style dict; "
                f"got {type(item).__name__}"
            )
    return out


def to_tool(value: Tool | Mapping[str, Any] | type[Any]) -> Tool:
    if isinstance(value, Tool):
        return value
    if isinstance(value, Mapping):
        return tool_from_openai(value)
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return Tool.from_model(value)
    raise BadRequestError(
        f"a tool must be a tollway Tool, an OpenAI tool dict or a pydantic model; got {value!r}"
    )


def build_request(
    messages: Any,
    *,
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    response_format: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    parallel_tool_calls: bool | None = None,
    reasoning: Reasoning | Mapping[str, Any] | str | None = None,
    extra: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Request:
    """A Request from the everyday shapes; a Request passes through unchanged."""
    if isinstance(messages, Request):
        return messages
    if isinstance(reasoning, str):
        reasoning = Reasoning(effort=reasoning)
    elif isinstance(reasoning, Mapping):
        reasoning = Reasoning(**reasoning)
    return Request(
        messages=to_messages(messages),
        tools=[to_tool(t) for t in tools] if tools else [],
        tool_choice=None if tool_choice is None else to_tool_choice(tool_choice),
        response_format=None if response_format is None else to_response_format(response_format),
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=[stop] if isinstance(stop, str) else (list(stop) if stop else None),
        seed=seed,
        parallel_tool_calls=parallel_tool_calls,
        reasoning=reasoning,
        extra=dict(extra) if extra else {},
        extra_headers=dict(extra_headers) if extra_headers else {},
    )
