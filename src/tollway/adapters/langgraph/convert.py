"""LangChain messages and tools -> tollway's canonical Messages and Tools.

Accepts every content shape LangChain users write: plain strings, LangChain v1
standard blocks (``{"type": "image", "url" | "base64" | "file_id", ...}``), the older
v0 blocks (``{"type": "image", "source_type": "base64", "data": ...}``), OpenAI-style
``image_url`` / ``input_audio`` / ``file`` dicts and Anthropic-style ``source`` blocks.
An assistant message round-trips what tollway put on it (see :mod:`.output`): reasoning
blocks carry the thinking signature, ``additional_kwargs["tollway"]`` the provider data of
tool calls and text, so a multi-turn agent loses nothing a provider needs back.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.utils.function_calling import convert_to_openai_tool

from tollway.core.dialects.openai_interchange.reading import (
    image_from_url,
    message_from_openai,
    tool_from_openai,
)
from tollway.core.errors import BadRequestError
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    Part,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
)

PROVIDER_DATA_KEY = "tollway"
"""``additional_kwargs`` key holding provider data tollway must send back next turn."""

_ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user",
          "assistant": "assistant", "ai": "assistant", "tool": "tool", "function": "tool"}
_ASSISTANT_SKIPPED = frozenset({"tool_use", "tool_call", "tool_call_chunk", "function_call",
                                "server_tool_call", "server_tool_result", "non_standard"})


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages -> tollway Messages, in order."""
    return [to_message(message) for message in messages]


def to_message(message: BaseMessage) -> Message:
    if isinstance(message, SystemMessage):
        return Message("system", _text_parts(message.content, "system"))
    if isinstance(message, HumanMessage):
        return Message("user", _user_parts(message.content), message.name)
    if isinstance(message, AIMessage):
        return _assistant(message)
    if isinstance(message, ToolMessage):
        return _tool_result(message.tool_call_id, message.content, message.status == "error",
                            message.name)
    if isinstance(message, FunctionMessage):
        return _tool_result(message.name, message.content, False, message.name)
    if isinstance(message, ChatMessage):
        role = _ROLES.get(message.role)
        if role is None:
            raise BadRequestError(
                f"ChatMessage role {message.role!r} is not one of system, developer, user, "
                "assistant, tool"
            )
        if role == "tool":
            raise BadRequestError("send tool results as ToolMessage(tool_call_id=...)")
        as_type = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}[role]
        return to_message(as_type(content=message.content))
    raise BadRequestError(
        f"cannot send a {type(message).__name__} to a model; use System/Human/AI/ToolMessage"
    )


# --------------------------------------------------------------------------- roles


def _tool_result(call_id: str, content: Any, is_error: bool, name: str | None) -> Message:
    if isinstance(content, str):
        result: str | list[Part] = content
    else:
        parts = _user_parts(content)
        result = parts[0].text if len(parts) == 1 and isinstance(parts[0], Text) else parts
    return Message("tool", [ToolResult(call_id, result, is_error, name)])


def _assistant(message: AIMessage) -> Message:
    stored = message.additional_kwargs.get(PROVIDER_DATA_KEY) or {}
    call_data: Mapping[str, Any] = stored.get("tool_calls") or {}
    text_data = stored.get("text")
    parts: list[Part] = []
    content = message.content
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    else:
        for block in content:
            part = _assistant_part(block)
            if part is not None:
                parts.append(part)
    if text_data:
        first_text = next((p for p in parts if isinstance(p, Text)), None)
        if first_text is not None:
            first_text.provider_data = dict(text_data)
    for call in message.tool_calls:
        call_id = call.get("id") or ""
        parts.append(ToolCall.from_arguments(call_id, call["name"], call.get("args") or {},
                                             _data(call_data.get(call_id))))
    for bad in message.invalid_tool_calls:
        call_id = bad.get("id") or ""
        parts.append(ToolCall.from_raw(call_id, bad.get("name") or "", bad.get("args") or "",
                                       _data(call_data.get(call_id))))
    return Message("assistant", parts, message.name)


def _assistant_part(block: Any) -> Part | None:
    """One assistant content block; tool-call blocks are skipped (``tool_calls`` is the
    source of truth for calls) and unknown kinds are dropped, since they are the
    provider's own annotations, not something the next request must carry."""
    if isinstance(block, str):
        return Text(block) if block else None
    if not isinstance(block, Mapping):
        return None
    kind = block.get("type")
    if kind == "text":
        text = str(block.get("text") or "")
        return Text(text) if text else None
    if kind == "reasoning":
        extras = block.get("extras") or {}
        return Thinking(
            str(block.get("reasoning") or ""),
            signature=extras.get("signature"),
            redacted=extras.get("redacted"),
            provider=extras.get("provider"),
            provider_data=_data(extras.get("provider_data")),
        )
    if kind == "thinking":  # Anthropic-native blocks, e.g. from a ChatAnthropic history
        return Thinking(str(block.get("thinking") or ""), signature=block.get("signature"),
                        provider="anthropic")
    if kind == "redacted_thinking":
        return Thinking("", redacted=block.get("data"), provider="anthropic")
    return None


def _data(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) and value else None


# --------------------------------------------------------------------------- content


def _text_parts(content: str | list[Any], role: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    parts = _user_parts(content)
    for part in parts:
        if not isinstance(part, Text):
            raise BadRequestError(f"a {role} message may only hold text; got {type(part).__name__}")
    return parts


def _user_parts(content: str | Iterable[Any]) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    return [_user_part(block) for block in content]


def _user_part(block: Any) -> Part:
    if isinstance(block, str):
        return Text(block)
    if not isinstance(block, Mapping):
        raise BadRequestError(f"a content block must be a str or a dict, got {type(block).__name__}")
    kind = block.get("type")
    if kind in ("text", "text-plain") and "text" in block:
        return Text(str(block["text"]))
    if kind == "image":
        return _image(block)
    if kind == "audio":
        return _audio(block)
    if kind in ("file", "text-plain") and "file" not in block:
        return _file(block)
    if kind in ("image_url", "input_image", "input_audio", "file", "input_text"):
        return _openai_part(block)
    raise BadRequestError(
        f"content block type {kind!r} is not supported; use text, image, audio or file blocks "
        "(LangChain standard, OpenAI image_url or Anthropic source forms)"
    )


def _openai_part(block: Mapping[str, Any]) -> Part:
    """Reuse the canonical OpenAI-part coercion by wrapping the block in a user message."""
    return message_from_openai({"role": "user", "content": [dict(block)]}).parts[0]


def _source(block: Mapping[str, Any]) -> tuple[str | None, bytes | None, str | None, str | None]:
    """(url, data, media type, file id) of a v1, v0 or Anthropic-style media block."""
    media_type = block.get("mime_type") or block.get("media_type")
    source = block.get("source")
    if isinstance(source, Mapping):  # Anthropic: {"source": {"type": "base64", ...}}
        media_type = source.get("media_type") or media_type
        if source.get("type") == "base64":
            return None, _b64(source.get("data")), media_type, None
        if source.get("type") == "url":
            return str(source.get("url")), None, media_type, None
        if source.get("type") == "file":
            return None, None, media_type, source.get("file_id")
    source_type = block.get("source_type")  # v0: source_type + data / url / id
    if source_type == "base64" or "base64" in block:
        return None, _b64(block.get("base64", block.get("data"))), media_type, None
    if source_type == "url" or "url" in block:
        url = str(block.get("url"))
        if url.startswith("data:"):
            image = image_from_url(url)
            return None, image.data, image.media_type or media_type, None
        return url, None, media_type, None
    file_id = block.get("file_id") or (block.get("id") if source_type == "id" else None)
    if file_id:
        return None, None, media_type, str(file_id)
    raise BadRequestError(
        f"a {block.get('type')} block needs 'url', 'base64' (with 'mime_type') or 'file_id'"
    )


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=False)
    except ValueError as exc:
        raise BadRequestError(f"a media block's base64 data is not valid: {exc}") from None


def _image(block: Mapping[str, Any]) -> Image:
    url, data, media_type, file_id = _source(block)
    if file_id is not None:
        raise BadRequestError("an image by provider file_id is not supported; send a url or base64")
    detail = (block.get("extras") or {}).get("detail") or block.get("detail")
    return Image(url=url, data=data, media_type=media_type, detail=detail)


def _audio(block: Mapping[str, Any]) -> Audio:
    url, data, media_type, file_id = _source(block)
    if file_id is not None:
        raise BadRequestError("audio by provider file_id is not supported; send url or base64")
    return Audio(url=url, data=data, media_type=media_type)


def _file(block: Mapping[str, Any]) -> File:
    url, data, media_type, file_id = _source(block)
    extras = block.get("extras") or {}
    filename = block.get("filename") or extras.get("filename") or extras.get("title")
    return File(url=url, data=data, media_type=media_type, filename=filename, file_id=file_id)


# --------------------------------------------------------------------------- tools


def to_openai_tools(tools: Sequence[Any], *, strict: bool | None = None) -> list[dict[str, Any]]:
    """Any LangChain tool / pydantic model / function / dict -> OpenAI tool dicts (the
    serialisable form bound on the runnable, so tracing shows real schemas)."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, Tool):
            spec: dict[str, Any] = {"name": tool.name, "description": tool.description,
                                    "parameters": tool.parameters}
            if tool.strict is not None or strict is not None:
                spec["strict"] = tool.strict if tool.strict is not None else strict
            out.append({"type": "function", "function": spec})
        else:
            out.append(convert_to_openai_tool(tool, strict=strict))
    return out


def to_tools(tools: Sequence[Any]) -> list[Tool]:
    """Bound tools (OpenAI dicts, or anything :func:`to_openai_tools` takes) -> Tools."""
    out: list[Tool] = []
    for tool in tools:
        if isinstance(tool, Tool):
            out.append(tool)
            continue
        spec = tool if _is_openai_tool(tool) else convert_to_openai_tool(tool)
        out.append(tool_from_openai(spec))
    return out


def _is_openai_tool(tool: Any) -> bool:
    return isinstance(tool, Mapping) and tool.get("type") == "function" and isinstance(
        tool.get("function"), Mapping
    )
