"""The OpenAI chat-completions dialect (sans-I/O).

One class serves OpenAI and every server that copies its API (Azure, Ollama, vLLM,
Groq, DeepSeek, Mistral, OpenRouter, Together, xAI, LiteLLM proxy...): their quirks are
constructor options, so each is a row in the provider table, never an ``if`` here.

- ``max_tokens_field``: ``max_completion_tokens`` (OpenAI; required by o-series) or
  ``max_tokens`` (most compatible servers).
- ``system_role``: ``system`` or ``developer`` (what o-series models want).
- ``supports_stream_usage``: send ``stream_options: {"include_usage": true}`` so the
  stream ends with a usage chunk (turn off for servers that reject the option).
- ``echo_reasoning``: send reasoning text back in ``reasoning_content`` (Kimi, DeepSeek
  tool loops); off by default since older DeepSeek reasoners reject it.

The reverse direction (client JSON -> canonical -> client JSON) used by the gateway is
``core/dialects/openai_interchange``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from tollway.core.dialects.base import HttpRequest
from tollway.core.dialects.openai_chat.errors import error_from_http, error_from_payload
from tollway.core.dialects.openai_chat.messages import EncodeOptions, encode_messages
from tollway.core.dialects.openai_chat.schema import strict_schema
from tollway.core.dialects.openai_chat.stream import OpenAIChatStreamParser, legacy_call
from tollway.core.dialects.openai_chat.wire import (
    DIALECT_NAME,
    REASONING_FIELDS,
    finish_reason,
    usage_from_openai,
)
from tollway.core.errors import BadRequestError, ProviderError, ServerError
from tollway.core.types import (
    NamedTool,
    Part,
    Request,
    Response,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    requested_service_tier,
)

__all__ = [
    "DIALECT",
    "OpenAIChatDialect",
    "OpenAIChatStreamParser",
    "strict_schema",
]

_META_KEYS = ("system_fingerprint", "service_tier", "created")

NO_IMAGE_OUTPUT = (
    "the Chat Completions API does not generate images: ask a Gemini image model "
    "(gemini/gemini-2.5-flash-image...) or an OpenAI model through the Responses API "
    "(api: responses) for image output, or use Model.generate_image"
)


@cache
def _encode_options(name: str, system_role: str, echo_reasoning: bool) -> EncodeOptions:
    """One EncodeOptions per dialect configuration, not one per call."""
    return EncodeOptions(name, system_role, echo_reasoning)


@dataclass(frozen=True, slots=True)
class OpenAIChatDialect:
    """OpenAI chat completions; options cover the compatible servers (module docstring)."""

    name: str = DIALECT_NAME
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    system_role: Literal["system", "developer"] = "system"
    supports_stream_usage: bool = True
    echo_reasoning: bool = False

    # ----------------------------------------------------------------- requests

    def build_request(self, request: Request, model: str, *, stream: bool) -> HttpRequest:
        """``POST /chat/completions`` with the body for ``request``. ``request.extra`` is
        deep-merged last, so it can add or override any field."""
        if request.wants_images:
            raise BadRequestError(NO_IMAGE_OUTPUT)
        options = _encode_options(self.name, self.system_role, self.echo_reasoning)
        body: dict[str, Any] = {
            "model": model,
            "messages": encode_messages(request.messages, options),
        }
        if request.tools:
            body["tools"] = [_tool(tool) for tool in request.tools]
        choice = _tool_choice(request.tool_choice, request.tools)
        if choice is not None:
            body["tool_choice"] = choice
        if request.response_format is not None:
            body["response_format"] = _response_format(request.response_format)
        for key, value in (
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            (self.max_tokens_field, request.max_tokens),
            ("stop", request.stop or None),
            ("seed", request.seed),
            ("parallel_tool_calls", request.parallel_tool_calls if request.tools else None),
        ):
            if value is not None:
                body[key] = value
        if request.reasoning is not None and request.reasoning.effort:
            body["reasoning_effort"] = request.reasoning.effort
        if stream:
            body["stream"] = True
            if self.supports_stream_usage:
                body["stream_options"] = {"include_usage": True}
        if request.extra:
            _deep_merge(body, request.extra)
        return HttpRequest("/chat/completions", body, dict(request.extra_headers))

    # ----------------------------------------------------------------- responses

    def parse_response(
        self, body: Mapping[str, Any], request: Request | None, model: str
    ) -> Response:
        """A ``chat.completion`` body -> Response; an ``{"error": ...}`` body raises the
        typed error (some compatible servers answer errors with HTTP 200)."""
        if body.get("error"):
            raise error_from_payload(body, _dump(body))
        choices = body.get("choices")
        first = choices[0] if type(choices) is list and choices else None
        if type(first) is dict and first.get("index", 0) == 0:
            choice: Mapping[str, Any] | None = first  # the usual shape, found directly
        else:
            choice = next(
                (c for c in choices or () if isinstance(c, Mapping) and c.get("index", 0) == 0),
                None,
            )
        if choice is None:
            raise ServerError(
                "the response has no choices (the provider returned no answer)",
                body=_dump(body),
            )
        message = choice.get("message") or {}
        parts, refused = self._parts(message)
        has_calls = any(isinstance(p, ToolCall) for p in parts)
        meta = {k: body[k] for k in _META_KEYS if body.get(k) is not None}
        return Response(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or model),
            provider=self.name,
            parts=parts,
            finish_reason=finish_reason(
                choice.get("finish_reason"), has_tool_calls=has_calls, refused=refused
            ),
            usage=usage_from_openai(
                body.get("usage"), body.get("service_tier") or requested_service_tier(request)
            ),
            response_format=request.response_format if request is not None else None,
            provider_data={self.name: meta} if meta else None,
        )

    def _parts(self, message: Mapping[str, Any]) -> tuple[list[Part], bool]:
        parts: list[Part] = []
        for field in REASONING_FIELDS:
            text = message.get(field)
            if isinstance(text, str) and text:
                parts.append(
                    Thinking(text, provider=self.name, provider_data={self.name: {"field": field}})
                )
                break
        content = message.get("content")
        if isinstance(content, str) and content:
            annotations = message.get("annotations")
            data = {self.name: {"annotations": annotations}} if annotations else None
            parts.append(Text(content, data))
        elif isinstance(content, list):  # Mistral-style content chunks
            text = "".join(
                str(c.get("text") or "")
                for c in content
                if isinstance(c, Mapping) and c.get("type") == "text"
            )
            if text:
                parts.append(Text(text))
        refusal = message.get("refusal")
        refused = isinstance(refusal, str) and bool(refusal)
        if refused:
            parts.append(Text(str(refusal), {self.name: {"refusal": True}}))
        calls = list(message.get("tool_calls") or ())
        legacy = message.get("function_call")
        if isinstance(legacy, Mapping):
            calls.append(legacy_call(dict(legacy)))
        for call in calls:
            if isinstance(call, Mapping):
                parts.append(_tool_call(call))
        return parts, refused

    def stream_parser(self, request: Request | None, model: str) -> OpenAIChatStreamParser:
        return OpenAIChatStreamParser(self.name, requested_service_tier(request))

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return error_from_http(status, body, headers)


DIALECT = OpenAIChatDialect()


# --------------------------------------------------------------------------- helpers


def _tool(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name}
    if tool.description:
        fn["description"] = tool.description
    fn["parameters"] = strict_schema(tool.parameters) if tool.strict else tool.parameters
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def _tool_choice(choice: ToolChoice | None, tools: list[Tool]) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if not tools:
        if choice in ("auto", "none"):
            return None  # meaningless without tools, and OpenAI rejects it
        raise BadRequestError(
            f"tool_choice {_choice_name(choice)!r} needs tools; pass the tools the model "
            "must choose from"
        )
    if isinstance(choice, NamedTool):
        if all(tool.name != choice.name for tool in tools):
            names = ", ".join(tool.name for tool in tools)
            raise BadRequestError(
                f"tool_choice names {choice.name!r}, which is not among the tools ({names})"
            )
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def _choice_name(choice: ToolChoice) -> str:
    return choice.name if isinstance(choice, NamedTool) else choice


def _response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.schema is None:
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name}
    if fmt.description:
        spec["description"] = fmt.description
    spec["schema"] = strict_schema(fmt.schema) if fmt.strict else fmt.schema
    spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def _tool_call(call: Mapping[str, Any]) -> ToolCall:
    fn = call.get("function") or {}
    call_id, name = str(call.get("id") or ""), str(fn.get("name") or "")
    arguments = fn.get("arguments")
    if isinstance(arguments, Mapping):  # a few compatible servers send an object
        return ToolCall.from_arguments(call_id, name, arguments)
    return ToolCall.from_raw(call_id, name, arguments if isinstance(arguments, str) else "")


def _deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merged = dict(target[key])
            _deep_merge(merged, value)
            target[key] = merged
        else:
            target[key] = value


def _dump(body: Mapping[str, Any]) -> str:
    try:
        return json.dumps(body)
    except (TypeError, ValueError):
        return repr(body)
