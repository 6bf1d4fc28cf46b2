"""The reverse direction for Anthropic: Messages API JSON from clients -> canonical, and
canonical -> the JSON (and event stream) an Anthropic client expects back.

What the gateway's ``/v1/messages`` reads and writes, so the Anthropic SDK and Claude
Code can call any upstream through the canonical types. The mapping mirrors what
:mod:`._anthropic_request` builds and :mod:`._anthropic_response` parses:

- ``system`` (a string or text blocks) -> a system Message; ``tool_result`` blocks of a
  user turn -> tool Messages placed before the rest of that turn;
- ``thinking`` / ``redacted_thinking`` blocks -> Thinking parts owned by ``anthropic``
  (so they go back signed to Anthropic and are dropped for other providers);
- keys of a block tollway has no field for (``cache_control``, ``citations``) ride in
  ``provider_data["anthropic"]`` and are merged back into the block by the Anthropic
  dialect; server-tool blocks travel verbatim;
- ``thinking: {type: enabled, budget_tokens}`` -> ``Reasoning(budget_tokens)``,
  ``adaptive`` / ``output_config.effort`` -> ``Reasoning(effort)``;
- ``metadata`` is not forwarded (the gateway reads ``metadata.user_id`` for
  attribution); other unknown top-level keys go to ``request.extra`` untouched.

Usage out is Anthropic's meaning: ``input_tokens`` WITHOUT cache reads and writes
(canonical input_tokens includes them).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from typing import Any

from tollway.core.dialects._anthropic_reverse_stream import (
    AnthropicEventEncoder,
    stop_reason,
    usage_to_anthropic,
)
from tollway.core.dialects.anthropic.request import NAME, RAW_BLOCK_KEY, own, wire_tool_id
from tollway.core.errors import BadRequestError
from tollway.core.types import (
    File,
    Image,
    Message,
    NamedTool,
    Part,
    Reasoning,
    Request,
    Response,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)

__all__ = [
    "AnthropicEventEncoder",
    "request_from_anthropic",
    "response_to_anthropic",
    "usage_to_anthropic",
]

_REQUEST_KEYS = frozenset({
    "model", "messages", "system", "max_tokens", "tools", "tool_choice", "temperature",
    "top_p", "stop_sequences", "stream", "thinking", "metadata", "output_config",
})
_BLOCK_KEYS = {
    "text": frozenset({"type", "text"}),
    "image": frozenset({"type", "source"}),
    "document": frozenset({"type", "source", "title"}),
    "tool_use": frozenset({"type", "id", "name", "input"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error"}),
}


# --------------------------------------------------------------------------- requests


def request_from_anthropic(body: Mapping[str, Any]) -> tuple[str, Request, bool]:
    """``(model, Request, stream)`` from a Messages API request body."""
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("the request body needs 'model' (a model name or alias)")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequestError("the request body needs 'messages' (a non-empty list)")
    messages = _system(body.get("system"))
    for number, raw in enumerate(raw_messages):
        if not isinstance(raw, Mapping) or raw.get("role") not in ("user", "assistant"):
            raise BadRequestError(
                f"messages[{number}] must be {{'role': 'user' | 'assistant', 'content': ...}}"
            )
        messages.extend(_messages(raw["role"], raw.get("content"), number))
    stop = body.get("stop_sequences")
    request = Request(
        messages=messages,
        tools=[_tool(t, i) for i, t in enumerate(body.get("tools") or ())],
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_tokens"),
        stop=list(stop) if isinstance(stop, list) and stop else None,
        reasoning=_reasoning(body.get("thinking"), body.get("output_config")),
        extra={k: v for k, v in body.items() if k not in _REQUEST_KEYS},
    )
    request.tool_choice, request.parallel_tool_calls = _tool_choice(body.get("tool_choice"))
    output_config = body.get("output_config")
    if isinstance(output_config, Mapping):
        rest = {k: v for k, v in output_config.items() if k != "effort"}
        if rest:
            request.extra["output_config"] = rest
    return model, request, bool(body.get("stream"))


def _system(value: Any) -> list[Message]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [Message.system(value)]
    if isinstance(value, list):
        parts: list[Part] = []
        for block in value:
            if not isinstance(block, Mapping) or block.get("type") != "text":
                raise BadRequestError("'system' must be a string or a list of text blocks")
            parts.append(_text(block))
        return [Message("system", parts)]
    raise BadRequestError("'system' must be a string or a list of text blocks")


def _extra(block: Mapping[str, Any]) -> dict[str, Any] | None:
    known = _BLOCK_KEYS.get(str(block.get("type")), frozenset({"type"}))
    extra = {k: v for k, v in block.items() if k not in known}
    return {NAME: extra} if extra else None


def _text(block: Mapping[str, Any]) -> Text:
    return Text(str(block.get("text") or ""), _extra(block))


def _messages(role: str, content: Any, number: int) -> list[Message]:
    """One wire turn -> canonical messages (its tool results first, as tool Messages)."""
    if isinstance(content, str):
        return [Message(role, [Text(content)])]  # type: ignore[arg-type]
    if not isinstance(content, list):
        raise BadRequestError(f"messages[{number}].content must be a string or a list of blocks")
    results: list[Message] = []
    parts: list[Part] = []
    for block in content:
        if not isinstance(block, Mapping):
            raise BadRequestError(f"messages[{number}].content holds a block that is not an object")
        if block.get("type") == "tool_result":
            results.append(Message("tool", [_tool_result(block, number)]))
        else:
            parts.append(_part(block, number))
    out = results
    if parts:
        out.append(Message(role, parts))  # type: ignore[arg-type]
    return out


def _part(block: Mapping[str, Any], number: int) -> Part:
    kind = block.get("type")
    if kind == "text":
        return _text(block)
    if kind == "image":
        return _image(block, number)
    if kind == "document":
        return _document(block, number)
    if kind == "tool_use":
        arguments = block.get("input")
        call = ToolCall.from_arguments(
            str(block.get("id") or ""), str(block.get("name") or ""),
            arguments if isinstance(arguments, Mapping) else {},
        )
        call.provider_data = _extra(block)
        return call
    if kind == "thinking":
        return Thinking(str(block.get("thinking") or ""), signature=block.get("signature") or None,
                        provider=NAME)
    if kind == "redacted_thinking":
        return Thinking("", redacted=block.get("data") or None, provider=NAME)
    # server-tool calls and results, compaction...: sent back verbatim to Anthropic
    return Text("", {NAME: {RAW_BLOCK_KEY: dict(block)}})


def _source_bytes(source: Mapping[str, Any], number: int) -> bytes:
    try:
        return base64.b64decode(str(source.get("data") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"messages[{number}]: a base64 source is not valid base64") from None


def _image(block: Mapping[str, Any], number: int) -> Image:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise BadRequestError(f"messages[{number}]: an image block needs a 'source'")
    extra = _extra(block)
    if source.get("type") == "base64":
        return Image(data=_source_bytes(source, number), media_type=source.get("media_type"),
                     provider_data=extra)
    if source.get("type") == "url":
        return Image(url=str(source.get("url")), provider_data=extra)
    if source.get("type") == "file":
        raise BadRequestError(
            f"messages[{number}]: images by Files API id only work against Anthropic itself; "
            "send the image as base64 or a URL"
        )
    raise BadRequestError(f"messages[{number}]: unknown image source type {source.get('type')!r}")


def _document(block: Mapping[str, Any], number: int) -> File:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise BadRequestError(f"messages[{number}]: a document block needs a 'source'")
    title = block.get("title")
    extra = _extra(block)
    kind = source.get("type")
    if kind == "base64":
        return File(data=_source_bytes(source, number), media_type=source.get("media_type"),
                    filename=title, provider_data=extra)
    if kind == "text":
        return File(data=str(source.get("data") or "").encode(), media_type="text/plain",
                    filename=title, provider_data=extra)
    if kind == "url":
        return File(url=str(source.get("url")), filename=title, provider_data=extra)
    if kind == "file":
        return File(file_id=str(source.get("file_id")), filename=title, provider_data=extra)
    raise BadRequestError(f"messages[{number}]: unknown document source type {kind!r}")


def _tool_result(block: Mapping[str, Any], number: int) -> ToolResult:
    content = block.get("content")
    value: str | list[Part]
    if content is None or isinstance(content, str):
        value = content or ""
    elif isinstance(content, list):
        value = [_part(item, number) for item in content if isinstance(item, Mapping)]
    else:
        raise BadRequestError(f"messages[{number}]: tool_result content must be text or blocks")
    result = ToolResult(str(block.get("tool_use_id") or ""), value, bool(block.get("is_error")))
    result.provider_data = _extra(block)
    return result


def _tool(spec: Any, number: int) -> Tool:
    if not isinstance(spec, Mapping) or not spec.get("name"):
        raise BadRequestError(f"tools[{number}] must be an object with a 'name'")
    kind = spec.get("type")
    if kind not in (None, "custom"):  # an Anthropic server tool (web_search_20250305...)
        return Tool(name=str(spec["name"]), provider_data={NAME: {k: v for k, v in spec.items() if k != "name"}})
    extra = {k: v for k, v in spec.items()
             if k not in ("name", "description", "input_schema", "type", "strict")}
    return Tool(
        name=str(spec["name"]),
        description=str(spec.get("description") or ""),
        parameters=dict(spec.get("input_schema") or {"type": "object", "properties": {}}),
        strict=spec.get("strict"),
        provider_data={NAME: extra} if extra else None,
    )


def _tool_choice(value: Any) -> tuple[ToolChoice | None, bool | None]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise BadRequestError("'tool_choice' must be an object like {'type': 'auto'}")
    parallel = False if value.get("disable_parallel_tool_use") else None
    kind = value.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool" and value.get("name"):
        return NamedTool(str(value["name"])), parallel
    raise BadRequestError(
        "'tool_choice.type' must be auto, any, none, or tool (with a 'name')"
    )


def _reasoning(thinking: Any, output_config: Any) -> Reasoning | None:
    effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
    if isinstance(thinking, Mapping):
        kind = thinking.get("type")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            return Reasoning(effort=effort, budget_tokens=budget if isinstance(budget, int) else None)
        if kind == "adaptive":
            include = thinking.get("display") != "omitted"
            return Reasoning(effort=effort or "medium", include_thoughts=include)
        return None
    return Reasoning(effort=str(effort)) if effort else None


# --------------------------------------------------------------------------- responses


def response_to_anthropic(response: Response) -> dict[str, Any]:
    """A Messages API ``message`` object for ``response``."""
    content: list[dict[str, Any]] = []
    has_calls = False
    for part in response.parts:
        if isinstance(part, Text):
            raw = own(part.provider_data).get(RAW_BLOCK_KEY)
            if isinstance(raw, dict):
                content.append(raw)
            elif part.text:
                block: dict[str, Any] = {"type": "text", "text": part.text}
                citations = own(part.provider_data).get("citations")
                if citations:
                    block["citations"] = citations
                content.append(block)
        elif isinstance(part, Thinking):
            if part.redacted and part.provider == NAME:
                content.append({"type": "redacted_thinking", "data": part.redacted})
            elif part.text:
                signature = part.signature if part.provider == NAME else None
                content.append({"type": "thinking", "thinking": part.text, "signature": signature or ""})
        elif isinstance(part, ToolCall):
            has_calls = True
            content.append({"type": "tool_use", "id": wire_tool_id(part.id), "name": part.name,
                            "input": part.arguments})
    meta = own(response.provider_data)
    return {
        "id": _message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": stop_reason(response.finish_reason, has_calls, meta.get("stop_reason")),
        "stop_sequence": meta.get("stop_sequence"),
        "usage": usage_to_anthropic(response.usage),
    }


def _message_id(upstream: str | None) -> str:
    if upstream and upstream.startswith("msg_"):
        return upstream
    return "msg_" + (upstream or secrets.token_hex(12)).replace("chatcmpl-", "")
