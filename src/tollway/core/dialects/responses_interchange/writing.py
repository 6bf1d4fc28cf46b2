"""Canonical Response / stream events -> what a Responses API client reads.

:func:`response_to_responses` builds the ``response`` object of a non-streamed call;
:class:`ResponsesEventEncoder` turns canonical stream events into the typed event stream
(``response.created`` ... ``response.completed``) that the openai SDK's
``responses.stream()`` accumulates. Both build output items with the same
:class:`_Items` code, so a streamed and a non-streamed answer carry the same items:

- Text -> a ``message`` item with ``output_text`` parts (annotations kept), refusals as
  ``refusal`` parts; consecutive texts share one message;
- ToolCall -> ``function_call`` (``call_id`` is the canonical id);
- Thinking -> ``reasoning`` with the text as one ``summary_text``; reasoning that came from
  OpenAI's Responses API itself goes back as its own item (id, encrypted content);
- items OpenAI ran itself (kept as empty Texts holding the raw item) -> that raw item.

Item ids are the upstream's where it was a Responses API, else fresh ``msg_`` / ``fc_`` /
``rs_`` ids. Usage has the Responses meaning, which is tollway's: input includes cached
tokens, output includes reasoning tokens.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from tollway.core.dialects.openai_responses.request import ITEM_KEY, NAME
from tollway.core.types import (
    FinishEvent,
    Image,
    ImageEvent,
    Part,
    Request,
    Response,
    StreamEnd,
    StreamEvent,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

__all__ = ["ResponsesEventEncoder", "response_to_responses", "usage_to_responses"]


def _new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(12).hex()}"


def _own(part: Part) -> dict[str, Any]:
    data = (part.provider_data or {}).get(NAME)
    return data if isinstance(data, dict) else {}


def usage_to_responses(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _status(finish: str) -> tuple[str, dict[str, str] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(
    *, id: str, model: str, created: float, output: list[dict[str, Any]], status: str,
    request: Request | None, usage: Usage | None, incomplete: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``response`` object with the fields the openai SDK's model declares; the
    request's own settings are echoed as OpenAI does."""
    instructions = None
    if request is not None and request.messages and request.messages[0].role == "system":
        instructions = request.messages[0].text
    tools = [
        {"type": "function", "name": t.name, "description": t.description or None,
         "parameters": t.parameters, "strict": bool(t.strict)}
        for t in (request.tools if request is not None else ())
    ]
    reasoning = request.reasoning if request is not None else None
    return {
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": instructions,
        "max_output_tokens": request.max_tokens if request is not None else None,
        "model": model,
        "output": output,
        "parallel_tool_calls": bool(request is None or request.parallel_tool_calls is not False),
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.effort if reasoning else None, "summary": None},
        "store": False,
        "temperature": request.temperature if request is not None else None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": tools,
        "top_p": request.top_p if request is not None else None,
        "truncation": "disabled",
        "usage": usage_to_responses(usage) if usage is not None else None,
        "metadata": {},
    }


class _Items:
    """Output items under construction, in order; each canonical part lands in one."""

    __slots__ = ("_message", "items")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._message: dict[str, Any] | None = None

    def text(self, text: str, own: Mapping[str, Any]) -> None:
        raw = own.get(ITEM_KEY) or {}
        if raw.get("type") not in (None, "message"):  # an item OpenAI ran itself
            self._message = None
            self.items.append(dict(raw))
            return
        wanted = raw.get("id")
        if self._message is None or (wanted and wanted != self._message["id"]):
            self._message = self.message(wanted)
            self.items.append(self._message)
        if own.get("refusal"):
            self._message["content"].append({"type": "refusal", "refusal": text})
        else:
            self._message["content"].append(
                {"type": "output_text", "text": text, "annotations": list(own.get("annotations") or ()),
                 "logprobs": []}
            )

    def other(self, item: dict[str, Any]) -> None:
        self._message = None
        self.items.append(item)

    @staticmethod
    def message(id: str | None = None, status: str = "completed") -> dict[str, Any]:
        return {"id": id or _new_id("msg"), "type": "message", "status": status,
                "role": "assistant", "content": []}

    @staticmethod
    def call(call: ToolCall | None, *, id: str | None = None, call_id: str = "", name: str = "",
             arguments: str = "", status: str = "completed") -> dict[str, Any]:
        if call is not None:
            id = id or _own(call).get("id")
            call_id, name, arguments = call.id, call.name, call.arguments_json
        return {"id": id or _new_id("fc"), "type": "function_call", "status": status,
                "call_id": call_id, "name": name, "arguments": arguments}

    @staticmethod
    def reasoning(text: str, raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if raw:
            return dict(raw)
        summary = [{"type": "summary_text", "text": text}] if text else []
        return {"id": _new_id("rs"), "type": "reasoning", "summary": summary}


def output_items(parts: list[Part]) -> list[dict[str, Any]]:
    items = _Items()
    for part in parts:
        if isinstance(part, Text):
            items.text(part.text, _own(part))
        elif isinstance(part, ToolCall):
            items.other(_Items.call(part))
        elif isinstance(part, Thinking):
            raw = _own(part).get(ITEM_KEY) if part.provider == NAME else None
            if part.text or raw:
                items.other(_Items.reasoning(part.text, raw))
        elif isinstance(part, Image) and part.data is not None:
            items.other(image_item(part))
    return items.items


def image_item(part: Image) -> dict[str, Any]:
    """A generated image as the ``image_generation_call`` item a Responses client reads:
    the upstream item when it came from one (bytes re-encoded), else a new one (an
    image from Gemini)."""
    raw = _own(part).get(ITEM_KEY)
    if isinstance(raw, Mapping) and raw.get("type") == "image_generation_call":
        return {**raw, "result": part.base64}
    fmt = (part.media_type or "image/png").partition("/")[2] or "png"
    return {"id": _new_id("ig"), "type": "image_generation_call", "status": "completed",
            "output_format": fmt, "result": part.base64}


def response_to_responses(
    response: Response, request: Request | None = None, *, model: str | None = None,
    created: float | None = None,
) -> dict[str, Any]:
    """The Responses ``response`` object for a canonical Response."""
    status, incomplete = _status(response.finish_reason)
    rid = response.id if response.id.startswith("resp_") else _new_id("resp")
    return response_object(
        id=rid, model=model or response.model, created=created or time.time(),
        output=output_items(response.parts), status=status, request=request,
        usage=response.usage, incomplete=incomplete,
    )


class ResponsesEventEncoder:
    """Canonical stream events -> Responses stream events, incrementally.

    ``feed(event)`` returns the events one canonical event produces; ``fail(code,
    message)`` the ``error`` event for a stream that broke after its first byte. An item
    stays open until the stream ends (events carry ``output_index``, so interleaved tool
    calls are fine); at :class:`StreamEnd` every item gets its ``.done`` events, then
    ``response.completed`` (or ``response.incomplete``) with the full response object.
    """

    def __init__(self, *, model: str, request: Request | None = None) -> None:
        self.model = model
        self.request = request
        self.id = _new_id("resp")
        self.created = time.time()
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []
        self._open: dict[tuple[str, int], int] = {}  # (kind, block/index) -> output index
        self._usage: Usage | None = None
        self._finish = "stop"

    # ----------------------------------------------------------------- plumbing

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self, status: str, incomplete: dict[str, str] | None = None) -> dict[str, Any]:
        return response_object(
            id=self.id, model=self.model, created=self.created, output=list(self._output),
            status=status, request=self.request,
            usage=self._usage if status != "in_progress" else None, incomplete=incomplete,
        )

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        snapshot = self._snapshot("in_progress")
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def _add(self, key: tuple[str, int], item: dict[str, Any], out: list[dict[str, Any]]) -> int:
        index = len(self._output)
        self._output.append(item)
        self._open[key] = index
        out.append(self._event("response.output_item.added", output_index=index,
                               item=json.loads(json.dumps(item))))
        return index

    # ----------------------------------------------------------------- events

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, StreamStart):
            return self._start()
        if isinstance(event, UsageEvent):
            self._usage = event.usage
            return []
        if isinstance(event, FinishEvent):
            self._finish = event.finish_reason
            return []
        if isinstance(event, StreamEnd):
            return self._end(event.response)
        out = self._start()
        if isinstance(event, TextDelta):
            self._text(event, out)
        elif isinstance(event, ThinkingDelta):
            self._thinking(event, out)
        elif isinstance(event, ToolCallDelta):
            self._tool(event, out)
        elif isinstance(event, ImageEvent) and event.image.data is not None:
            # An image arrives whole: its item is added and done at once.
            item = image_item(event.image)
            index = len(self._output)
            self._output.append(item)
            added = {k: v for k, v in item.items() if k != "result"}
            out.append(self._event("response.output_item.added", output_index=index,
                                   item={**added, "status": "in_progress"}))
            out.append(self._event("response.output_item.done", output_index=index,
                                   item=dict(item)))
        return out

    def _text(self, event: TextDelta, out: list[dict[str, Any]]) -> None:
        if not event.text:
            return
        key = ("text", event.block)
        index = self._open.get(key)
        if index is None:
            index = self._add(key, _Items.message(status="in_progress"), out)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._output[index]["content"].append(part)
            out.append(self._event("response.content_part.added", item_id=self._output[index]["id"],
                                   output_index=index, content_index=0, part=dict(part)))
        item = self._output[index]
        item["content"][0]["text"] += event.text
        out.append(self._event("response.output_text.delta", item_id=item["id"],
                               output_index=index, content_index=0, delta=event.text,
                               logprobs=[]))

    def _thinking(self, event: ThinkingDelta, out: list[dict[str, Any]]) -> None:
        if not event.text:
            return
        key = ("reasoning", event.block)
        index = self._open.get(key)
        if index is None:
            index = self._add(key, {"id": _new_id("rs"), "type": "reasoning", "summary": []}, out)
            part = {"type": "summary_text", "text": ""}
            self._output[index]["summary"].append(part)
            out.append(self._event("response.reasoning_summary_part.added",
                                   item_id=self._output[index]["id"], output_index=index,
                                   summary_index=0, part=dict(part)))
        item = self._output[index]
        item["summary"][0]["text"] += event.text
        out.append(self._event("response.reasoning_summary_text.delta", item_id=item["id"],
                               output_index=index, summary_index=0, delta=event.text))

    def _tool(self, event: ToolCallDelta, out: list[dict[str, Any]]) -> None:
        key = ("call", event.index)
        index = self._open.get(key)
        if index is None:
            item = _Items.call(None, call_id=event.id or _new_id("call"), name=event.name or "",
                               status="in_progress")
            index = self._add(key, item, out)
        item = self._output[index]
        if event.name and not item["name"]:
            item["name"] = event.name
        if event.arguments:
            item["arguments"] += event.arguments
            out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                   output_index=index, delta=event.arguments))

    def _end(self, response: Response) -> list[dict[str, Any]]:
        out = self._start()
        self._usage = response.usage
        self._finish = response.finish_reason
        for (kind, _), index in sorted(self._open.items(), key=lambda kv: kv[1]):
            item = self._output[index]
            if kind == "text":
                part = item["content"][0]
                out.append(self._event("response.output_text.done", item_id=item["id"],
                                       output_index=index, content_index=0, text=part["text"],
                                       logprobs=[]))
                out.append(self._event("response.content_part.done", item_id=item["id"],
                                       output_index=index, content_index=0, part=dict(part)))
            elif kind == "reasoning":
                part = item["summary"][0]
                out.append(self._event("response.reasoning_summary_text.done", item_id=item["id"],
                                       output_index=index, summary_index=0, text=part["text"]))
                out.append(self._event("response.reasoning_summary_part.done", item_id=item["id"],
                                       output_index=index, summary_index=0, part=dict(part)))
            else:
                out.append(self._event("response.function_call_arguments.done",
                                       item_id=item["id"], output_index=index,
                                       name=item["name"], arguments=item["arguments"]))
            if "status" in item:
                item["status"] = "completed"
            out.append(self._event("response.output_item.done", output_index=index,
                                   item=json.loads(json.dumps(item))))
        self._open.clear()
        status, incomplete = _status(self._finish)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(kind, response=self._snapshot(status, incomplete)))
        return out

    def fail(self, code: str | None, message: str) -> list[dict[str, Any]]:
        """The ``error`` event OpenAI sends when a stream breaks after it began."""
        out = self._start()
        out.append(self._event("error", code=code, message=message, param=None))
        return out
