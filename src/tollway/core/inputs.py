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
from tollway.core.errors import BadRequestError, InvalidRequestError
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


_REASONING_KEYS = ("effort", "budget_tokens", "include_thoughts")


def _reasoning(value: Any) -> Reasoning | None:
    if value is None or isinstance(value, Reasoning):
        return value
    if isinstance(value, str):
        return Reasoning(effort=value)
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            "reasoning", f"expected an effort string (e.g. 'low'), a Reasoning or a mapping "
            f"with {', '.join(_REASONING_KEYS)}; got {type(value).__name__}",
        )
    unknown = sorted(set(value) - set(_REASONING_KEYS))
    if unknown:
        raise InvalidRequestError(
            "reasoning", f"unknown key(s) {', '.join(map(repr, unknown))}; expected "
            f"{', '.join(_REASONING_KEYS)}",
        )
    effort, budget = value.get("effort"), value.get("budget_tokens")
    if effort is not None and not isinstance(effort, str):
        raise InvalidRequestError("reasoning.effort", f"expected a string such as 'low'; got {effort!r}")
    _check_number("reasoning.budget_tokens", budget, int, minimum=0)
    return Reasoning(**value)


def _check_number(name: str, value: Any, kind: type, *, minimum: float | None = None) -> None:
    """``value`` must be None or a number of ``kind`` (int for counts; float accepts
    ints too), at least ``minimum``; bools are not numbers here."""
    if value is None:
        return
    numeric = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric):
        what = "a whole number" if kind is int else "a number"
        raise InvalidRequestError(name, f"expected {what}; got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidRequestError(name, f"must be at least {minimum:g}; got {value!r}")


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
    """A Request from the everyday shapes; a Request passes through unchanged. Anything
    that is not a valid prompt, message list or parameter is an InvalidRequestError
    naming the field, raised here: before any budget or network step."""
    if isinstance(messages, Request):
        return messages
    if messages is None or not isinstance(messages, str | Message | Mapping | Iterable):
        raise InvalidRequestError(
            "messages", "expected a prompt string, a tollway Message, an OpenAI-style message "
            f"dict or a list of them; got {type(messages).__name__}",
        )
    canonical = to_messages(messages)
    if not canonical:
        raise InvalidRequestError("messages", "the list is empty: give at least one message")
    _check_number("max_tokens", max_tokens, int, minimum=1)
    _check_number("temperature", temperature, float, minimum=0)
    _check_number("top_p", top_p, float, minimum=0)
    _check_number("seed", seed, int)
    if stop is not None and not isinstance(stop, str) and (
        not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop)
    ):
        raise InvalidRequestError("stop", f"expected a string or a list of strings; got {stop!r}")
    reasoning = _reasoning(reasoning)
    return Request(
        messages=canonical,
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
