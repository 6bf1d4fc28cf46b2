"""Canonical Request -> the ``POST /responses`` body.

How the canonical conversation becomes Responses ``input`` items:

- leading system messages become ``instructions`` (they are not carried over by
  ``previous_response_id``, so they are sent on every turn); a system message later in
  the history stays an input message (role ``developer`` or ``system``);
- user text / images / files / audio -> a message with ``input_*`` content parts (a lone
  plain text is sent as a string);
- an assistant turn is split into the items the Responses API returned for it, in order:
  ``reasoning`` (from a Thinking this dialect produced: its item, with the encrypted
  content, goes back verbatim), ``message`` (text and refusals; our own keep their item
  id), ``function_call`` (ToolCall; ``call_id`` is the canonical id, the ``fc_`` item id
  travels in provider_data), and items OpenAI ran itself (``web_search_call``,
  ``file_search_call``...), kept as an empty Text holding the raw item;
- foreign Thinking (Anthropic signatures, Gemini thoughtSignature, chat-completions
  reasoning text) is dropped: no other API's reasoning is valid input here. When one of
  our own reasoning items cannot be sent (it has no encrypted content and the
  conversation is not stored), the item ids of that turn are dropped too, since OpenAI
  rejects a ``function_call`` / ``message`` id whose reasoning item is missing;
- ToolResult (in a ``tool`` message or, Anthropic style, in a user message) ->
  ``function_call_output`` with text, or a list of input parts for images and files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tollway.core.dialects.openai_chat.schema import strict_schema
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

NAME = "openai_responses"
ITEM_KEY = "item"
"""``provider_data[NAME][ITEM_KEY]``: the raw output item (reasoning, server-run tools)
or, on Text parts, the message item's id/phase (its content lives in the parts)."""

_AUDIO_FORMATS = {"mpeg": "mp3", "mp3": "mp3", "x-wav": "wav", "wave": "wav", "wav": "wav"}


def own_data(part: Part | Message) -> dict[str, Any]:
    """This dialect's provider_data of a part ({} when it has none)."""
    data = part.provider_data
    mine = data.get(NAME) if data else None
    return mine if isinstance(mine, dict) else {}


# --------------------------------------------------------------------------- input


def split_instructions(messages: Sequence[Message]) -> tuple[str | None, Sequence[Message]]:
    """(instructions from the leading system messages, the rest)."""
    texts: list[str] = []
    start = 0
    for message in messages:
        if message.role != "system":
            break
        for part in message.parts:
            if not isinstance(part, Text):
                raise BadRequestError(
                    f"a system message can only hold text; got {type(part).__name__} "
                    "(put media in a user message)"
                )
            texts.append(part.text)
        start += 1
    return ("\n\n".join(texts) if start else None), messages[start:]


def after_last_answer(messages: Sequence[Message]) -> Sequence[Message]:
    """The messages after the last assistant turn: what to send with
    ``previous_response_id`` (the stored response already holds everything before)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "assistant":
            return messages[index + 1 :]
    return messages


def encode_input(
    messages: Sequence[Message], *, system_role: str, stored: bool
) -> list[dict[str, Any]]:
    """The ``input`` items for ``messages`` (see the module docstring)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            items.extend(_assistant_items(message.parts, stored))
            continue
        results = [p for p in message.parts if isinstance(p, ToolResult)]
        others = [p for p in message.parts if not isinstance(p, ToolResult | Thinking)]
        items.extend(_tool_output(result) for result in results)
        if message.role == "tool":
            if others:
                raise BadRequestError(
                    "a tool message may only hold ToolResult parts; put other content "
                    "in a user message"
                )
            continue
        if results and not others:
            continue
        role = system_role if message.role == "system" else message.role
        items.append({"role": role, "content": _content(others, message.role)})
    return items


def _content(parts: Sequence[Part], role: str) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and type(parts[0]) is Text:
        return parts[0].text
    out: list[dict[str, Any]] = []
    for part in parts:
        if role == "system" and not isinstance(part, Text):
            raise BadRequestError(
                f"a system message can only hold text; got {type(part).__name__}"
            )
        out.append(input_part(part))
    return out


def input_part(part: Part) -> dict[str, Any]:
    """One user-side content part as a Responses ``input_*`` part."""
    if isinstance(part, Text):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, Image):
        if not part.url and part.data is None:
            raise BadRequestError("an Image needs a url or data (bytes)")
        image: dict[str, Any] = {"type": "input_image", "image_url": part.data_url}
        image["detail"] = part.detail or "auto"
        return image
    if isinstance(part, File):
        return _file(part)
    if isinstance(part, Audio):
        if part.data is None:
            raise BadRequestError(
                "the Responses API takes audio as base64 data, not a URL; pass "
                "Audio(data=<bytes>, media_type='audio/wav' or 'audio/mpeg')"
            )
        subtype = (part.media_type or "audio/wav").split("/")[-1].lower()
        return {
            "type": "input_audio",
            "input_audio": {"data": part.base64, "format": _AUDIO_FORMATS.get(subtype, subtype)},
        }
    raise BadRequestError(
        f"{type(part).__name__} cannot be sent as message content; tool calls belong to "
        "assistant messages, tool results to tool messages"
    )


def _file(part: File) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "input_file"}
    if part.file_id:
        out["file_id"] = part.file_id
    elif part.data is not None:
        media_type = part.media_type or "application/pdf"
        out["file_data"] = f"data:{media_type};base64,{part.base64}"
        out["filename"] = part.filename or f"file.{media_type.split('/')[-1]}"
    elif part.url and part.url.startswith("data:"):
        out["file_data"] = part.url
        out["filename"] = part.filename or "file"
    elif part.url:
        out["file_url"] = part.url
    else:
        raise BadRequestError("a File needs a file_id, data (bytes) or a url")
    return out


def _tool_output(result: ToolResult) -> dict[str, Any]:
    if not result.call_id:
        raise BadRequestError("a ToolResult needs call_id (the id of the tool call it answers)")
    output: str | list[dict[str, Any]]
    if isinstance(result.content, str):
        output = result.content
    elif all(isinstance(p, Text) for p in result.content):
        output = "".join(p.text for p in result.content if isinstance(p, Text))
    else:
        output = [input_part(p) for p in result.content if not isinstance(p, Thinking)]
    return {"type": "function_call_output", "call_id": result.call_id, "output": output}


def _assistant_items(parts: Sequence[Part], stored: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    keep_ids = all(
        _reasoning_item(p, stored) is not None
        for p in parts
        if isinstance(p, Thinking) and p.provider == NAME and own_data(p).get(ITEM_KEY)
    )
    message: dict[str, Any] | None = None
    message_id: Any = None
    for part in parts:
        mine = own_data(part)
        if isinstance(part, Text):
            raw = mine.get(ITEM_KEY)
            if raw and raw.get("type") != "message":
                items.append(dict(raw))  # an item OpenAI ran itself (web search...)
                message = None
                continue
            meta = raw or {}
            if message is None or (meta.get("id") and meta.get("id") != message_id):
                message_id = meta.get("id")
                message = _message_item(meta if keep_ids else {})
                items.append(message)
            if mine.get("refusal"):
                message["content"].append({"type": "refusal", "refusal": part.text})
            else:
                annotations = mine.get("annotations") or []
                message["content"].append(
                    {"type": "output_text", "text": part.text, "annotations": annotations}
                )
            continue
        message = None
        if isinstance(part, Thinking):
            item = _reasoning_item(part, stored) if part.provider == NAME else None
            if item is not None:
                items.append(item)
        elif isinstance(part, Image) and (mine.get(ITEM_KEY) or {}).get("type") == (
            "image_generation_call"
        ):
            # An image the image_generation tool made: its item, bytes re-encoded.
            items.append({**mine[ITEM_KEY], "result": part.base64})
        elif isinstance(part, ToolCall):
            call: dict[str, Any] = {
                "type": "function_call",
                "call_id": part.id,
                "name": part.name,
                "arguments": part.history_arguments_json(),
            }
            if keep_ids and mine.get("id"):
                call["id"] = mine["id"]
            items.append(call)
        else:
            raise BadRequestError(
                f"an assistant message cannot hold a {type(part).__name__} part; only "
                "text, tool calls and reasoning"
            )
    return [_plain(item) for item in items]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """An id-less assistant message of plain text in the short form every
    Responses-compatible server takes: ``{"role": "assistant", "content": "..."}``."""
    if item.get("type") != "message" or "id" in item:
        return item
    content = item["content"]
    if all(c["type"] == "output_text" and not c["annotations"] for c in content):
        return {"role": "assistant", "content": "".join(c["text"] for c in content)}
    return item


def _message_item(meta: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "role": "assistant", "content": []}
    if meta.get("id"):
        item["id"] = meta["id"]
        item["status"] = "completed"
        if meta.get("phase"):
            item["phase"] = meta["phase"]
    return item


def _reasoning_item(part: Thinking, stored: bool) -> dict[str, Any] | None:
    """Our reasoning item as input, or None when it cannot be sent: without encrypted
    content only a stored conversation can refer to it by id."""
    raw = own_data(part).get(ITEM_KEY)
    if not isinstance(raw, Mapping) or not raw.get("id"):
        return None
    if not raw.get("encrypted_content") and not stored:
        return None
    item = {k: v for k, v in raw.items() if k != "status" or v is not None}
    item.setdefault("summary", [])
    return item


# --------------------------------------------------------------------------- tools


def encode_tool(tool: Tool) -> dict[str, Any]:
    """A function tool. ``strict`` is always sent: the Responses API makes functions
    strict when it is left out, which rejects schemas with optional properties."""
    out: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["parameters"] = strict_schema(tool.parameters) if tool.strict else tool.parameters
    out["strict"] = bool(tool.strict)
    return out


def encode_tool_choice(choice: ToolChoice | None, tools: Sequence[Tool]) -> Any:
    if choice is None:
        return None
    if not tools:
        if choice in ("auto", "none"):
            return None
        name = choice.name if isinstance(choice, NamedTool) else choice
        raise BadRequestError(
            f"tool_choice {name!r} needs tools; pass the tools the model must choose from"
        )
    if isinstance(choice, NamedTool):
        if all(tool.name != choice.name for tool in tools):
            names = ", ".join(tool.name for tool in tools)
            raise BadRequestError(
                f"tool_choice names {choice.name!r}, which is not among the tools ({names})"
            )
        return {"type": "function", "name": choice.name}
    return choice


def encode_format(fmt: ResponseFormat) -> dict[str, Any]:
    """``text.format`` for structured output."""
    if fmt.schema is None:
        return {"type": "json_object"}
    spec: dict[str, Any] = {"type": "json_schema", "name": fmt.name}
    if fmt.description:
        spec["description"] = fmt.description
    spec["schema"] = strict_schema(fmt.schema) if fmt.strict else fmt.schema
    spec["strict"] = fmt.strict
    return spec
