"""A Responses ``response`` object -> canonical parts, finish reason and usage.

Output item mapping (the stream parser produces the same parts, event by event):

- ``message`` -> one Text per content part: ``output_text`` (its ``annotations``, e.g.
  url / file citations, in provider_data) and ``refusal`` (marked ``refusal``); each part
  carries the message's id (and ``phase``) so the next turn sends the item back;
- ``function_call`` -> ToolCall whose id is the ``call_id`` (what the output answers);
  the ``fc_`` item id is kept in provider_data;
- ``reasoning`` -> Thinking: the summary texts joined by a blank line (or the raw
  ``reasoning_text`` content some compatible servers send), ``provider`` this dialect,
  the whole item (id, ``encrypted_content``) in provider_data, sent back verbatim;
- ``image_generation_call`` with a ``result`` -> Image (the base64 decoded, media type
  from ``output_format``), the item without its result in provider_data (the next turn
  sends it back with the bytes re-encoded);
- anything else (``web_search_call``, ``file_search_call``, ``code_interpreter_call``,
  an image call without a result, ...) ran at OpenAI: an empty Text holding the raw
  item, in its position, so continuing the conversation sends it back unchanged.

Usage has tollway's one meaning as-is: ``input_tokens`` includes
``input_tokens_details.cached_tokens``; ``output_tokens`` includes
``output_tokens_details.reasoning_tokens``; ``audio_tokens`` / ``image_tokens`` in
either details object are the modality subsets. The ``service_tier`` that served the
response (``priority``, ``flex``...) is ``Usage.service_tier``, else the request's.
Built-in tools billed per call become
``Usage.units``: ``web_search`` (``tool_usage.web_search.num_requests`` when the response
reports it, else the number of ``web_search_call`` items) and ``file_search`` (the
number of ``file_search_call`` items). Each generated image is a unit
``image_generation:<image model>:<size>:<quality>`` (the tool's ``model`` as the response
echoes it, else :data:`DEFAULT_IMAGE_MODEL`): OpenAI bills it apart from the call's
tokens, at the image model's image output rate (see ``core.cost.tool_images``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from tollway.core.dialects.openai_responses.request import ITEM_KEY, NAME
from tollway.core.types import (
    FinishReason,
    Image,
    Part,
    Text,
    Thinking,
    ToolCall,
    Usage,
    service_tier_of,
)

_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
META_KEYS = ("service_tier", "status", "created_at")
"""Response fields kept in ``Response.provider_data[NAME]``."""


def message_meta(item: Mapping[str, Any]) -> dict[str, Any]:
    """What a Text part keeps of its message item (the content lives in the parts)."""
    meta: dict[str, Any] = {"type": "message", "id": item.get("id")}
    if item.get("phase"):
        meta["phase"] = item["phase"]
    return meta


def content_part(part: Mapping[str, Any], meta: Mapping[str, Any]) -> Text | None:
    """One message content part -> Text (None for kinds that hold no text)."""
    kind = part.get("type")
    data: dict[str, Any] = {ITEM_KEY: dict(meta)}
    if kind == "refusal":
        data["refusal"] = True
        return Text(str(part.get("refusal") or ""), {NAME: data})
    if kind != "output_text":
        return None
    annotations = part.get("annotations")
    if annotations:
        data["annotations"] = list(annotations)
    return Text(str(part.get("text") or ""), {NAME: data})


def reasoning_text(item: Mapping[str, Any]) -> str:
    """The readable text of a reasoning item: its summaries, else its raw content."""
    for key, kind in (("summary", "summary_text"), ("content", "reasoning_text")):
        texts = [
            str(s.get("text") or "")
            for s in item.get(key) or ()
            if isinstance(s, Mapping) and s.get("type") == kind
        ]
        if texts:
            return "\n\n".join(texts)
    return ""


def reasoning_part(item: Mapping[str, Any]) -> Thinking:
    return Thinking(reasoning_text(item), provider=NAME, provider_data={NAME: {ITEM_KEY: dict(item)}})


def function_call(item: Mapping[str, Any]) -> ToolCall:
    arguments = item.get("arguments")
    data = {NAME: {"id": item["id"]}} if item.get("id") else None
    call_id = str(item.get("call_id") or item.get("id") or "")
    name = str(item.get("name") or "")
    if isinstance(arguments, Mapping):
        return ToolCall.from_arguments(call_id, name, arguments, data)
    return ToolCall.from_raw(call_id, name, arguments if isinstance(arguments, str) else "", data)


def raw_item_part(item: Mapping[str, Any]) -> Text:
    """An item OpenAI ran itself (web search...), kept for the next turn."""
    return Text("", {NAME: {ITEM_KEY: dict(item)}})


IMAGE_CALL = "image_generation_call"
DEFAULT_IMAGE_MODEL = "gpt-image-1"
"""The image model of an ``image_generation`` tool that names none (OpenAI's default)."""
IMAGE_UNIT_PREFIX = "image_generation:"


def image_part(item: Mapping[str, Any]) -> Image | None:
    """A finished ``image_generation_call`` as an Image, or None when it holds no
    decodable image (failed, still generating)."""
    result = item.get("result")
    if not isinstance(result, str) or not result:
        return None
    try:
        data = base64.b64decode(result, validate=True)
    except (binascii.Error, ValueError):
        return None
    fmt = str(item.get("output_format") or "png").lower()
    kept = {k: v for k, v in item.items() if k != "result"}
    return Image(data=data, media_type=f"image/{fmt}", provider_data={NAME: {ITEM_KEY: kept}})


def parse_output(output: Sequence[Any]) -> list[Part]:
    parts: list[Part] = []
    for item in output:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            meta = message_meta(item)
            for piece in item.get("content") or ():
                if isinstance(piece, Mapping):
                    text = content_part(piece, meta)
                    if text is not None:
                        parts.append(text)
        elif kind == "function_call":
            parts.append(function_call(item))
        elif kind == "reasoning":
            parts.append(reasoning_part(item))
        elif kind == IMAGE_CALL and (image := image_part(item)) is not None:
            parts.append(image)
        else:
            parts.append(raw_item_part(item))
    return parts


def finish_reason(body: Mapping[str, Any], parts: Sequence[Part]) -> FinishReason:
    """Canonical finish reason from ``status`` and ``incomplete_details``; a turn with
    function calls is ``tool_calls``, a refusal ``content_filter``."""
    status = body.get("status")
    if status == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return _INCOMPLETE.get(str(reason), "length")
    if status in ("failed", "cancelled"):
        return "error"
    if any(isinstance(p, ToolCall) for p in parts):
        return "tool_calls"
    if any(isinstance(p, Text) and p.provider_data and p.provider_data[NAME].get("refusal")
           for p in parts):
        return "content_filter"
    return "stop"


def usage_from_wire(body: Mapping[str, Any], requested_tier: str | None = None) -> Usage:
    """Canonical Usage of a response object (see the module docstring); the service
    tier is the response's (the tier that served it), else ``requested_tier``."""
    usage = body.get("usage")
    units = _tool_units(body)
    raw_tier = body.get("service_tier")
    tier = service_tier_of(raw_tier) if raw_tier else requested_tier
    if not isinstance(usage, Mapping):
        return Usage(units=units, service_tier=tier)
    inp = usage.get("input_tokens_details") or _EMPTY
    out = usage.get("output_tokens_details") or _EMPTY
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_read_tokens=_int(inp.get("cached_tokens")),
        cache_write_tokens=_int(inp.get("cache_write_tokens")),
        reasoning_tokens=_int(out.get("reasoning_tokens")),
        units=units,
        input_audio_tokens=_int(inp.get("audio_tokens")),
        input_image_tokens=_int(inp.get("image_tokens")),
        output_audio_tokens=_int(out.get("audio_tokens")),
        output_image_tokens=_int(out.get("image_tokens")),
        service_tier=tier,
    )


def _tool_units(body: Mapping[str, Any]) -> dict[str, int]:
    searches = files = 0
    units: dict[str, int] = {}
    image_model = _image_model(body)
    for item in body.get("output") or ():
        if isinstance(item, Mapping):
            kind = item.get("type")
            searches += kind == "web_search_call"
            files += kind == "file_search_call"
            if kind == IMAGE_CALL and item.get("result"):
                name = image_unit(image_model, item.get("size"), item.get("quality"))
                units[name] = units.get(name, 0) + 1
    tool_usage = body.get("tool_usage")
    reported = tool_usage.get("web_search") if isinstance(tool_usage, Mapping) else None
    if isinstance(reported, Mapping) and isinstance(reported.get("num_requests"), int):
        searches = reported["num_requests"]  # what OpenAI bills, when it says
    if searches:
        units["web_search"] = searches
    if files:
        units["file_search"] = files
    return units


def image_unit(model: str, size: Any, quality: Any) -> str:
    """The unit one generated image is counted in (``*`` for what the item omits)."""
    return f"{IMAGE_UNIT_PREFIX}{model}:{size or '*'}:{quality or '*'}"


def _image_model(body: Mapping[str, Any]) -> str:
    """The image model of the response's ``image_generation`` tool (echoed in
    ``tools``), else OpenAI's default for the tool."""
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping) and tool.get("type") == "image_generation":
            model = tool.get("model")
            if isinstance(model, str) and model:
                return model
    return DEFAULT_IMAGE_MODEL


def response_meta(body: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = {k: body[k] for k in META_KEYS if body.get(k) is not None}
    return {NAME: meta} if meta else None


_EMPTY: Mapping[str, Any] = {}


def _int(value: Any) -> int:
    return value if value.__class__ is int else 0
