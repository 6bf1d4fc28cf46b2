"""Canonical Request -> Gemini ``generateContent`` body.

The rules that matter for correctness, all driven by what Gemini rejects or needs:

- Roles are ``user`` and ``model``; system messages (anywhere) go to
  ``systemInstruction``; tool results are ``functionResponse`` parts in a user turn;
  consecutive turns of one role are merged into one content.
- A ``functionResponse`` names the FUNCTION, not the call id: the name comes from
  ``ToolResult.name`` or from the ToolCall with the same id earlier in the request.
- ``thoughtSignature`` goes back on exactly the part it arrived on (text, thought,
  functionCall, image); parts from other providers never carry one. A Gemini 3 model
  turn with function calls but no signature at all (history from another provider, or a
  store that dropped provider_data) gets Google's documented validator sentinel on its
  first call, otherwise Gemini 3 answers 400 "function call is missing a
  thought_signature".
- Gemini does not see ids it never produced: ids tollway generated for Gemini 2 calls
  (``GENERATED_ID_PREFIX``) are left out; with ``send_call_ids=False`` (Vertex AI's v1
  API rejects the field) no ids are sent at all.
"""

from __future__ import annotations

import base64
import copy
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tollway.core.dialects.gemini.schema import to_gemini_schema
from tollway.core.dialects.openai_interchange.reading import image_from_url
from tollway.core.errors import BadRequestError
from tollway.core.json_schema import inline_refs
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    NamedTool,
    Part,
    Request,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
)

DIALECT_NAME = "gemini"
GENERATED_ID_PREFIX = "gemini-call-"
"""Prefix of the call ids tollway makes up for Gemini function calls that have none."""

SKIP_SIGNATURE_VALIDATOR = "skip_thought_signature_validator"
"""Google's documented stand-in signature for function calls whose real signature is
unknown (https://ai.google.dev/gemini-api/docs/thought-signatures)."""

EFFORT_BUDGETS = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
    "max": 32768,
}
"""Reasoning effort -> ``thinkingBudget`` for Gemini 2.x. low / medium / high are the
budgets Google's own OpenAI-compatible endpoint uses for ``reasoning_effort``; none
turns thinking off (2.5 Pro rejects 0: ask it for a budget >= 128 instead)."""

EFFORT_LEVELS = {
    "none": "minimal",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
"""Reasoning effort -> ``thinkingLevel`` for Gemini 3 and later (Pro models accept only
low and high; Flash also minimal and medium)."""

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    send_call_ids: bool = True
    signature_fallback: str | None = SKIP_SIGNATURE_VALIDATOR
    multimodal_function_responses: bool | None = None
    response_schema_field: str = "responseSchema"


def model_generation(model: str) -> int | None:
    """The major Gemini version in a model name (``gemini-3-flash-preview`` -> 3), or
    None for names that do not say (``gemini-flash-latest``)."""
    match = re.search(r"gemini-(\d+)", model)
    return int(match.group(1)) if match else None


def build_body(request: Request, model: str, opts: BuildOptions) -> dict[str, Any]:
    generation = model_generation(model)
    body: dict[str, Any] = {}
    contents, system = _contents(request.messages, generation, opts)
    body["contents"] = contents
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
        config = _tool_config(request)
        if config:
            body["toolConfig"] = config
    generation_config = _generation_config(request, generation, opts)
    if generation_config:
        body["generationConfig"] = generation_config
    if request.extra:
        deep_merge(body, request.extra)
    return body


def deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``target`` in place: dicts merge key by key, anything else
    (lists included) replaces."""
    for key, value in extra.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            deep_merge(current, value)
        else:
            target[key] = copy.deepcopy(value)


# --------------------------------------------------------------------------- contents


def _contents(
    messages: list[Message], generation: int | None, opts: BuildOptions
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    nested_media = (
        opts.multimodal_function_responses
        if opts.multimodal_function_responses is not None
        else (generation or 0) >= 3
    )
    for message in messages:
        if message.role == "system":
            system.extend(_system_parts(message))
            continue
        role = "model" if message.role == "assistant" else "user"
        parts: list[dict[str, Any]] = []
        trailing: list[dict[str, Any]] = []
        for part in message.parts:
            _add_part(part, role, parts, trailing, names, nested_media, opts)
        parts.extend(trailing)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if opts.signature_fallback and (generation or 0) >= 3:
        for content in contents:
            if content["role"] == "model":
                _ensure_call_signature(content["parts"], opts.signature_fallback)
    return contents, system


def _system_parts(message: Message) -> list[dict[str, Any]]:
    out = []
    for part in message.parts:
        if not isinstance(part, Text):
            raise BadRequestError(
                f"a system message may only hold text for Gemini (systemInstruction); "
                f"got a {type(part).__name__} part: move it into a user message"
            )
        if part.text:
            out.append({"text": part.text})
    return out


def _add_part(
    part: Part,
    role: str,
    parts: list[dict[str, Any]],
    trailing: list[dict[str, Any]],
    names: dict[str, str],
    nested_media: bool,
    opts: BuildOptions,
) -> None:
    if isinstance(part, Text):
        signature = _signature(part.provider_data)
        if role == "model" and not part.text and signature is None:
            return  # an empty model part is noise Gemini may reject
        parts.append(_signed({"text": part.text}, signature))
    elif isinstance(part, Thinking):
        if role == "model" and part.provider == DIALECT_NAME:
            wire = _thought(part)
            if wire is not None:
                parts.append(wire)
        # Thinking from another provider (or none) is never sent: its signature is
        # meaningless here and its text was the other model's private reasoning.
    elif isinstance(part, Image | Audio | File):
        parts.append(_signed(media_part(part), _signature(part.provider_data)))
    elif isinstance(part, ToolCall):
        if role != "model":
            raise BadRequestError(
                f"tool call {part.name!r} is in a {role} message; tool calls belong in "
                "assistant messages"
            )
        names[part.id] = part.name
        parts.append(_function_call(part, opts))
    elif isinstance(part, ToolResult):
        if role != "user":
            raise BadRequestError(
                f"the result of tool call {part.call_id!r} is in an assistant message; "
                "tool results belong in tool (or user) messages"
            )
        response, media = _function_response(part, names, nested_media, opts)
        parts.append(response)
        trailing.extend(media)
    else:  # pragma: no cover - Part is a closed union
        raise BadRequestError(f"unsupported message part {type(part).__name__}")


def _signature(provider_data: Mapping[str, Any] | None) -> str | None:
    if not provider_data:
        return None
    mine = provider_data.get(DIALECT_NAME)
    if isinstance(mine, Mapping):
        value = mine.get("thoughtSignature")
        if isinstance(value, str) and value:
            return value
    return None


def _signed(wire: dict[str, Any], signature: str | None) -> dict[str, Any]:
    if signature is not None:
        wire["thoughtSignature"] = signature
    return wire


def _thought(part: Thinking) -> dict[str, Any] | None:
    mine = (part.provider_data or {}).get(DIALECT_NAME)
    if isinstance(mine, Mapping) and isinstance(mine.get("part"), Mapping):
        return copy.deepcopy(dict(mine["part"]))  # an opaque Gemini part, replayed verbatim
    signature = _signature(part.provider_data) or part.signature
    if not part.text and not signature:
        return None
    return _signed({"text": part.text, "thought": True}, signature)


def _function_call(call: ToolCall, opts: BuildOptions) -> dict[str, Any]:
    wire: dict[str, Any] = {"name": call.name, "args": call.history_arguments()}
    if opts.send_call_ids and call.id and not call.id.startswith(GENERATED_ID_PREFIX):
        wire["id"] = call.id
    return _signed({"functionCall": wire}, _signature(call.provider_data))


def _function_response(
    result: ToolResult, names: Mapping[str, str], nested_media: bool, opts: BuildOptions
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    name = result.name or names.get(result.call_id)
    if not name:
        raise BadRequestError(
            f"Gemini needs the function name of every tool result, and the result for call "
            f"id {result.call_id!r} has none and answers no tool call earlier in the "
            "request: pass name= (Message.tool(call_id, content, name=...)) or keep the "
            "assistant message with the call in the history"
        )
    media: list[dict[str, Any]] = []
    if isinstance(result.content, str):
        text = result.content
    else:
        text = "".join(p.text for p in result.content if isinstance(p, Text))
        media = [media_part(p) for p in result.content if isinstance(p, Image | Audio | File)]
    if result.is_error:
        response: dict[str, Any] = {"error": text}
    elif not text and media:
        response = {}
    else:
        response = _response_object(text)
    wire: dict[str, Any] = {"name": name, "response": response}
    if opts.send_call_ids and result.call_id and not result.call_id.startswith(GENERATED_ID_PREFIX):
        wire["id"] = result.call_id
    if media and nested_media:
        wire["parts"] = media
        media = []
    return {"functionResponse": wire}, media


def _response_object(text: str) -> dict[str, Any]:
    """A tool's text as Gemini's ``response`` object: a JSON object passes through as
    itself (so ``{"temp": 21}`` reaches the model structured); anything else is wrapped
    as ``{"result": text}``."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return {"result": text}


def media_part(part: Image | Audio | File) -> dict[str, Any]:
    """An Image / Audio / File as ``inlineData`` (bytes) or ``fileData`` (a URL or a
    Gemini Files API uri)."""
    kind = type(part).__name__
    data = part.data
    media_type = part.media_type
    url = part.url or (part.file_id if isinstance(part, File) else None)
    if data is None and url and url.startswith("data:"):
        decoded = image_from_url(url)
        data, media_type = decoded.data, media_type or decoded.media_type
    if data is not None:
        mime = media_type or sniff_media_type(data)
        if not mime:
            raise BadRequestError(
                f"an {kind} part sent as bytes needs media_type (e.g. 'image/png'); "
                "Gemini's inlineData requires a MIME type and it could not be detected"
            )
        encoded = base64.b64encode(data).decode("ascii")
        return {"inlineData": {"mimeType": mime, "data": encoded}}
    if not url:
        raise BadRequestError(f"an {kind} part needs url, data or file_id; it has none")
    mime = media_type or mimetypes.guess_type(url.split("?", 1)[0])[0]
    file_data: dict[str, Any] = {"fileUri": url}
    if mime:
        file_data["mimeType"] = mime
    return {"fileData": file_data}


def sniff_media_type(data: bytes) -> str | None:
    """The MIME type of common image / audio / document bytes, from their magic number."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return None


def _ensure_call_signature(parts: list[dict[str, Any]], sentinel: str) -> None:
    calls = [p for p in parts if "functionCall" in p]
    if calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = sentinel


# --------------------------------------------------------------------------- tools


def _declaration(tool: Tool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name, "description": tool.description or ""}
    parameters = to_gemini_schema(tool.parameters)
    if parameters is not None:
        declaration["parameters"] = parameters
    return declaration


def _tool_config(request: Request) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, NamedTool):
        known = {t.name for t in request.tools}
        if choice.name not in known:
            raise BadRequestError(
                f"tool_choice names {choice.name!r}, which is not one of the request's "
                f"tools ({', '.join(sorted(known))})"
            )
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice.name]}}
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice)
    if mode is None:
        raise BadRequestError(f"tool_choice {choice!r} is not auto, none, required or a tool name")
    return {"functionCallingConfig": {"mode": mode}}


# --------------------------------------------------------------------------- generation


def _generation_config(
    request: Request, generation: int | None, opts: BuildOptions
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.seed is not None:
        config["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None:
        config["responseMimeType"] = "application/json"
        if fmt.schema is not None:
            if opts.response_schema_field == "responseJsonSchema":
                config["responseJsonSchema"] = {
                    k: v for k, v in inline_refs(fmt.schema).items() if k != "$schema"
                }
            else:
                schema = to_gemini_schema(fmt.schema, response=True)
                if schema is not None:
                    config["responseSchema"] = schema
    thinking = _thinking_config(request, generation)
    if thinking:
        config["thinkingConfig"] = thinking
    if request.output_modalities:
        # Image models answer with inlineData parts only when asked for IMAGE.
        config["responseModalities"] = [m.upper() for m in request.output_modalities]
    return config


def _thinking_config(request: Request, generation: int | None) -> dict[str, Any]:
    reasoning = request.reasoning
    if reasoning is None:
        return {}
    config: dict[str, Any] = {}
    if reasoning.budget_tokens is not None:
        config["thinkingBudget"] = reasoning.budget_tokens
    elif reasoning.effort:
        effort = reasoning.effort.lower()
        table: Mapping[str, Any] = EFFORT_LEVELS if (generation or 0) >= 3 else EFFORT_BUDGETS
        if effort not in table:
            raise BadRequestError(
                f"reasoning effort {reasoning.effort!r} is not one of "
                f"{', '.join(EFFORT_BUDGETS)}; or give budget_tokens"
            )
        key = "thinkingLevel" if table is EFFORT_LEVELS else "thinkingBudget"
        config[key] = table[effort]
    if reasoning.include_thoughts and config.get("thinkingBudget") != 0:
        config["includeThoughts"] = True
    return config
