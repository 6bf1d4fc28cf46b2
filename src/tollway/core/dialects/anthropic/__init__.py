"""The Anthropic Messages API dialect (``POST {base}/messages``), sans-I/O.

Translates canonical Requests into Messages API bodies and headers, and Messages API
bodies, event streams and error bodies back into canonical Responses, stream events and
typed errors. The pieces live in small helper modules, each with one job:

- :mod:`._anthropic_models` — every model-name-dependent decision (default
  ``max_tokens``, native structured-output support, effort -> thinking budget);
- :mod:`._anthropic_request` — messages, parts and tools -> content blocks;
- :mod:`._anthropic_response` — content blocks / stream events -> parts, usage, events;
- :mod:`._anthropic_errors` — error bodies and in-stream error events -> typed errors.

Request mapping, beyond the obvious fields:

- ``max_tokens`` is required by Anthropic: without one the family default from
  :func:`~._anthropic_models.model_traits` (or the ``default_max_tokens`` constructor
  option) is sent; with extended thinking the thinking budget is added on top of it.
- ``reasoning``: ``budget_tokens`` -> ``thinking: {type: enabled, budget_tokens}``;
  an effort alone uses :data:`~._anthropic_models.EFFORT_BUDGET_TOKENS`. Models that
  only take adaptive thinking (Opus 4.7 and later, see ``_anthropic_models``) get
  ``thinking: {type: adaptive, display}`` + ``output_config.effort`` instead. Anthropic
  only accepts the default temperature with thinking, so ``temperature`` (and a
  ``top_p`` below 0.95) is left out when thinking is on, and always for models without
  sampling parameters, rather than failing the call. ``include_thoughts=False`` only
  matters on adaptive models (``display: omitted``).
- ``response_format``: models with native structured output get
  ``output_config.format = {type: json_schema, schema}`` (the GA form; no beta header);
  others — and ``json_object``, which has no schema — get a synthetic tool named after the
  format that the model is made to call (``tool_choice`` ``tool``, or ``any`` when the
  request has other tools, or ``auto`` under thinking, which forbids forced tool use).
  Parsing turns that call back into a Text holding the JSON, so ``Response.parsed``
  works the same either way. Override the choice with ``structured_output="native"`` /
  ``"tool"``.
- ``tool_choice``: auto -> auto, required -> any, none -> none, NamedTool -> tool;
  ``parallel_tool_calls=False`` -> ``disable_parallel_tool_use``.
- ``seed`` has no Anthropic equivalent and is not sent.
- ``extra`` is deep-merged into the body last; ``extra_headers`` override headers, except
  ``anthropic-beta``, whose values are added to the dialect's own betas.

Response extras: ``Response.provider_data["anthropic"]`` holds the raw ``stop_reason``
(``pause_turn`` maps to ``stop``: send the history back to let a server tool finish),
``stop_sequence`` and ``container`` of a non-streamed message.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tollway.core.dialects.anthropic.errors import error_from_event
from tollway.core.dialects.anthropic.errors import parse_error as _parse_error
from tollway.core.dialects.anthropic.models import (
    ModelTraits,
    ThinkingSettings,
    model_traits,
    thinking_settings,
)
from tollway.core.dialects.anthropic.request import (
    NAME,
    BuildState,
    build_messages,
    build_tools,
    strict_json_schema,
    wire_tool_name,
)
from tollway.core.dialects.anthropic.response import (
    AnthropicStreamParser,
    finish_reason,
    parse_content,
    usage_from_wire,
)
from tollway.core.dialects.base import HttpRequest
from tollway.core.errors import BadRequestError, ProviderError, ServerError, scrub
from tollway.core.types import NamedTool, Request, Response, ResponseFormat

StructuredOutputMode = Literal["auto", "native", "tool"]
_STRUCTURED_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool. Its input is the answer: a JSON object "
    "matching the schema."
)

NO_IMAGE_OUTPUT = (
    "the Anthropic Messages API does not generate images: ask a Gemini image model "
    "(gemini/gemini-2.5-flash-image...) or an OpenAI model through the Responses API "
    "(api: responses) for image output, or use Model.generate_image"
)


@dataclass(frozen=True, slots=True)
class StructuredOutputPlan:
    """How a request's response_format is sent: ``native`` (output_config.format) or
    ``tool`` (a synthetic tool called ``tool_name``)."""

    mode: Literal["native", "tool"]
    tool_name: str | None = None


class AnthropicDialect:
    """The Anthropic Messages API. Options:

    - ``default_max_tokens``: sent when a request gives no ``max_tokens`` (default: the
      model-family table in ``_anthropic_models``);
    - ``version``: the ``anthropic-version`` header;
    - ``betas``: ``anthropic-beta`` values sent on every request (features that need one
      add theirs, e.g. the Files API when a File has a ``file_id``);
    - ``structured_output``: ``auto`` (decide by model), ``native`` or ``tool``.
    """

    name = NAME

    def __init__(
        self,
        *,
        default_max_tokens: int | None = None,
        version: str = "2023-06-01",
        betas: Sequence[str] = (),
        structured_output: StructuredOutputMode = "auto",
    ) -> None:
        if default_max_tokens is not None and default_max_tokens < 1:
            raise BadRequestError(
                f"default_max_tokens must be a positive integer, got {default_max_tokens}"
            )
        if structured_output not in ("auto", "native", "tool"):
            raise BadRequestError(
                f"structured_output must be 'auto', 'native' or 'tool', got {structured_output!r}"
            )
        self.default_max_tokens = default_max_tokens
        self.version = version
        self.betas = tuple(betas)
        self.structured_output: StructuredOutputMode = structured_output

    # ------------------------------------------------------------------ request

    def structured_output_plan(
        self, request: Request | None, model: str
    ) -> StructuredOutputPlan | None:
        """How ``request.response_format`` is (or was) sent for ``model``; None without one.
        Deterministic, so parsing makes the same decision the request was built with."""
        fmt = request.response_format if request is not None else None
        if fmt is None:
            return None
        if fmt.schema is not None and (
            self.structured_output == "native"
            or (self.structured_output == "auto" and model_traits(model).native_structured_output)
        ):
            return StructuredOutputPlan("native")
        return StructuredOutputPlan("tool", wire_tool_name(fmt.name))

    def build_request(self, request: Request, model: str, *, stream: bool) -> HttpRequest:
        if request.wants_images:
            raise BadRequestError(NO_IMAGE_OUTPUT)
        state = BuildState()
        system, messages = build_messages(request.messages, state)
        if not messages:
            raise BadRequestError(
                "Anthropic needs at least one user or assistant message; this request only "
                "had system messages (or nothing that can be sent)"
            )
        traits = model_traits(model)
        thinking = thinking_settings(request.reasoning, traits)

        body: dict[str, Any] = {
            "model": model,
            "max_tokens": self._max_tokens(request, traits, thinking),
            "messages": messages,
        }
        if system:
            body["system"] = system
        if thinking is not None:
            body["thinking"] = thinking.thinking
            if thinking.effort is not None:
                body["output_config"] = {"effort": thinking.effort}

        strict_ok = traits.native_structured_output or self.structured_output == "native"
        tools = build_tools(request.tools, strict_supported=strict_ok)
        tool_choice = _tool_choice(request)
        plan = self.structured_output_plan(request, model)
        fmt = request.response_format
        if plan is not None and fmt is not None:
            if plan.mode == "native" and fmt.schema is not None:
                schema = strict_json_schema(fmt.schema)
                output_config = body.setdefault("output_config", {})
                output_config["format"] = {"type": "json_schema", "schema": schema}
            elif plan.tool_name is not None:
                if any(tool.get("name") == plan.tool_name for tool in tools):
                    raise BadRequestError(
                        f"the response format is sent to Anthropic as a tool named "
                        f"{plan.tool_name!r}, but the request already has a tool with that "
                        f"name; give the response format another name"
                    )
                tools.append(_structured_tool(fmt, plan.tool_name, strict_ok))
                tool_choice = _structured_tool_choice(
                    request, plan.tool_name, len(tools), thinking is not None
                )
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice

        if traits.sampling_params:
            if request.temperature is not None and thinking is None:
                body["temperature"] = request.temperature
            if request.top_p is not None and (thinking is None or request.top_p >= 0.95):
                body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if stream:
            body["stream"] = True
        if request.extra:
            _deep_merge(body, request.extra)
        return HttpRequest("/messages", body, self._headers(request, state))

    def _max_tokens(
        self, request: Request, traits: ModelTraits, thinking: ThinkingSettings | None
    ) -> int:
        budget = thinking.budget_tokens if thinking is not None else None
        if request.max_tokens is not None:
            if budget is not None and request.max_tokens <= budget:
                raise BadRequestError(
                    f"max_tokens={request.max_tokens} must be larger than the thinking budget "
                    f"({budget} tokens): Anthropic counts thinking inside max_tokens; raise "
                    f"max_tokens or lower the reasoning budget"
                )
            return request.max_tokens
        default = self.default_max_tokens or traits.default_max_tokens
        if thinking is None:
            return default
        room = thinking.room_tokens
        total = room + default
        if total > traits.max_output_tokens > room:
            total = traits.max_output_tokens
        return total

    def _headers(self, request: Request, state: BuildState) -> dict[str, str]:
        headers = {"anthropic-version": self.version}
        betas = [*self.betas, *state.betas]
        for key, value in request.extra_headers.items():
            lower = key.lower()
            if lower == "anthropic-beta":
                betas.extend(beta.strip() for beta in value.split(",") if beta.strip())
                continue
            for existing in [k for k in headers if k.lower() == lower]:
                del headers[existing]
            headers[key] = value
        if betas:
            headers["anthropic-beta"] = ",".join(dict.fromkeys(betas))
        return headers

    # ------------------------------------------------------------------ response

    def parse_response(
        self, body: Mapping[str, Any], request: Request | None, model: str
    ) -> Response:
        if body.get("type") == "error":
            raise error_from_event(body, json.dumps(body))
        content = body.get("content")
        if not isinstance(content, list):
            raise ServerError(
                "Anthropic returned a message without a 'content' list",
                body=scrub(json.dumps(body, default=str)),
            )
        plan = self.structured_output_plan(request, model)
        structured_tool = plan.tool_name if plan is not None else None
        parts, has_calls = parse_content(content, structured_tool)
        usage = body.get("usage")
        provider_data: dict[str, Any] = {}
        for key in ("stop_reason", "stop_sequence", "container"):
            if body.get(key) is not None:
                provider_data[key] = body[key]
        return Response(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or model),
            provider=self.name,
            parts=parts,
            finish_reason=finish_reason(body.get("stop_reason"), has_calls),
            usage=usage_from_wire(usage if isinstance(usage, Mapping) else {}),
            response_format=request.response_format if request is not None else None,
            provider_data={NAME: provider_data} if provider_data else None,
        )

    def stream_parser(self, request: Request | None, model: str) -> AnthropicStreamParser:
        plan = self.structured_output_plan(request, model)
        return AnthropicStreamParser(plan.tool_name if plan is not None else None)

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return _parse_error(status, body, headers)


def _tool_choice(request: Request) -> dict[str, Any] | None:
    choice = request.tool_choice
    wire: dict[str, Any] | None
    if isinstance(choice, NamedTool):
        wire = {"type": "tool", "name": choice.name}
    elif choice == "required":
        wire = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "auto":
        wire = {"type": "auto"}
    else:
        wire = None
    if request.parallel_tool_calls is False:
        wire = wire or {"type": "auto"}
        wire["disable_parallel_tool_use"] = True
    return wire


def _structured_tool_choice(
    request: Request, tool_name: str, tool_count: int, thinking: bool
) -> dict[str, Any]:
    choice = request.tool_choice
    wire: dict[str, Any]
    if isinstance(choice, NamedTool) and choice.name != tool_name:
        wire = {"type": "tool", "name": choice.name}
    elif thinking:
        wire = {"type": "auto"}  # extended thinking rejects forced tool use
    elif tool_count > 1 and choice != "none":
        wire = {"type": "any"}  # call a tool of the request or answer through ours
    else:
        wire = {"type": "tool", "name": tool_name}
    if request.parallel_tool_calls is False:
        wire["disable_parallel_tool_use"] = True
    return wire


def _structured_tool(fmt: ResponseFormat, name: str, strict_ok: bool) -> dict[str, Any]:
    schema = fmt.schema if fmt.schema is not None else {"type": "object"}
    tool: dict[str, Any] = {
        "name": name,
        "description": fmt.description or _STRUCTURED_TOOL_DESCRIPTION,
        "input_schema": schema,
    }
    if fmt.schema is not None and fmt.strict and strict_ok:
        tool["input_schema"] = strict_json_schema(schema)
        tool["strict"] = True
    return tool


def _deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _deep_merge(current, value)
        else:
            target[key] = copy.deepcopy(value)


DIALECT = AnthropicDialect()

__all__ = ["DIALECT", "AnthropicDialect", "StructuredOutputPlan"]
