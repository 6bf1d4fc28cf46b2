"""Pydantic AI messages, tools and settings <-> tollway's canonical types.

Request side: ``ModelRequest`` / ``ModelResponse`` history -> Messages (instructions
become one system message after any leading system prompts), tool definitions ->
Tools, the resolved tool choice and output mode -> ``tool_choice`` / ``response_format``,
``ModelSettings`` -> Request fields. Response side: a tollway Response -> ``ModelResponse``
(one function, used by both ``request`` and the streamed response's end).

Provider data a dialect needs back next turn (thinking signatures, Gemini
``thoughtSignature`` on calls and text) rides in each part's ``provider_details`` under
the ``"tollway"`` key, so Pydantic AI stores it with the history and hands it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    ERROR_OUTCOMES,
    AudioUrl,
    BinaryContent,
    BinaryImage,
    CachePoint,
    CompactionPart,
    DocumentUrl,
    FilePart,
    FinishReason,
    ImageUrl,
    InstructionBaselinePart,
    InstructionDeltaPart,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    NativeToolCallPart,
    NativeToolReturnPart,
    SpeechPart,
    SystemPromptPart,
    TextContent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UploadedFile,
    UserPromptPart,
    VideoUrl,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    NamedTool,
    Part,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Usage,
)
from tollway.core.types import FinishReason as TollwayFinish

DATA_KEY = "tollway"
"""``provider_details`` key for the provider data tollway round-trips."""

FINISH_REASONS: dict[TollwayFinish, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_call",
    "content_filter": "content_filter",
    "error": "error",
}

# --------------------------------------------------------------------------- messages


def to_messages(messages: Sequence[ModelMessage], instructions: str | None) -> list[Message]:
    """The history as tollway Messages; ``instructions`` go in one system message placed
    after the leading system prompts (where every dialect can keep them cached)."""
    out: list[Message] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            out.extend(_request_messages(message))
        elif isinstance(message, ModelResponse):
            assistant = _assistant(message)
            if assistant.parts:
                out.append(assistant)
        else:  # pragma: no cover - ModelMessage is a closed union
            raise UserError(f"unknown message kind {type(message).__name__}")
    if instructions:
        at = next((i for i, m in enumerate(out) if m.role != "system"), len(out))
        out.insert(at, Message.system(instructions))
    return out


def _request_messages(message: ModelRequest) -> Iterable[Message]:
    from pydantic_ai.models import (  # private helpers every adapter uses
        _sendable_request_parts,
        _unprepared_part_error,
        _UnpreparedPart,
        _unprojected_instruction_delta_error,
    )

    moved_files: list[Any] = []
    for part in _sendable_request_parts(message.parts):
        if isinstance(part, SystemPromptPart):
            yield Message.system(part.content)
        elif isinstance(part, UserPromptPart):
            yield Message("user", _user_parts(part.content))
        elif isinstance(part, ToolReturnPart):
            text, files = part.model_response_str_and_user_content()
            moved_files.extend(files)
            yield Message("tool", [ToolResult(part.tool_call_id, text,
                                              part.outcome in ERROR_OUTCOMES, part.tool_name)])
        elif isinstance(part, InstructionBaselinePart | InstructionDeltaPart):
            raise _unprojected_instruction_delta_error()
        elif isinstance(part, _UnpreparedPart):
            raise _unprepared_part_error(part)
        elif isinstance(part, SpeechPart):
            raise UserError("realtime SpeechPart must be converted by model.prepare_messages first")
        else:
            raise UserError(f"tollway cannot send a {type(part).__name__} request part")
    if moved_files:  # tool results are text-only on some APIs: files follow as user content
        yield Message("user", _user_parts(moved_files))


def _user_parts(content: str | Sequence[Any]) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Part] = []
    for item in content:
        part = _user_part(item)
        if part is not None:
            parts.append(part)
    return parts


def _user_part(item: Any) -> Part | None:
    if isinstance(item, str):
        return Text(item)
    if isinstance(item, TextContent):
        return Text(item.content)
    if isinstance(item, CachePoint):
        return None  # tollway places cache breakpoints per dialect
    if isinstance(item, ImageUrl):
        return Image(url=item.url, media_type=item.media_type)
    if isinstance(item, AudioUrl):
        return Audio(url=item.url, media_type=item.media_type)
    if isinstance(item, DocumentUrl):
        return File(url=item.url, media_type=item.media_type)
    if isinstance(item, BinaryContent):
        detail = (item.vendor_metadata or {}).get("detail")
        if item.is_image:
            return Image(data=item.data, media_type=item.media_type, detail=detail)
        if item.is_audio:
            return Audio(data=item.data, media_type=item.media_type)
        if item.is_video:
            raise UserError("tollway does not send video content")
        return File(data=item.data, media_type=item.media_type, filename=item.identifier)
    if isinstance(item, UploadedFile):
        return File(file_id=item.file_id, media_type=getattr(item, "media_type", None))
    if isinstance(item, VideoUrl):
        raise UserError("tollway does not send video content")
    raise UserError(f"tollway cannot send user content of type {type(item).__name__}")


def _assistant(message: ModelResponse) -> Message:
    parts: list[Part] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            if part.content:
                parts.append(Text(part.content, _data(part.provider_details)))
        elif isinstance(part, ThinkingPart):
            parts.append(_thinking(part))
        elif isinstance(part, NativeToolCallPart | NativeToolReturnPart):
            continue  # provider-executed tools are not sent back through tollway
        elif isinstance(part, ToolCallPart):
            parts.append(_tool_call(part))
        elif isinstance(part, FilePart) and (image := _generated_image(part)) is not None:
            parts.append(image)
        elif isinstance(part, FilePart | CompactionPart):
            continue  # other generated files and compaction state are not sent back
        elif isinstance(part, SpeechPart):
            raise UserError("realtime SpeechPart must be converted by model.prepare_messages first")
    return Message("assistant", parts)


def _generated_image(part: FilePart) -> Image | None:
    """An image the model made, back into the history when its dialect left data to
    return with it (a Gemini thoughtSignature, the Responses image_generation_call
    item); other generated files are not sent back."""
    data = _data(part.provider_details)
    content = part.content
    if data is None or not isinstance(content, BinaryContent) or not content.is_image:
        return None
    return Image(data=content.data, media_type=content.media_type, provider_data=data)


def _data(details: Mapping[str, Any] | None) -> dict[str, Any] | None:
    data = (details or {}).get(DATA_KEY)
    return dict(data) if isinstance(data, Mapping) and data else None


def _thinking(part: ThinkingPart) -> Thinking:
    stored = (part.provider_details or {}).get(DATA_KEY) or {}
    data = stored.get("provider_data")
    return Thinking(
        part.content,
        signature=part.signature,
        redacted=stored.get("redacted"),
        provider=stored.get("provider") or part.provider_name,
        provider_data=dict(data) if isinstance(data, Mapping) and data else None,
    )


def _tool_call(part: ToolCallPart) -> ToolCall:
    data = _data(part.provider_details)
    args = part.args
    if isinstance(args, Mapping):
        return ToolCall.from_arguments(part.tool_call_id, part.tool_name, args, data)
    return ToolCall.from_raw(part.tool_call_id, part.tool_name, args or "", data)


# --------------------------------------------------------------------------- request


def to_tool(tool: ToolDefinition) -> Tool:
    return Tool(tool.name, tool.description or "", dict(tool.parameters_json_schema), tool.strict)


def tools_and_choice(
    settings: ModelSettings | None, params: ModelRequestParameters
) -> tuple[list[Tool], ToolChoice | None]:
    """The tools to declare and the tool choice, from Pydantic AI's resolved choice
    (``allow_text_output=False`` resolves to ``required``)."""
    from pydantic_ai.models._tool_choice import resolve_tool_choice

    declared = params.declared_tool_defs
    if not declared:
        return [], None
    resolved = resolve_tool_choice(settings, params)
    if isinstance(resolved, tuple):
        mode, names = resolved
        if mode == "required" and len(names) == 1:
            return [to_tool(t) for t in declared.values()], NamedTool(next(iter(names)))
        return [to_tool(t) for n, t in declared.items() if n in names], mode
    return [to_tool(t) for t in declared.values()], resolved


def response_format(params: ModelRequestParameters) -> ResponseFormat | None:
    """Native output mode -> a JSON-schema response_format (prompted mode carries its
    schema in the instructions; tool mode uses output tools)."""
    obj = params.output_object
    if params.output_mode != "native" or obj is None:
        return None
    return ResponseFormat(
        schema=dict(obj.json_schema),
        name=obj.name or "final_result",
        strict=True if obj.strict is None else obj.strict,
        description=obj.description,
    )


def reasoning(params: ModelRequestParameters) -> Reasoning | None:
    thinking = params.thinking
    if thinking is None or thinking is False:
        return None
    return Reasoning(effort="medium" if thinking is True else str(thinking))


def output_modalities(params: ModelRequestParameters) -> tuple[str, ...] | None:
    """``output_type=BinaryImage`` (``allow_image_output``) asks for images; beside
    text unless the agent takes no text output (as Pydantic AI's GoogleModel asks)."""
    if not params.allow_image_output:
        return None
    return ("text", "image") if params.allow_text_output else ("image",)


def build(
    messages: list[Message],
    settings: ModelSettings | None,
    params: ModelRequestParameters,
) -> Request:
    s: Mapping[str, Any] = settings or {}
    tools, choice = tools_and_choice(settings, params)
    extra = s.get("extra_body")
    return Request(
        messages=messages,
        tools=tools,
        tool_choice=choice,
        response_format=response_format(params),
        temperature=s.get("temperature"),
        top_p=s.get("top_p"),
        max_tokens=s.get("max_tokens"),
        stop=list(s["stop_sequences"]) if s.get("stop_sequences") else None,
        seed=s.get("seed"),
        parallel_tool_calls=s.get("parallel_tool_calls") if tools else None,
        reasoning=reasoning(params),
        output_modalities=output_modalities(params),
        extra=dict(extra) if isinstance(extra, Mapping) else {},
        extra_headers=dict(s.get("extra_headers") or {}),
    )


# --------------------------------------------------------------------------- response


def request_usage(usage: Usage, cost: Decimal | None) -> RequestUsage:
    """Pydantic AI's RequestUsage has tollway's meaning (input includes cache reads and
    writes, output includes reasoning), so the numbers map one to one. The cost is
    tollway's (prices and overrides from tollway.yaml), never re-estimated."""
    out = RequestUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        details=dict(usage.units),
    )
    out.cost = cost
    return out


def thinking_details(part: Thinking) -> dict[str, Any] | None:
    stored: dict[str, Any] = {}
    if part.provider:
        stored["provider"] = part.provider
    if part.redacted:
        stored["redacted"] = part.redacted
    if part.provider_data:
        stored["provider_data"] = part.provider_data
    return {DATA_KEY: stored} if stored else None


def response_parts(response: Response) -> list[ModelResponsePart]:
    provider = response.provider
    parts: list[ModelResponsePart] = []
    for part in response.parts:
        if isinstance(part, Text):
            data = {DATA_KEY: part.provider_data} if part.provider_data else None
            parts.append(TextPart(part.text, provider_name=provider if data else None,
                                  provider_details=data))
        elif isinstance(part, Thinking):
            details = thinking_details(part)
            named = details is not None or part.signature is not None
            parts.append(ThinkingPart(part.text, signature=part.signature,
                                      provider_name=provider if named else None,
                                      provider_details=details))
        elif isinstance(part, Image):
            file = image_part(part, provider)
            if file is not None:
                parts.append(file)
        elif isinstance(part, ToolCall):
            data = {DATA_KEY: part.provider_data} if part.provider_data else None
            parts.append(ToolCallPart(part.name, part.raw_arguments or part.arguments,
                                      part.id or _generated_id(),
                                      provider_name=provider if data else None,
                                      provider_details=data))
    return parts


def image_part(part: Image, provider: str) -> FilePart | None:
    """A generated image as Pydantic AI's ``FilePart`` of a ``BinaryImage`` (what
    ``output_type=BinaryImage`` returns); an image by URL only has no bytes to give."""
    if part.data is None:
        return None
    data = {DATA_KEY: part.provider_data} if part.provider_data else None
    image = BinaryImage(data=part.data, media_type=part.media_type or "image/png")
    return FilePart(image, provider_name=provider if data else None, provider_details=data)


def _generated_id() -> str:
    from pydantic_ai._utils import generate_tool_call_id  # the id Pydantic AI itself makes

    return generate_tool_call_id()


def response_details(response: Response) -> dict[str, Any]:
    return {
        "finish_reason": response.finish_reason,
        "deployment": response.deployment,
        "cost_nanos": response.cost_nanos,
        "trace_id": response.trace_id,
    }


def to_model_response(response: Response, provider_url: str | None) -> ModelResponse:
    return ModelResponse(
        parts=response_parts(response),
        usage=request_usage(response.usage, response.cost),
        model_name=response.model,
        provider_name=response.provider,
        provider_url=provider_url,
        provider_response_id=response.id or None,
        finish_reason=FINISH_REASONS.get(response.finish_reason),
        provider_details=response_details(response),
    )
