"""The Responses typed event stream -> canonical stream events.

Each SSE ``data:`` is a JSON event with a ``type``; the parser keys on it (not on the
``event:`` line, which some compatible servers omit):

- ``response.created``: StreamStart (id, model);
- ``response.output_item.added``: a ``function_call`` opens a ToolCallDelta (call id,
  name, the ``fc_`` item id); a ``message`` remembers its id / phase for its text parts;
- ``response.output_text.delta`` / ``response.refusal.delta``: TextDelta, one block per
  content part; ``response.content_part.done`` adds the part's annotations;
- ``response.function_call_arguments.delta``: argument fragments;
- ``response.reasoning_summary_text.delta`` (and ``reasoning_text.delta``): ThinkingDelta,
  summary parts separated by a blank line as the non-streamed parse joins them;
- ``response.output_item.done``: a reasoning item's id and ``encrypted_content``; a
  finished ``image_generation_call`` as an ImageEvent (partial images are not kept); an
  item OpenAI ran itself (web search...) as an empty Text; whatever a server sent only
  whole (no deltas) is emitted from the finished item, so nothing is lost;
- ``response.completed`` / ``response.incomplete``: usage, finish reason and the final
  response fields (``service_tier`` is only settled there);
- ``response.failed`` and ``error``: the typed ProviderError is raised.

Collecting the events gives the Response ``parse_response`` gives for the
``response.completed`` body, with one exception the API itself makes: OpenAI encrypts
the reasoning state anew each time it serializes an item, so ``encrypted_content`` from
``output_item.done`` differs byte-wise from the copy in ``response.completed`` (both
decrypt to the same state; either can be sent back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.core.dialects.base import SSEEvent, sse_json
from tollway.core.dialects.openai_responses.errors import error_from_event, failed_response_error
from tollway.core.dialects.openai_responses.request import ITEM_KEY, NAME
from tollway.core.dialects.openai_responses.response import (
    IMAGE_CALL,
    finish_reason,
    image_part,
    message_meta,
    parse_output,
    reasoning_text,
    response_meta,
    usage_from_wire,
)
from tollway.core.errors import StreamError
from tollway.core.types import (
    FinishEvent,
    ImageEvent,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageEvent,
)

_FINAL = ("response.completed", "response.incomplete")


class OpenAIResponsesStreamParser:
    """One parser per stream; see the module docstring for what it accepts."""

    __slots__ = (
        "_args_seen",
        "_blocks",
        "_finished",
        "_messages",
        "_started",
        "_summary_index",
        "_texts_seen",
        "_thinking_seen",
        "_tier",
    )

    def __init__(self, requested_tier: str | None = None) -> None:
        self._tier = requested_tier
        self._started = False
        self._finished = False
        self._blocks: dict[tuple[int, int], int] = {}
        self._messages: dict[int, dict[str, Any]] = {}
        self._texts_seen: set[int] = set()
        self._args_seen: set[int] = set()
        self._thinking_seen: set[int] = set()
        self._summary_index: dict[int, int] = {}

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data.strip()
        if not data or data == "[DONE]" or self._finished:
            return []
        payload = sse_json(data, "stream event")
        kind = payload.get("type") or event.event
        out: list[StreamEvent] = []
        if kind == "error":
            raise error_from_event(payload)
        if kind == "response.failed":
            raise failed_response_error(_response(payload))
        if kind in ("response.created", "response.in_progress") and not self._started:
            self._started = True
            body = _response(payload)
            out.append(StreamStart(body.get("id"), body.get("model")))
        elif kind == "response.output_item.added":
            self._item_added(payload, out)
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            self._text_delta(payload, refusal=kind == "response.refusal.delta", out=out)
        elif kind == "response.content_part.done":
            self._content_done(payload, out)
        elif kind == "response.function_call_arguments.delta":
            index = _int(payload.get("output_index"))
            if payload.get("delta"):
                self._args_seen.add(index)
                out.append(ToolCallDelta(index, arguments=str(payload["delta"])))
        elif kind == "response.reasoning_summary_part.added":
            self._summary_part(payload, out)
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if payload.get("delta"):
                index = _int(payload.get("output_index"))
                self._thinking_seen.add(index)
                out.append(ThinkingDelta(str(payload["delta"]), index, provider=NAME))
        elif kind == "response.output_item.done":
            self._item_done(payload, out)
        elif kind in _FINAL:
            self._final(_response(payload), out)
        return out

    def close(self) -> list[StreamEvent]:
        if not self._finished:
            raise StreamError(
                "the stream ended before the provider finished it (no response.completed "
                "event); the connection was probably cut, so the answer is incomplete"
            )
        return []

    # ------------------------------------------------------------------ items

    def _item_added(self, payload: Mapping[str, Any], out: list[StreamEvent]) -> None:
        item = payload.get("item")
        if not isinstance(item, Mapping):
            return
        index = _int(payload.get("output_index"))
        kind = item.get("type")
        if kind == "message":
            self._messages[index] = message_meta(item)
        elif kind == "function_call":
            data = {NAME: {"id": item["id"]}} if item.get("id") else None
            call_id = str(item.get("call_id") or item.get("id") or "")
            out.append(ToolCallDelta(index, call_id, str(item.get("name") or ""), "", data))
            if item.get("arguments"):
                self._args_seen.add(index)
                out.append(ToolCallDelta(index, arguments=str(item["arguments"])))

    def _item_done(self, payload: Mapping[str, Any], out: list[StreamEvent]) -> None:
        item = payload.get("item")
        if not isinstance(item, Mapping):
            return
        index = _int(payload.get("output_index"))
        kind = item.get("type")
        if kind == "reasoning":
            text = "" if index in self._thinking_seen else reasoning_text(item)
            out.append(
                ThinkingDelta(text, index, provider=NAME, provider_data={NAME: {ITEM_KEY: dict(item)}})
            )
        elif kind == "function_call":
            if index not in self._args_seen and item.get("arguments"):
                out.append(ToolCallDelta(index, arguments=str(item["arguments"])))
        elif kind == "message":
            # Parts a server sent only whole, without deltas or content_part events.
            meta = self._messages.get(index) or message_meta(item)
            for position, part in enumerate(item.get("content") or ()):
                block = self._block(index, position)
                if block not in self._texts_seen and isinstance(part, Mapping):
                    self._emit_part(block, part, meta, out)
        elif kind == IMAGE_CALL and (image := image_part(item)) is not None:
            out.append(ImageEvent(image))
        else:
            out.append(TextDelta("", self._block(index, 0), {NAME: {ITEM_KEY: dict(item)}}))

    # ------------------------------------------------------------------ text

    def _block(self, output_index: int, content_index: int) -> int:
        key = (output_index, content_index)
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = len(self._blocks)
        return block

    def _text_delta(self, payload: Mapping[str, Any], *, refusal: bool, out: list[StreamEvent]) -> None:
        delta = payload.get("delta")
        if not delta:
            return
        index = _int(payload.get("output_index"))
        block = self._block(index, _int(payload.get("content_index")))
        data: dict[str, Any] | None = None
        if block not in self._texts_seen:
            self._texts_seen.add(block)
            mine: dict[str, Any] = {ITEM_KEY: dict(self._messages.get(index) or {})}
            if refusal:
                mine["refusal"] = True
            data = {NAME: mine}
        out.append(TextDelta(str(delta), block, data))

    def _content_done(self, payload: Mapping[str, Any], out: list[StreamEvent]) -> None:
        part = payload.get("part")
        if not isinstance(part, Mapping):
            return
        index = _int(payload.get("output_index"))
        block = self._block(index, _int(payload.get("content_index")))
        meta = self._messages.get(index) or {}
        if block not in self._texts_seen:
            self._emit_part(block, part, meta, out)
        elif part.get("annotations"):
            out.append(TextDelta("", block, {NAME: {"annotations": list(part["annotations"])}}))

    def _emit_part(
        self, block: int, part: Mapping[str, Any], meta: Mapping[str, Any], out: list[StreamEvent]
    ) -> None:
        kind = part.get("type")
        if kind not in ("output_text", "refusal"):
            return
        self._texts_seen.add(block)
        mine: dict[str, Any] = {ITEM_KEY: dict(meta)}
        if kind == "refusal":
            mine["refusal"] = True
            text = str(part.get("refusal") or "")
        else:
            text = str(part.get("text") or "")
            if part.get("annotations"):
                mine["annotations"] = list(part["annotations"])
        out.append(TextDelta(text, block, {NAME: mine}))

    def _summary_part(self, payload: Mapping[str, Any], out: list[StreamEvent]) -> None:
        index = _int(payload.get("output_index"))
        summary = _int(payload.get("summary_index"))
        if summary > 0 and summary != self._summary_index.get(index):
            out.append(ThinkingDelta("\n\n", index, provider=NAME))
            self._thinking_seen.add(index)
        self._summary_index[index] = summary

    # ------------------------------------------------------------------ end

    def _final(self, body: Mapping[str, Any], out: list[StreamEvent]) -> None:
        self._finished = True
        out.append(StreamStart(body.get("id"), body.get("model"), response_meta(body)))
        out.append(UsageEvent(usage_from_wire(body, self._tier)))
        out.append(FinishEvent(finish_reason(body, parse_output(body.get("output") or ()))))


def _response(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    body = payload.get("response")
    return body if isinstance(body, Mapping) else {}


def _int(value: Any) -> int:
    return value if value.__class__ is int else 0
