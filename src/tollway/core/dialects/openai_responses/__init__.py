"""The OpenAI Responses API dialect (``POST {base}/responses``), sans-I/O.

The pieces, each with one job: :mod:`.request` (messages, tools, formats -> input items),
:mod:`.response` (output items -> parts, usage, finish), :mod:`.stream` (the typed event
stream), :mod:`.errors` (error bodies and events), :mod:`.models` (which models exist
only here, which reason).

Request mapping, beyond the item translation described in :mod:`.request`:

- ``max_tokens`` -> ``max_output_tokens``; ``temperature``, ``top_p``,
  ``parallel_tool_calls`` as named. ``seed`` and ``stop`` have no Responses equivalent and
  are not sent (frameworks such as CrewAI always pass stop words; failing them would make
  every such agent unusable here).
- ``response_format`` -> ``text.format`` (``json_schema``, strict by default, or
  ``json_object``); tools -> function tools with ``strict`` always explicit.
- ``reasoning`` -> ``reasoning: {effort, summary: "auto"}`` (no summary when
  ``include_thoughts`` is False; a token budget alone is mapped to the nearest effort).
- Storage: the dialect option ``store`` (default False: tollway keeps the conversation,
  OpenAI keeps nothing) is sent as ``store``; a request overrides it with
  ``extra={"store": True}``. When not storing, reasoning models get
  ``include: ["reasoning.encrypted_content"]``, so each reasoning item comes back
  encrypted and is sent back on the next turn: the model keeps its chain of thought
  across tool calls without any server-side state.
- ``extra={"previous_response_id": "resp_..."}`` continues a stored response: only the
  messages after the last assistant turn are sent as input (the server holds the rest).
- ``extra`` is deep-merged last (``service_tier``, ``truncation``, ``metadata``...),
  except that its ``include`` and ``tools`` lists are added to the dialect's own (so
  built-in tools such as ``{"type": "web_search"}`` sit beside the function tools).

Response extras: ``Response.provider_data["openai_responses"]`` holds ``status``,
``service_tier`` and ``created_at``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tollway.core.dialects.base import HttpRequest
from tollway.core.dialects.openai_responses.errors import error_from_http, failed_response_error
from tollway.core.dialects.openai_responses.models import reasons, responses_only
from tollway.core.dialects.openai_responses.request import (
    NAME,
    after_last_answer,
    encode_format,
    encode_input,
    encode_tool,
    encode_tool_choice,
    split_instructions,
)
from tollway.core.dialects.openai_responses.response import (
    finish_reason,
    parse_output,
    response_meta,
    usage_from_wire,
)
from tollway.core.dialects.openai_responses.stream import OpenAIResponsesStreamParser
from tollway.core.errors import ProviderError, ServerError
from tollway.core.types import Reasoning, Request, Response, requested_service_tier

__all__ = [
    "DIALECT",
    "NAME",
    "OpenAIResponsesDialect",
    "OpenAIResponsesStreamParser",
    "reasons",
    "responses_only",
]

ENCRYPTED_REASONING = "reasoning.encrypted_content"
_BUDGET_EFFORTS = ((2048, "low"), (8192, "medium"))
"""A token budget (Anthropic / Gemini style) -> the nearest effort: up to 2k low, up
to 8k medium, above high (the budgets the Anthropic dialect gives those efforts)."""


@dataclass(frozen=True, slots=True)
class OpenAIResponsesDialect:
    """The Responses API. Options: ``store`` (sent as ``store``; None leaves it to the
    server, whose default is to store) and ``system_role`` for system messages that are
    not at the start of the conversation."""

    name: str = NAME
    store: bool | None = False
    system_role: Literal["system", "developer"] = "developer"

    def build_request(self, request: Request, model: str, *, stream: bool) -> HttpRequest:
        extra = request.extra
        store = extra.get("store", self.store)
        instructions, messages = split_instructions(request.messages)
        if extra.get("previous_response_id"):
            messages = after_last_answer(messages)
        body: dict[str, Any] = {"model": model}
        if instructions is not None:
            body["instructions"] = instructions
        body["input"] = encode_input(messages, system_role=self.system_role, stored=store is True)
        if request.tools:
            body["tools"] = [encode_tool(tool) for tool in request.tools]
        choice = encode_tool_choice(request.tool_choice, request.tools)
        if choice is not None:
            body["tool_choice"] = choice
        if request.response_format is not None:
            body["text"] = {"format": encode_format(request.response_format)}
        for key, value in (
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("max_output_tokens", request.max_tokens),
            ("parallel_tool_calls", request.parallel_tool_calls if request.tools else None),
        ):
            if value is not None:
                body[key] = value
        effort = _reasoning(request.reasoning)
        if effort is not None:
            body["reasoning"] = effort
        if store is not None:
            body["store"] = store
        include = [ENCRYPTED_REASONING] if store is not True and (
            reasons(model) or request.reasoning is not None
        ) else []
        for value in extra.get("include") or ():
            if value not in include:
                include.append(value)
        if include:
            body["include"] = include
        if stream:
            body["stream"] = True
        for key, value in extra.items():
            if key == "include":
                continue
            if key == "tools" and isinstance(value, list):
                body["tools"] = [*body.get("tools", ()), *value]  # built-in tools join ours
            elif isinstance(value, Mapping) and isinstance(body.get(key), dict):
                body[key] = _merged(body[key], value)
            else:
                body[key] = value
        if request.wants_images and not any(
            isinstance(t, Mapping) and t.get("type") == "image_generation"
            for t in body.get("tools") or ()
        ):
            # Responses models draw through the built-in image_generation tool.
            body["tools"] = [*body.get("tools", ()), {"type": "image_generation"}]
        return HttpRequest("/responses", body, dict(request.extra_headers))

    def parse_response(
        self, body: Mapping[str, Any], request: Request | None, model: str
    ) -> Response:
        """A ``response`` object -> Response; a failed response (or an error body sent
        with HTTP 200) raises the typed error."""
        if body.get("error") or body.get("status") == "failed":
            raise failed_response_error(body)
        output = body.get("output")
        if not isinstance(output, list):
            raise ServerError(
                "the response has no output list (not a Responses API body)",
                body=_dump(body),
            )
        parts = parse_output(output)
        return Response(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or model),
            provider=self.name,
            parts=parts,
            finish_reason=finish_reason(body, parts),
            usage=usage_from_wire(body, requested_service_tier(request)),
            response_format=request.response_format if request is not None else None,
            provider_data=response_meta(body),
        )

    def stream_parser(self, request: Request | None, model: str) -> OpenAIResponsesStreamParser:
        return OpenAIResponsesStreamParser(requested_service_tier(request))

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return error_from_http(status, body, headers)


DIALECT = OpenAIResponsesDialect()


def _reasoning(reasoning: Reasoning | None) -> dict[str, Any] | None:
    if reasoning is None:
        return None
    effort = reasoning.effort
    if effort is None and reasoning.budget_tokens is not None:
        effort = next(
            (name for limit, name in _BUDGET_EFFORTS if reasoning.budget_tokens <= limit), "high"
        )
    out: dict[str, Any] = {}
    if effort:
        out["effort"] = effort
    if reasoning.include_thoughts:
        out["summary"] = "auto"
    return out or None


def _merged(target: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(target)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _dump(body: Mapping[str, Any]) -> str:
    try:
        return json.dumps(body)
    except (TypeError, ValueError):
        return repr(body)
