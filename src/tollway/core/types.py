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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeAlias

from tollway.core.errors import BadRequestError, ToolArgumentsError

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
    def from_openai(cls, spec: Mapping[str, Any]) -> Tool:
        """From ``{"type": "function", "function": {...}}`` or the bare function dict."""
        fn = spec.get("function", spec)
        if not isinstance(fn, Mapping) or not fn.get("name"):
            raise BadRequestError(
                "a tool must be {'type': 'function', 'function': {'name': ..., "
                "'parameters': {...}}}; got a dict without a function name"
            )
        return cls(
            name=str(fn["name"]),
            description=str(fn.get("description") or ""),
            parameters=dict(fn.get("parameters") or {"type": "object", "properties": {}}),
            strict=fn.get("strict"),
        )

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


# --------------------------------------------------------------------------- usage


@dataclass(slots=True)
class Usage:
    """Token counts with ONE meaning across providers (DESIGN.md):

    - ``input_tokens``: every input token billed at any rate; cache reads and writes
      are included (subsets ``cache_read_tokens`` / ``cache_write_tokens``; the part of
      the writes cached for 1 hour, Anthropic's dearer tier, in ``cache_write_1h_tokens``).
    - ``output_tokens``: every output token, reasoning included (``reasoning_tokens``).
    - ``requests`` (1 per call) and ``units`` for per-request priced extras
      (``{"web_search": 2}``).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 1
    units: dict[str, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

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
        )


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
    def parsed(self) -> Any:
        """The structured output: a validated pydantic instance when ``response_format``
        was a model, else the decoded JSON. Raises ValueError if the text is not valid."""
        fmt = self.response_format
        text = self.text
        if fmt is not None and fmt.model is not None:
            return fmt.model.model_validate_json(text)
        return json.loads(text)

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
    StreamStart | TextDelta | ThinkingDelta | ToolCallDelta | UsageEvent | FinishEvent | StreamEnd
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


# --------------------------------------------------------------------------- input coercion


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


_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool", "function": "tool"}


def message_from_openai(msg: Mapping[str, Any]) -> Message:
    """One OpenAI chat-completions message dict -> Message."""
    role_in = msg.get("role")
    role = _ROLES.get(str(role_in))
    if role is None:
        raise BadRequestError(
            f"message role {role_in!r} is not one of system, developer, user, assistant, tool"
        )
    content = msg.get("content")
    if role == "tool":
        call_id = msg.get("tool_call_id") or msg.get("name") or ""
        if not call_id:
            raise BadRequestError("a tool message needs 'tool_call_id' (the id of the call it answers)")
        result_content: str | list[Part]
        if isinstance(content, list):
            result_content = [_part_from_openai(p) for p in content]
        else:
            result_content = "" if content is None else str(content)
        return Message("tool", [ToolResult(call_id, result_content, False, msg.get("name"))])
    parts: list[Part] = []
    if isinstance(content, str):
        if content or role != "assistant":
            parts.append(Text(content))
    elif isinstance(content, list):
        parts.extend(_part_from_openai(p) for p in content)
    elif content is not None:
        raise BadRequestError(f"message content must be a string or a list of parts, got {type(content).__name__}")
    if role == "assistant":
        if msg.get("reasoning_content"):
            parts.insert(0, Thinking(str(msg["reasoning_content"])))
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, Mapping):
                parts.append(ToolCall.from_arguments(call.get("id", ""), fn.get("name", ""), args))
            else:
                parts.append(ToolCall.from_raw(call.get("id", ""), fn.get("name", ""), args or ""))
    return Message(role, parts, msg.get("name"))  # type: ignore[arg-type]


def _part_from_openai(part: Any) -> Part:
    if isinstance(part, str):
        return Text(part)
    if not isinstance(part, Mapping):
        raise BadRequestError(f"a content part must be a dict, got {type(part).__name__}")
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        return Text(str(part.get("text", "")))
    if kind in ("image_url", "input_image"):
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, Mapping) else spec
        detail = spec.get("detail") if isinstance(spec, Mapping) else part.get("detail")
        if not url:
            raise BadRequestError("an image_url part needs {'image_url': {'url': ...}}")
        return image_from_url(str(url), detail)
    if kind == "input_audio":
        spec = part.get("input_audio") or {}
        fmt = spec.get("format", "wav")
        return Audio(data=base64.b64decode(spec.get("data", "")), media_type=f"audio/{fmt}")
    if kind == "file":
        spec = part.get("file") or {}
        data_url = spec.get("file_data")
        if data_url and str(data_url).startswith("data:"):
            media_type, data = _split_data_url(str(data_url))
            return File(data=data, media_type=media_type, filename=spec.get("filename"))
        return File(file_id=spec.get("file_id"), filename=spec.get("filename"))
    raise BadRequestError(
        f"content part type {kind!r} is not supported; use text, image_url, input_audio or file"
    )


def image_from_url(url: str, detail: str | None = None) -> Image:
    """An Image from an http(s) URL or a ``data:<type>;base64,...`` URL."""
    if url.startswith("data:"):
        media_type, data = _split_data_url(url)
        return Image(data=data, media_type=media_type, detail=detail)
    return Image(url=url, detail=detail)


def _split_data_url(url: str) -> tuple[str, bytes]:
    header, _, payload = url.partition(",")
    media_type = header[5:].split(";")[0] or "application/octet-stream"
    if ";base64" not in header:
        raise BadRequestError("only base64 data: URLs are supported (data:<type>;base64,...)")
    try:
        return media_type, base64.b64decode(payload, validate=False)
    except ValueError as exc:
        raise BadRequestError(f"data: URL is not valid base64: {exc}") from None


def to_tool(value: Tool | Mapping[str, Any] | type[Any]) -> Tool:
    if isinstance(value, Tool):
        return value
    if isinstance(value, Mapping):
        return Tool.from_openai(value)
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return Tool.from_model(value)
    raise BadRequestError(
        f"a tool must be a tollway Tool, an OpenAI tool dict or a pydantic model; got {value!r}"
    )


def to_tool_choice(value: Any) -> ToolChoice | None:
    """Accept "auto" / "none" / "required" / "any" / True / a tool name / OpenAI's dict."""
    if value is None or isinstance(value, NamedTool):
        return value
    if value is True or value == "any":
        return "required"
    if value is False:
        return "none"
    if isinstance(value, str):
        return value if value in ("auto", "none", "required") else NamedTool(value)  # type: ignore[return-value]
    if isinstance(value, Mapping):
        fn = value.get("function") or {}
        name = fn.get("name") or value.get("name")
        if name:
            return NamedTool(str(name))
    raise BadRequestError(
        f"tool_choice must be 'auto', 'none', 'required', a tool name or "
        f"{{'type': 'function', 'function': {{'name': ...}}}}; got {value!r}"
    )


def to_response_format(value: Any) -> ResponseFormat | None:
    """Accept a pydantic model class, a ResponseFormat, a JSON schema dict, or OpenAI's
    ``{"type": "json_schema", "json_schema": {...}}`` / ``{"type": "json_object"}``."""
    if value is None or isinstance(value, ResponseFormat):
        return value
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return ResponseFormat(
            schema=value.model_json_schema(), name=value.__name__, strict=True, model=value,
            description=(value.__doc__ or "").strip() or None,
        )
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind == "json_object":
            return ResponseFormat(schema=None, strict=False)
        if kind == "json_schema":
            spec = value.get("json_schema") or {}
            return ResponseFormat(
                schema=dict(spec.get("schema") or {}),
                name=str(spec.get("name") or "response"),
                strict=bool(spec.get("strict", True)),
                description=spec.get("description"),
            )
        if kind == "text":
            return None
        if "properties" in value or kind == "object":
            return ResponseFormat(schema=dict(value))
    raise BadRequestError(
        "response_format must be a pydantic model class, a JSON schema dict, or "
        "{'type': 'json_schema', 'json_schema': {...}} / {'type': 'json_object'}"
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
