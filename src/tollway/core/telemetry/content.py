"""Prompts, outputs and tool payloads as the GenAI conventions' JSON (opt-in only).

Recorded only when the user opted in (``capture_content``): the messages go to
``gen_ai.input.messages`` / ``gen_ai.output.messages`` (the conventions' message
schema, serialized to a JSON string as they allow on spans), tool definitions to
``gen_ai.tool.definitions`` (names and descriptions, no schemas), tool arguments and
results to ``gen_ai.tool.call.arguments`` / ``.result``. Binary parts are described
(media type, size), never copied. Every string passes through
:func:`tollway.core.errors.scrub` first, so a key tollway knows never reaches an
exporter even inside a prompt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tollway.core.errors import scrub
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    Part,
    Request,
    Response,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
)

__all__ = ["input_messages", "output_messages", "safe_json", "tool_definitions", "tool_payload"]

_PARTS = (Text, Image, Audio, File, ToolCall, ToolResult, Thinking)


def safe_json(value: Any) -> str:
    """JSON text with every secret tollway knows masked."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return scrub(text, len(text))


def _media(kind: str, part: Image | Audio | File) -> dict[str, Any]:
    if part.url and not part.url.startswith("data:"):
        return {"type": "uri", "modality": kind, "uri": part.url,
                **({"mime_type": part.media_type} if part.media_type else {})}
    return {"type": kind, "mime_type": part.media_type, "size": len(part.data or b"")}


def _part(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "content": part.text}
    if isinstance(part, ToolCall):
        return {"type": "tool_call", "id": part.id, "name": part.name,
                "arguments": part.arguments or part.raw_arguments}
    if isinstance(part, ToolResult):
        return {"type": "tool_call_response", "id": part.call_id, "response": part.text}
    if isinstance(part, Thinking):
        return {"type": "reasoning", "content": part.text}
    if isinstance(part, Image):
        return _media("image", part)
    if isinstance(part, Audio):
        return _media("audio", part)
    return _media("file", part)


def _message(message: Message) -> dict[str, Any]:
    return {"role": message.role, "parts": [_part(p) for p in message.parts]}


def input_messages(request: Request) -> str:
    return safe_json([_message(m) for m in request.messages])


def output_messages(response: Response) -> str:
    return safe_json([{"role": "assistant", "parts": [_part(p) for p in response.parts],
                       "finish_reason": response.finish_reason}])


def tool_definitions(request: Request) -> str | None:
    if not request.tools:
        return None
    return safe_json([{"type": "function", "name": t.name, "description": t.description}
                      for t in request.tools])


def tool_payload(value: Any) -> str:
    """Tool arguments or a result (text, or parts as above) as JSON text."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = [_part(p) if isinstance(p, _PARTS) else p for p in value]
    return safe_json(value)
