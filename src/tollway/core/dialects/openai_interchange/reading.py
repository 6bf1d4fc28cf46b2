"""OpenAI chat-completions JSON -> canonical messages, parts and tools.

Users write OpenAI-style dicts (``{"role": "user", "content": ...}``) into
``Model.complete``, adapters hand them over, and the gateway receives them: all read
them here, so the canonical types (``core/types.py``) know no wire format.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from tollway.core.errors import BadRequestError
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    NamedTool,
    Part,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)

__all__ = [
    "image_from_url",
    "message_from_openai",
    "part_from_openai",
    "to_response_format",
    "to_tool_choice",
    "tool_from_openai",
]


def tool_from_openai(spec: Mapping[str, Any]) -> Tool:
    """From ``{"type": "function", "function": {...}}`` or the bare function dict."""
    fn = spec.get("function", spec)
    if not isinstance(fn, Mapping) or not fn.get("name"):
        raise BadRequestError(
            "a tool must be {'type': 'function', 'function': {'name': ..., "
            "'parameters': {...}}}; got a dict without a function name"
        )
    return Tool(
        name=str(fn["name"]),
        description=str(fn.get("description") or ""),
        parameters=dict(fn.get("parameters") or {"type": "object", "properties": {}}),
        strict=fn.get("strict"),
    )


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
            result_content = [part_from_openai(p) for p in content]
        else:
            result_content = "" if content is None else str(content)
        return Message("tool", [ToolResult(call_id, result_content, False, msg.get("name"))])
    parts: list[Part] = []
    if isinstance(content, str):
        if content or role != "assistant":
            parts.append(Text(content))
    elif isinstance(content, list):
        parts.extend(part_from_openai(p) for p in content)
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
            elif args is None or isinstance(args, str):
                parts.append(ToolCall.from_raw(call.get("id", ""), fn.get("name", ""), args or ""))
            else:
                raise BadRequestError(
                    f"tool_calls[].function.arguments of {fn.get('name')!r} must be a JSON "
                    f"string or an object; got {type(args).__name__}"
                )
    return Message(role, parts, msg.get("name"))  # type: ignore[arg-type]


def part_from_openai(part: Any) -> Part:
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
            media_type, data = split_data_url(str(data_url))
            return File(data=data, media_type=media_type, filename=spec.get("filename"))
        return File(file_id=spec.get("file_id"), filename=spec.get("filename"))
    raise BadRequestError(
        f"content part type {kind!r} is not supported; use text, image_url, input_audio or file"
    )


def image_from_url(url: str, detail: str | None = None) -> Image:
    """An Image from an http(s) URL or a ``data:<type>;base64,...`` URL."""
    if url.startswith("data:"):
        media_type, data = split_data_url(url)
        return Image(data=data, media_type=media_type, detail=detail)
    return Image(url=url, detail=detail)


def split_data_url(url: str) -> tuple[str, bytes]:
    header, _, payload = url.partition(",")
    media_type = header[5:].split(";")[0] or "application/octet-stream"
    if ";base64" not in header:
        raise BadRequestError("only base64 data: URLs are supported (data:<type>;base64,...)")
    try:
        return media_type, base64.b64decode(payload, validate=False)
    except ValueError as exc:
        raise BadRequestError(f"data: URL is not valid base64: {exc}") from None


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
