"""Canonical request / message / part / tool / response / usage / stream-event types.

Every dialect translates between these and its wire format; nothing else in tollway
speaks a provider's JSON. Hot-path values are slotted dataclasses (cheap to build);
pydantic appears only where users hand us their own models (``response_format``).

``provider_data`` on a part is an opaque dict, keyed by dialect name
(``{"anthropic": {...}}``), that a dialect fills when parsing and reads back when
building the next request, so nothing is lost on a round trip (thinking signatures,
Gemini ``thoughtSignature``, OpenAI reasoning ids) and nothing leaks to a provider
that would reject it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

from tollway.core.errors import OutputValidationError, ToolArgumentsError

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "error"]
ToolChoiceMode: TypeAlias = Literal["auto", "none", "required"]
ProviderData: TypeAlias = dict[str, Any]

NANOS_PER_USD = 1_000_000_000


# --------------------------------------------------------------------------- parts


@dataclass(slots=True)
class Text:
    text: str
    provider_data: ProviderData | None = None


@dataclass(slots=True)
class Image:
    """An image by URL or by bytes (``data``) with its media type."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    detail: str | None = None
    provider_data: ProviderData | None = None

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data or b"").decode("ascii")

    @property
    def data_url(self) -> str:
        """The image as a URL: its own, or a ``data:`` URL built from the bytes."""
        if self.url:
            return self.url
        return f"data:{self.media_type or 'image/png'};base64,{self.base64}"


@dataclass(slots=True)
class Audio:
    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    provider_data: ProviderData | None = None

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data or b"").decode("ascii")


@dataclass(slots=True)
class File:
    """A document (PDF, text...) by URL, bytes, or a provider file id."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    filename: str | None = None
    file_id: str | None = None
    provider_data: ProviderData | None = None

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data or b"").decode("ascii")


@dataclass(slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is the parsed object, ``raw_arguments``
    the exact string the model produced (kept so a round trip is byte-exact)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str = ""
    provider_data: ProviderData | None = None

    @classmethod
    def from_raw(
        cls, id: str, name: str, raw: str, provider_data: ProviderData | None = None
    ) -> ToolCall:
        """Build from the model's argument string; invalid JSON keeps ``arguments`` empty
        (check with :meth:`parse_arguments`, which raises a typed error)."""
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            parsed = {}
        return cls(id, name, parsed, raw, provider_data)

    @classmethod
    def from_arguments(
        cls, id: str, name: str, arguments: Mapping[str, Any], provider_data: ProviderData | None = None
    ) -> ToolCall:
        args = dict(arguments)
        return cls(id, name, args, json.dumps(args, separators=(",", ":")), provider_data)

    def parse_arguments(self) -> dict[str, Any]:
        """The arguments as a dict, or ToolArgumentsError saying why they are not valid."""
        raw = self.raw_arguments
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ToolArgumentsError(self.name, raw, f"not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ToolArgumentsError(self.name, raw, "expected a JSON object")
        return value

    @property
    def arguments_json(self) -> str:
        return self.raw_arguments or json.dumps(self.arguments, separators=(",", ":"))

    def history_arguments(self) -> dict[str, Any]:
        """The arguments to send back to a provider in the history: the parsed object,
        or ToolArgumentsError when the model's text is not a JSON object. Every dialect
        asks this one method, so none sends a call the others would refuse (and none
        quietly sends ``{}`` in place of what the model wrote)."""
        if self.arguments or not self.raw_arguments.strip():
            return self.arguments
        return self.parse_arguments()

    def history_arguments_json(self) -> str:
        """:meth:`history_arguments` as the exact text the model produced (dialects whose
        wire carries arguments as a string keep a round trip byte-exact)."""
        self.history_arguments()
        return self.arguments_json


@dataclass(slots=True)
class ToolResult:
    """The answer to a ToolCall. ``content`` is text or a list of parts (text, images)."""

    call_id: str
    content: str | list[Part]
    is_error: bool = False
    name: str | None = None
    provider_data: ProviderData | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, Text))


@dataclass(slots=True)
class Thinking:
    """Model reasoning. ``signature`` / ``redacted`` are only valid for the provider
    (dialect) named in ``provider``; other dialects drop them deliberately."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None
    provider_data: ProviderData | None = None


Part: TypeAlias = Text | Image | Audio | File | ToolCall | ToolResult | Thinking


# --------------------------------------------------------------------------- messages


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]
    name: str | None = None
    provider_data: ProviderData | None = None

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", [Text(text)])

    @classmethod
    def user(cls, content: str | Sequence[Part]) -> Message:
        return cls("user", [Text(content)] if isinstance(content, str) else list(content))

    @classmethod
    def assistant(cls, content: str | Sequence[Part]) -> Message:
        return cls("assistant", [Text(content)] if isinstance(content, str) else list(content))

    @classmethod
    def tool(
        cls, call_id: str, content: str | list[Part], *, is_error: bool = False, name: str | None = None
    ) -> Message:
        return cls("tool", [ToolResult(call_id, content, is_error, name)])

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.parts if isinstance(p, ToolCall)]


# --------------------------------------------------------------------------- tools


@dataclass(slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None
    provider_data: ProviderData | None = None

    @classmethod
    def from_model(cls, model: type[Any], name: str | None = None, description: str = "") -> Tool:
        """From a pydantic model class: its JSON schema becomes the parameters."""
        schema = model.model_json_schema()
        return cls(
            name=name or model.__name__,
            description=description or (model.__doc__ or "").strip(),
            parameters=schema,
        )


@dataclass(frozen=True, slots=True)
class NamedTool:
    """tool_choice naming one tool the model must call."""

    name: str


ToolChoice: TypeAlias = ToolChoiceMode | NamedTool


@dataclass(slots=True)
class ResponseFormat:
    """Structured output: a JSON schema (``json_schema``) or any JSON (``json_object``).

    ``model`` is the pydantic class when the user gave one; ``Response.parsed`` then
    returns a validated instance of it.
    """

    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool = True
    model: type[Any] | None = None
    description: str | None = None

    @property
    def kind(self) -> Literal["json_schema", "json_object"]:
        return "json_object" if self.schema is None else "json_schema"


@dataclass(slots=True)
class Reasoning:
    """Ask for model reasoning: an effort level (OpenAI style) and/or a token budget
    (Anthropic / Gemini style). Dialects map whichever the API takes."""

    effort: str | None = None
    budget_tokens: int | None = None
    include_thoughts: bool = True


@dataclass(slots=True)
class Request:
    messages: list[Message]
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Provider parameters passed through untouched into the request body."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    output_modalities: tuple[str, ...] | None = None
    """What the answer may hold besides tool calls: ``("text", "image")`` asks a model
    that can draw for images (Gemini ``responseModalities``, the Responses
    ``image_generation`` tool). None: text only, the provider's default."""

    @property
    def wants_images(self) -> bool:
        return bool(self.output_modalities) and "image" in (self.output_modalities or ())


# --------------------------------------------------------------------------- usage


@dataclass(slots=True)
class Usage:
    """Token counts with ONE meaning across providers (DESIGN.md):

    - ``input_tokens``: every input token billed at any rate; cache reads and writes
      are included (subsets ``cache_read_tokens`` / ``cache_write_tokens``; the part of
      the writes cached for 1 hour, Anthropic's dearer tier, in ``cache_write_1h_tokens``).
    - ``output_tokens``: every output token, reasoning included (``reasoning_tokens``).
    - ``requests`` (1 per call) and ``units`` for per-request priced extras
      (``{"web_search": 2}``, per-image prices ``{"image:1024x1024:hd": 1}``: what the provider bills per unit, e.g. Google Search
      grounding counted per grounded prompt before Gemini 3 and per query from Gemini 3;
      ``{"image_generation:gpt-image-1:1024x1024:high": 1}`` for an image a chat call drew
      with the Responses tool, priced at the image model's rate; ``{"input_characters":
      n}`` for models billed per character, priced per million).
    - Modality subsets, where the provider reports them (Gemini ``promptTokensDetails`` /
      ``candidatesTokensDetails`` / ``cacheTokensDetails``, OpenAI ``audio_tokens``):
      ``input_audio_tokens``, ``input_image_tokens``, ``input_video_tokens`` are subsets of
      ``input_tokens``; ``cache_audio_read_tokens`` / ``cache_image_read_tokens`` subsets of
      ``cache_read_tokens`` (and of the matching input modality); ``output_audio_tokens``,
      ``output_image_tokens``, ``output_video_tokens`` subsets of ``output_tokens``. Text is
      what remains, so a provider that reports no details is priced exactly as before.
    - ``service_tier``: how the provider processed the call when it was not the standard
      tier (``"priority"``, ``"flex"``, ``"batch"``...; None = standard), read from the
      response, else from the request. Prices differ per tier.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 1
    units: dict[str, int] = field(default_factory=dict)
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    input_audio_tokens: int = 0
    input_video_tokens: int = 0
    cache_audio_read_tokens: int = 0
    cache_image_read_tokens: int = 0
    output_audio_tokens: int = 0
    output_video_tokens: int = 0
    service_tier: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def has_modalities(self) -> bool:
        """Whether any non-text modality count is reported (pricing then applies the
        modality rates; text-only usage takes the plain path)."""
        return bool(
            self.input_audio_tokens or self.input_image_tokens or self.input_video_tokens
            or self.output_audio_tokens or self.output_image_tokens or self.output_video_tokens
            or self.cache_audio_read_tokens or self.cache_image_read_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        units = dict(self.units)
        for key, value in other.units.items():
            units[key] = units.get(key, 0) + value
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.requests + other.requests,
            units,
            self.input_image_tokens + other.input_image_tokens,
            self.output_image_tokens + other.output_image_tokens,
            self.input_audio_tokens + other.input_audio_tokens,
            self.input_video_tokens + other.input_video_tokens,
            self.cache_audio_read_tokens + other.cache_audio_read_tokens,
            self.cache_image_read_tokens + other.cache_image_read_tokens,
            self.output_audio_tokens + other.output_audio_tokens,
            self.output_video_tokens + other.output_video_tokens,
            # A sum is one tier only when every part was (a total is never re-priced:
            # each call is priced on its own usage).
            self.service_tier if self.service_tier == other.service_tier else None,
        )


_STANDARD_TIERS = frozenset({"", "auto", "default", "standard", "standard_only", "on_demand",
                             "unspecified", "service_tier_unspecified"})


def service_tier_of(raw: Any) -> str | None:
    """A provider's service-tier word as :attr:`Usage.service_tier`: lower case, without
    Gemini's ``SERVICE_TIER_`` prefix, None for the standard tier (``default``,
    ``standard``, ``auto``...) and for anything that is not a string."""
    if not isinstance(raw, str):
        return None
    tier = raw.strip().lower()
    if tier.startswith("service_tier_"):
        tier = tier[len("service_tier_"):]
    return None if tier in _STANDARD_TIERS else tier


def requested_service_tier(request: Request | None) -> str | None:
    """The tier a request asks for in its provider parameters (``service_tier`` on
    OpenAI, Gemini; ``serviceTier`` as Gemini's REST spells it), None for the standard
    one or when it leaves the choice to the provider (``auto``)."""
    if request is None or not request.extra:
        return None
    extra = request.extra
    return service_tier_of(extra.get("service_tier", extra.get("serviceTier")))


# --------------------------------------------------------------------------- response


@dataclass(slots=True)
class Attempt:
    """One failed try on the way to a response (routing records these)."""

    deployment: str
    error: str
    status: int | None = None


@dataclass(slots=True)
class Response:
    id: str
    model: str
    provider: str
    parts: list[Part]
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    cost_nanos: int | None = None
    """Cost in nano-USD (integer, so sums never drift); None when the model is unpriced."""
    latency: float = 0.0
    """Seconds from sending the request to the complete response."""
    time_to_first_token: float | None = None
    deployment: str | None = None
    attribution: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    trace_id: str | None = None
    response_format: ResponseFormat | None = None
    provider_data: ProviderData | None = None

    @property
    def cost(self) -> Decimal | None:
        """Cost in USD; None when the model has no known price (never a silent 0)."""
        if self.cost_nanos is None:
            return None
        return Decimal(self.cost_nanos) / NANOS_PER_USD

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    @property
    def thinking(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Thinking))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.parts if isinstance(p, ToolCall)]

    @property
    def images(self) -> list[Image]:
        """The images the model generated (Gemini image output, the Responses
        ``image_generation`` tool), in answer order."""
        return [p for p in self.parts if isinstance(p, Image)]

    @property
    def parsed(self) -> Any:
        """The structured output: a validated pydantic instance when ``response_format``
        was a model, else the decoded JSON. Raises OutputValidationError (carrying the
        raw text) when the answer is not valid."""
        fmt = self.response_format
        text = self.text
        try:
            if fmt is not None and fmt.model is not None:
                return fmt.model.model_validate_json(text)
            return json.loads(text)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise OutputValidationError(text, str(exc)) from None

    def to_message(self) -> Message:
        """The assistant message to append to the history for the next turn."""
        return Message("assistant", list(self.parts))


# --------------------------------------------------------------------------- stream events


@dataclass(slots=True)
class StreamStart:
    id: str | None = None
    model: str | None = None
    provider_data: ProviderData | None = None


@dataclass(slots=True)
class TextDelta:
    text: str
    block: int = 0
    provider_data: ProviderData | None = None


@dataclass(slots=True)
class ThinkingDelta:
    text: str = ""
    block: int = 0
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None
    provider_data: ProviderData | None = None


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a tool call; ``index`` groups fragments of one call. ``id`` and
    ``name`` come on the first fragment, ``arguments`` are raw JSON text to append."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    provider_data: ProviderData | None = None


@dataclass(slots=True)
class ImageEvent:
    """A generated image, whole: providers send an image in one piece (a Gemini
    ``inlineData`` part, a finished ``image_generation_call`` item), never as deltas."""

    image: Image


@dataclass(slots=True)
class UsageEvent:
    """The usage so far, as totals (a later UsageEvent replaces an earlier one)."""

    usage: Usage


@dataclass(slots=True)
class FinishEvent:
    finish_reason: FinishReason


@dataclass(slots=True)
class StreamEnd:
    """The last event of a tollway stream: the complete Response, cost included."""

    response: Response


StreamEvent: TypeAlias = (
    StreamStart | TextDelta | ThinkingDelta | ToolCallDelta | ImageEvent | UsageEvent
    | FinishEvent | StreamEnd
)


class StreamAccumulator:
    """Folds stream events into the Response the non-streamed call would have given.

    Sans-I/O: the Model feeds it every event it yields; dialect tests feed it a parsed
    recorded stream.
    """

    __slots__ = (
        "_finish",
        "_id",
        "_model",
        "_open_kind",
        "_parts",
        "_provider_data",
        "_tool_args",
        "_tools",
        "_usage",
    )

    def __init__(self) -> None:
        self._parts: list[Part] = []
        self._tools: dict[int, ToolCall] = {}
        self._tool_args: dict[int, list[str]] = {}
        self._open_kind: tuple[str, int] | None = None
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._provider_data: ProviderData | None = None

    @property
    def usage(self) -> Usage | None:
        return self._usage

    @property
    def model(self) -> str | None:
        """The model the provider reported at the start of the stream, if it did."""
        return self._model

    @property
    def text(self) -> str:
        return "".join(p.text for p in self._parts if isinstance(p, Text))

    def generated_text(self) -> str:
        """Everything the model produced so far as text: answer and reasoning text, tool
        names and argument fragments (what an output-token estimate of a stream cut
        short counts, when the provider reported no usage before the cut)."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, Text | Thinking):
                out.append(part.text)
            elif isinstance(part, ToolCall):
                out.append(part.name)
        for args in self._tool_args.values():
            out.extend(args)
        return "".join(out)

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            key = ("text", event.block)
            last = self._parts[-1] if self._parts else None
            if self._open_kind == key and isinstance(last, Text):
                last.text += event.text
                if event.provider_data:
                    last.provider_data = _merge(last.provider_data, event.provider_data)
            else:
                self._parts.append(Text(event.text, event.provider_data))
                self._open_kind = key
        elif isinstance(event, ToolCallDelta):
            call = self._tools.get(event.index)
            if call is None:
                call = ToolCall(event.id or "", event.name or "", {}, "", event.provider_data)
                self._tools[event.index] = call
                self._tool_args[event.index] = []
                self._parts.append(call)
                self._open_kind = ("tool", event.index)
            else:
                if event.id:
                    call.id = event.id
                if event.name and not call.name:
                    call.name = event.name
                if event.provider_data:
                    call.provider_data = _merge(call.provider_data, event.provider_data)
            if event.arguments:
                self._tool_args[event.index].append(event.arguments)
        elif isinstance(event, ThinkingDelta):
            key = ("thinking", event.block)
            last = self._parts[-1] if self._parts else None
            if self._open_kind == key and isinstance(last, Thinking):
                last.text += event.text
                if event.signature:
                    last.signature = (last.signature or "") + event.signature
                if event.redacted:
                    last.redacted = (last.redacted or "") + event.redacted
                if event.provider_data:
                    last.provider_data = _merge(last.provider_data, event.provider_data)
            else:
                self._parts.append(
                    Thinking(
                        event.text, event.signature, event.redacted, event.provider,
                        event.provider_data,
                    )
                )
                self._open_kind = key
        elif isinstance(event, ImageEvent):
            self._parts.append(event.image)
            self._open_kind = None
        elif isinstance(event, UsageEvent):
            self._usage = event.usage
        elif isinstance(event, FinishEvent):
            self._finish = event.finish_reason
        elif isinstance(event, StreamStart):
            self._id = event.id or self._id
            self._model = event.model or self._model
            if event.provider_data:
                self._provider_data = _merge(self._provider_data, event.provider_data)

    def response(self, *, provider: str, model: str) -> Response:
        """The Response so far (call once the stream has ended)."""
        for index, call in self._tools.items():
            raw = "".join(self._tool_args[index])
            parsed = ToolCall.from_raw(call.id, call.name, raw)
            call.arguments = parsed.arguments
            call.raw_arguments = raw
        finish = self._finish
        if finish is None:
            finish = "tool_calls" if self._tools else "stop"
        return Response(
            id=self._id or "",
            model=self._model or model,
            provider=provider,
            parts=self._parts,
            finish_reason=finish,
            usage=self._usage if self._usage is not None else Usage(),
            provider_data=self._provider_data,
        )


def _merge(a: ProviderData | None, b: ProviderData) -> ProviderData:
    if not a:
        return dict(b)
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
