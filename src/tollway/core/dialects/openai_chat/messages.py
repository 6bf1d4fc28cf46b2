"""Canonical messages -> the OpenAI chat ``messages`` array.

OpenAI's shape differs from the canonical one in three ways this module absorbs:
tool results are separate ``tool`` messages (one per call, even when the canonical
history holds them in one user message, Anthropic style); a tool message can only carry
text, so images / files a tool returned travel in a user message placed right after the
run of tool messages (a user message between tool messages would break the pairing with
the assistant's tool calls); and reasoning has no input field at OpenAI, so Thinking is
dropped unless the server wants it back (``echo``, see :class:`EncodeOptions`).

Keys tollway has no field for survive a round trip: ``provider_data[<dialect>]["extra"]``
on a Message or a part is merged into the emitted dict (the reverse direction stores
unknown keys there, e.g. a ``prompt_cache_breakpoint`` on a text part).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tollway.core.errors import BadRequestError
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    Part,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
)

_AUDIO_FORMATS = {"mpeg": "mp3", "mp3": "mp3", "x-wav": "wav", "wave": "wav", "wav": "wav"}


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    """The dialect options that shape messages.

    ``name`` is the ``provider_data`` key read; ``system_role`` is ``system`` or
    ``developer`` (o-series); ``echo_reasoning`` sends every Thinking part this dialect
    produced back in the field it came from (Kimi and DeepSeek tool loops need it; older
    DeepSeek reasoners reject it, hence off by default). A single part can ask for it
    with ``provider_data[name]["echo"] = True``.
    """

    name: str
    system_role: str = "system"
    echo_reasoning: bool = False


def encode_messages(messages: Sequence[Message], options: EncodeOptions) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []  # tool-returned media, sent after the tool run
    for message in messages:
        plain = _plain_text(message, options)
        if plain is not None and not attachments:
            out.append(plain)
            continue
        results = [p for p in message.parts if isinstance(p, ToolResult)]
        others = [p for p in message.parts if not isinstance(p, ToolResult)]
        for result in results:
            out.append(_tool_message(result, options, attachments))
        if message.role == "tool":
            if any(not isinstance(p, Thinking) for p in others):
                raise BadRequestError(
                    "a tool message may only hold ToolResult parts; put other content "
                    "in a user message"
                )
            continue
        if results and not others:
            continue
        if attachments:
            out.append({"role": "user", "content": attachments})
            attachments = []
        out.append(_message(message, others, options))
    if attachments:
        out.append({"role": "user", "content": attachments})
    return out


def _plain_text(message: Message, options: EncodeOptions) -> dict[str, Any] | None:
    """The message as ``{"role", "content": str}`` when it is one plain Text part and
    nothing else (most messages): what the general path below produces for it, without
    its part lists and merges."""
    parts = message.parts
    if len(parts) != 1 or message.name or message.provider_data:
        return None
    part = parts[0]
    role = message.role
    if type(part) is not Text or part.provider_data or role == "tool":
        return None
    return {"role": options.system_role if role == "system" else role, "content": part.text}


def _message(message: Message, parts: Sequence[Part], options: EncodeOptions) -> dict[str, Any]:
    role = message.role
    if role == "assistant":
        body = _assistant(parts, options)
    else:
        content: list[dict[str, Any]] = []
        for part in parts:
            encoded = _content_part(part, role, options)
            if encoded is not None:
                content.append(encoded)
        body = {
            "role": options.system_role if role == "system" else role,
            "content": _compact(content),
        }
    if message.name:
        body["name"] = message.name
    _merge_extra(body, message.provider_data, options.name)
    return body


def _assistant(parts: Sequence[Part], options: EncodeOptions) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    refusal: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: dict[str, list[str]] = {}
    for part in parts:
        mine = _own_data(part.provider_data, options.name)
        if isinstance(part, Text):
            if mine.get("refusal"):
                refusal.append(part.text)
            else:
                encoded = {"type": "text", "text": part.text}
                _merge_extra(encoded, part.provider_data, options.name)
                content.append(encoded)
        elif isinstance(part, ToolCall):
            call = {
                "id": part.id,
                "type": "function",
                "function": {"name": part.name, "arguments": part.history_arguments_json()},
            }
            _merge_extra(call, part.provider_data, options.name)
            calls.append(call)
        elif isinstance(part, Thinking):
            if mine.get("echo") or (options.echo_reasoning and part.provider == options.name):
                field = str(mine.get("field") or "reasoning_content")
                reasoning.setdefault(field, []).append(part.text)
        else:
            raise BadRequestError(
                f"an assistant message cannot hold a {type(part).__name__} part in OpenAI "
                "chat completions; only text, tool calls and reasoning"
            )
    # null content is only valid beside tool calls or a refusal; otherwise send "".
    empty = None if calls or refusal else ""
    body: dict[str, Any] = {"role": "assistant", "content": _compact(content) if content else empty}
    if refusal:
        body["refusal"] = "".join(refusal)
    for field, texts in reasoning.items():
        body[field] = "".join(texts)
    if calls:
        body["tool_calls"] = calls
    return body


def _compact(content: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone plain text part is sent as a string (every compatible server takes that);
    anything else stays a list of parts."""
    if len(content) == 1 and content[0].keys() == {"type", "text"} and content[0]["type"] == "text":
        return str(content[0]["text"])
    if not content:
        return ""
    return content


def _content_part(part: Part, role: str, options: EncodeOptions) -> dict[str, Any] | None:
    if isinstance(part, Thinking):
        return None  # no reasoning input in chat completions
    if role == "system" and not isinstance(part, Text):
        raise BadRequestError(
            f"a system message can only hold text in OpenAI chat completions; got "
            f"{type(part).__name__} (put media in a user message)"
        )
    if isinstance(part, ToolCall):
        raise BadRequestError(
            f"a {role} message cannot hold a ToolCall; tool calls belong to assistant messages"
        )
    encoded = _media_part(part)
    _merge_extra(encoded, part.provider_data, options.name)
    return encoded


def _media_part(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Image):
        if not part.url and part.data is None:
            raise BadRequestError("an Image needs a url or data (bytes)")
        spec: dict[str, Any] = {"url": part.data_url}
        if part.detail:
            spec["detail"] = part.detail
        return {"type": "image_url", "image_url": spec}
    if isinstance(part, Audio):
        return {"type": "input_audio", "input_audio": _audio(part)}
    if isinstance(part, File):
        return {"type": "file", "file": _file(part)}
    raise BadRequestError(f"{type(part).__name__} cannot be sent as message content")


def _audio(part: Audio) -> dict[str, str]:
    media_type, data = part.media_type, part.base64
    if part.data is None:
        if not (part.url and part.url.startswith("data:")):
            raise BadRequestError(
                "OpenAI chat completions takes audio as base64 data, not a URL; pass "
                "Audio(data=<bytes>, media_type='audio/wav' or 'audio/mpeg')"
            )
        media_type, data = _split_data_url(part.url)
    subtype = (media_type or "audio/wav").split("/")[-1].lower()
    return {"data": data, "format": _AUDIO_FORMATS.get(subtype, subtype)}


def _file(part: File) -> dict[str, str]:
    if part.file_id:
        spec = {"file_id": part.file_id}
        if part.filename:
            spec["filename"] = part.filename
        return spec
    if part.data is not None:
        media_type = part.media_type or "application/pdf"
        data_url = f"data:{media_type};base64,{part.base64}"
    elif part.url and part.url.startswith("data:"):
        media_type = part.url[5:].split(";")[0] or "application/pdf"
        data_url = part.url
    else:
        raise BadRequestError(
            "OpenAI chat completions cannot fetch a file URL; pass the bytes "
            "(File(data=..., media_type=...)) or upload the file and pass File(file_id=...)"
        )
    filename = part.filename or f"file.{media_type.split('/')[-1]}"
    return {"filename": filename, "file_data": data_url}


def _tool_message(
    result: ToolResult, options: EncodeOptions, attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    if not result.call_id:
        raise BadRequestError("a ToolResult needs call_id (the id of the tool call it answers)")
    content: str | list[dict[str, Any]]
    if isinstance(result.content, str):
        content = result.content
    else:
        content = []
        media: list[dict[str, Any]] = []
        for part in result.content:
            if isinstance(part, Text):
                encoded = {"type": "text", "text": part.text}
                _merge_extra(encoded, part.provider_data, options.name)
                content.append(encoded)
            elif not isinstance(part, Thinking):
                media.append(_content_part(part, "user", options) or {})
        if media:
            # The tool message can only hold text: the media follow in a user message,
            # labelled so the model can tell which call returned them.
            attachments.append(
                {"type": "text", "text": f"Content returned by tool call {result.call_id}:"}
            )
            attachments.extend(media)
            if not content:
                content = f"The content is in the next user message (tool call {result.call_id})."
        if not content:
            content = ""
    body: dict[str, Any] = {"role": "tool", "tool_call_id": result.call_id, "content": content}
    _merge_extra(body, result.provider_data, options.name)
    return body


def _split_data_url(url: str) -> tuple[str, str]:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise BadRequestError("only base64 data: URLs are supported (data:<type>;base64,...)")
    # Round-trip through bytes so the payload sent is canonical base64.
    return header[5:].split(";")[0], base64.b64encode(base64.b64decode(payload)).decode("ascii")


def _own_data(provider_data: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if not provider_data:
        return {}
    mine = provider_data.get(name)
    return mine if isinstance(mine, dict) else {}


def _merge_extra(target: dict[str, Any], provider_data: dict[str, Any] | None, name: str) -> None:
    extra = _own_data(provider_data, name).get("extra")
    if isinstance(extra, dict):
        for key, value in extra.items():
            target.setdefault(key, value)
