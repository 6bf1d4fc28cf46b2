"""Canonical messages, parts and tools -> Anthropic Messages API content blocks.

Rules the Messages API imposes and this module enforces, so a history built anywhere
(another provider, a framework, a hand-written list) becomes a valid request:

- system messages leave the message list and become the top-level ``system`` blocks;
- roles alternate: consecutive same-role turns are merged, tool results travel as
  ``tool_result`` blocks in a *user* turn, placed before any other block of that turn;
- tool ids match ``^[a-zA-Z0-9_-]+$`` (:func:`wire_tool_id`, applied to both ends);
- thinking is sent back only when Anthropic produced it (``Thinking.provider ==
  "anthropic"``) and with its signature / redacted data; anyone else's reasoning text
  would be rejected (or, worse, accepted as forged model thinking), so it is dropped;
- empty text blocks are dropped (the API rejects them).

``provider_data["anthropic"]`` on a part is merged into the block built for it
(``cache_control``, ``citations``, document ``title`` / ``context``...). A part whose
``provider_data["anthropic"]["block"]`` holds a raw block (a server-tool call or result,
a compaction block, as :mod:`._anthropic_response` stores them) is sent back verbatim.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tollway.core.errors import BadRequestError
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    Part,
    ProviderData,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
)

NAME = "anthropic"
FILES_API_BETA = "files-api-2025-04-14"
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
RAW_BLOCK_KEY = "block"

_NOT_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def own(provider_data: ProviderData | None) -> dict[str, Any]:
    """This dialect's slice of a part's ``provider_data`` (never another dialect's)."""
    if not provider_data:
        return {}
    value = provider_data.get(NAME)
    return value if isinstance(value, dict) else {}


def wire_tool_id(call_id: str) -> str:
    """An id Anthropic accepts for ``call_id``; the same input always gives the same output,
    so a tool_use and its tool_result stay paired. Ids that need changing get a short hash
    of the original appended, so two different foreign ids can never collide."""
    if call_id and not _NOT_ID_CHARS.search(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:10]
    cleaned = _NOT_ID_CHARS.sub("_", call_id)
    return f"{cleaned}_{digest}" if cleaned else f"toolu_{digest}"


def wire_tool_name(name: str) -> str:
    """A tool name Anthropic accepts (``^[a-zA-Z0-9_-]{1,64}$``); used for the synthetic
    structured-output tool, whose name tollway chooses."""
    cleaned = _NOT_ID_CHARS.sub("_", name)[:64]
    return cleaned or "response"


class BuildState:
    """What building the messages found out that the request headers need."""

    __slots__ = ("betas",)

    def __init__(self) -> None:
        self.betas: list[str] = []

    def need_beta(self, beta: str) -> None:
        if beta not in self.betas:
            self.betas.append(beta)


# --------------------------------------------------------------------------- messages


def build_messages(
    messages: Sequence[Message], state: BuildState
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system_blocks, wire_messages)`` for a canonical history."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.extend(_system_blocks(message))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        for part in message.parts:
            blocks.extend(part_blocks(part, state))
        if not blocks:
            continue  # e.g. an assistant turn that only held another provider's thinking
        cache_control = own(message.provider_data).get("cache_control")
        if cache_control is not None and "cache_control" not in blocks[-1]:
            blocks[-1]["cache_control"] = cache_control
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"] = _tool_results_first(turn["content"])
    return system, turns


def _system_blocks(message: Message) -> list[dict[str, Any]]:
    blocks = []
    for part in message.parts:
        if not isinstance(part, Text):
            raise BadRequestError(
                f"a system message may only hold text for Anthropic; got a "
                f"{type(part).__name__} part (move it to a user message)"
            )
        if part.text or RAW_BLOCK_KEY in own(part.provider_data):
            blocks.append(_text_block(part))
    return blocks


def _tool_results_first(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic wants a user turn's tool_result blocks before anything else in it."""
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if not results or len(results) == len(blocks):
        return blocks
    return results + [b for b in blocks if b.get("type") != "tool_result"]


def part_blocks(part: Part, state: BuildState) -> list[dict[str, Any]]:
    """The wire blocks for one canonical part (none when the part must not be sent)."""
    if isinstance(part, Text):
        if not part.text and RAW_BLOCK_KEY not in own(part.provider_data):
            return []
        return [_text_block(part)]
    if isinstance(part, ToolCall):
        return [_tool_use_block(part)]
    if isinstance(part, ToolResult):
        return [_tool_result_block(part, state)]
    if isinstance(part, Thinking):
        block = _thinking_block(part)
        return [block] if block is not None else []
    if isinstance(part, Image):
        return [_image_block(part, state)]
    if isinstance(part, File):
        return [_file_block(part, state)]
    if isinstance(part, Audio):
        raise BadRequestError(
            "Anthropic's Messages API does not accept audio input; transcribe it first "
            "or route this request to a model that takes audio"
        )
    raise BadRequestError(f"cannot send a {type(part).__name__} part to Anthropic")


def _with_own(block: dict[str, Any], provider_data: ProviderData | None) -> dict[str, Any]:
    extra = own(provider_data)
    for key, value in extra.items():
        if key != RAW_BLOCK_KEY:
            block[key] = copy.deepcopy(value)
    return block


def _text_block(part: Text) -> dict[str, Any]:
    raw = own(part.provider_data).get(RAW_BLOCK_KEY)
    if isinstance(raw, dict):
        return copy.deepcopy(raw)
    return _with_own({"type": "text", "text": part.text}, part.provider_data)


def _tool_use_block(call: ToolCall) -> dict[str, Any]:
    arguments = dict(call.history_arguments())  # typed ToolArgumentsError when not JSON
    block = {"type": "tool_use", "id": wire_tool_id(call.id), "name": call.name, "input": arguments}
    return _with_own(block, call.provider_data)


def _tool_result_block(result: ToolResult, state: BuildState) -> dict[str, Any]:
    content: str | list[dict[str, Any]]
    if isinstance(result.content, str):
        content = result.content
    else:
        content = []
        for item in result.content:
            if not isinstance(item, Text | Image | File):
                raise BadRequestError(
                    f"an Anthropic tool result may hold text, images and documents; got a "
                    f"{type(item).__name__} part"
                )
            content.extend(part_blocks(item, state))
    block = {
        "type": "tool_result",
        "tool_use_id": wire_tool_id(result.call_id),
        "content": content,
        "is_error": bool(result.is_error),
    }
    return _with_own(block, result.provider_data)


def _thinking_block(part: Thinking) -> dict[str, Any] | None:
    if part.provider != NAME:
        return None  # another provider's reasoning: never forge it into a thinking block
    if part.redacted:
        block = {"type": "redacted_thinking", "data": part.redacted}
    elif part.signature:
        block = {"type": "thinking", "thinking": part.text, "signature": part.signature}
    else:
        return None  # unsigned thinking is rejected by the API
    return _with_own(block, part.provider_data)


# --------------------------------------------------------------------------- media


def _sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _split_data_url(url: str) -> tuple[str, bytes]:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise BadRequestError(
            "only base64 data: URLs can be sent to Anthropic (data:<type>;base64,...)"
        )
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"data: URL is not valid base64: {exc}") from None
    return header[5:].split(";")[0], data


def _image_source(data: bytes, media_type: str | None) -> dict[str, Any]:
    media_type = media_type or _sniff_image(data)
    if media_type == "image/jpg":
        media_type = "image/jpeg"
    if media_type not in IMAGE_MEDIA_TYPES:
        raise BadRequestError(
            f"Anthropic accepts images as {', '.join(IMAGE_MEDIA_TYPES)}; got "
            f"{media_type or 'bytes of an unknown type'} (set Image.media_type or convert it)"
        )
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": "base64", "media_type": media_type, "data": encoded}


def _image_block(image: Image, state: BuildState) -> dict[str, Any]:
    if image.data is not None:
        source = _image_source(image.data, image.media_type)
    elif image.url and image.url.startswith("data:"):
        media_type, data = _split_data_url(image.url)
        source = _image_source(data, image.media_type or media_type)
    elif image.url:
        source = {"type": "url", "url": image.url}
    else:
        raise BadRequestError("an Image needs a url or data")
    return _with_own({"type": "image", "source": source}, image.provider_data)


def _file_block(file: File, state: BuildState) -> dict[str, Any]:
    media_type = (file.media_type or "").lower()
    if file.file_id:
        state.need_beta(FILES_API_BETA)
        kind = "image" if media_type.startswith("image/") else "document"
        block: dict[str, Any] = {"type": kind, "source": {"type": "file", "file_id": file.file_id}}
    elif file.data is not None:
        block = _file_bytes_block(file.data, media_type)
    elif file.url and file.url.startswith("data:"):
        url_type, data = _split_data_url(file.url)
        block = _file_bytes_block(data, media_type or url_type.lower())
    elif file.url:
        block = {"type": "document", "source": {"type": "url", "url": file.url}}
    else:
        raise BadRequestError("a File needs a url, data or file_id")
    if file.filename and block["type"] == "document":
        block["title"] = file.filename
    return _with_own(block, file.provider_data)


def _file_bytes_block(data: bytes, media_type: str) -> dict[str, Any]:
    if media_type == "application/pdf" or (not media_type and data.startswith(b"%PDF")):
        source = {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(data).decode("ascii"),
        }
        return {"type": "document", "source": source}
    if media_type.startswith("text/") or media_type in ("application/json", "application/xml"):
        text = data.decode("utf-8", errors="replace")
        source = {"type": "text", "media_type": "text/plain", "data": text}
        return {"type": "document", "source": source}
    if media_type.startswith("image/"):
        return {"type": "image", "source": _image_source(data, media_type)}
    raise BadRequestError(
        f"Anthropic accepts documents as PDF or plain text; got {media_type or 'unknown bytes'} "
        f"(set File.media_type, convert the file, or upload it and pass File(file_id=...))"
    )


# --------------------------------------------------------------------------- tools


def build_tools(tools: Iterable[Tool], *, strict_supported: bool) -> list[dict[str, Any]]:
    """Wire tool definitions. ``Tool.provider_data["anthropic"]`` is merged into the
    definition (``cache_control``, ``defer_loading``...); when it carries a ``type`` other
    than ``custom`` the tool is an Anthropic server tool (``web_search_20250305``...) and is
    sent as ``{"name", **provider_data}`` without a schema."""
    out = []
    for tool in tools:
        extra = own(tool.provider_data)
        if extra.get("type") not in (None, "custom"):
            out.append({"name": tool.name, **copy.deepcopy(extra)})
            continue
        spec: dict[str, Any] = {"name": tool.name}
        if tool.description:
            spec["description"] = tool.description
        spec["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
        if tool.strict and strict_supported:
            spec["strict"] = True
        out.append(_with_own(spec, tool.provider_data))
    return out


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` where every object without an explicit ``additionalProperties``
    gets ``additionalProperties: false``, which Anthropic's constrained decoding requires
    (pydantic's schemas omit it)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {key: walk(value) for key, value in node.items()}
            if out.get("type") == "object" and "additionalProperties" not in out:
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(dict(schema))
