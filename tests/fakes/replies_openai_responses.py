"""Realistic OpenAI Responses API replies for the loopback fake server.

Written by hand in the wire shape the corpus records (``resp_`` / ``rs_`` / ``msg_`` /
``fc_`` ids, reasoning items with ``encrypted_content``, the typed event stream with
``sequence_number`` and ``obfuscation``, ``response.completed`` carrying the whole
response), not produced by tollway's code, so tests check tollway against the wire
format rather than against itself.

Every builder takes ``reasoning``: a reasoning item (summary text + an encrypted blob)
placed before the output, as gpt-5 returns it; :func:`encrypted` gives the blob a test
can look for in the next request. ``usage`` pins the numbers (``input_tokens`` includes
cached tokens, ``output_tokens`` includes reasoning, exactly like the canonical Usage).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from tests.fakes.replies_openai import error_reply
from tests.fakes.server import Reply, sse
from tollway.core.types import Usage

__all__ = [
    "MODEL",
    "encrypted",
    "error_event_stream",
    "error_reply",
    "failed_stream",
    "image_generation_reply",
    "image_generation_stream",
    "response_body",
    "text_reply",
    "text_stream",
    "tool_call_reply",
    "tool_call_stream",
    "web_search_reply",
]

MODEL = "gpt-5-mini-2025-08-07"
CREATED = 1_757_687_263
DEFAULT_USAGE = Usage(input_tokens=1_351, output_tokens=142, cache_read_tokens=1_152,
                      reasoning_tokens=64)


def _id(prefix: str, seed: str) -> str:
    return f"{prefix}_{hashlib.sha1(seed.encode()).hexdigest()[:40]}"


def call_id(name: str, index: int, args: dict[str, Any] | None = None) -> str:
    """A ``call_...`` id unique to the call (as OpenAI's are, across turns too)."""
    seed = f"{name}:{index}:{json.dumps(args, sort_keys=True)}"
    return "call_" + hashlib.sha1(seed.encode()).hexdigest()[:24]


def encrypted(seed: str) -> str:
    """The ``encrypted_content`` of the reasoning item a reply built with ``seed`` holds."""
    return "gAAAAAB" + hashlib.sha256(seed.encode()).hexdigest()


def usage_body(usage: Usage | None = None) -> dict[str, Any]:
    u = usage or DEFAULT_USAGE
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _reasoning_item(seed: str, summary: str | None) -> dict[str, Any]:
    return {
        "id": _id("rs", seed),
        "type": "reasoning",
        "encrypted_content": encrypted(seed),
        "summary": [{"type": "summary_text", "text": summary}] if summary else [],
    }


def _message_item(seed: str, text: str, annotations: list[Any] | None = None) -> dict[str, Any]:
    return {
        "id": _id("msg", seed),
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [
            {"type": "output_text", "annotations": annotations or [], "logprobs": [], "text": text}
        ],
    }


def _call_item(name: str, index: int, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _id("fc", f"{name}:{index}:{json.dumps(args, sort_keys=True)}"),
        "type": "function_call",
        "status": "completed",
        "arguments": json.dumps(args),
        "call_id": call_id(name, index, args),
        "name": name,
    }


def response_body(
    seed: str,
    output: list[dict[str, Any]],
    *,
    usage: Usage | None = None,
    model: str = MODEL,
    status: str = "completed",
    incomplete: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole ``response`` object around ``output`` items."""
    return {
        "id": _id("resp", seed),
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage_body(usage),
        "user": None,
        "metadata": {},
        **(extra or {}),
    }


def _lead(seed: str, reasoning: str | bool | None) -> list[dict[str, Any]]:
    if not reasoning:
        return []
    return [_reasoning_item(seed, reasoning if isinstance(reasoning, str) else None)]


def text_reply(
    text: str,
    *,
    usage: Usage | None = None,
    model: str = MODEL,
    reasoning: str | bool | None = None,
    incomplete: str | None = None,
) -> Reply:
    """A non-streamed answer; ``reasoning`` (a summary, or True for none) puts a
    reasoning item first; ``incomplete`` (``max_output_tokens``) cuts it short."""
    seed = "text:" + text
    output = [*_lead(seed, reasoning), _message_item(seed, text)]
    status = "incomplete" if incomplete else "completed"
    return Reply(200, response_body(seed, output, usage=usage, model=model, status=status,
                                    incomplete=incomplete))


def tool_call_reply(
    calls: list[tuple[str, dict[str, Any]]],
    *,
    usage: Usage | None = None,
    model: str = MODEL,
    reasoning: str | bool | None = None,
) -> Reply:
    """A non-streamed answer calling each ``(name, arguments)`` (parallel when several)."""
    seed = "calls:" + repr(calls)
    output = [*_lead(seed, reasoning)]
    output += [_call_item(name, i, args) for i, (name, args) in enumerate(calls)]
    return Reply(200, response_body(seed, output, usage=usage, model=model))


def web_search_reply(text: str, queries: list[str], *, usage: Usage | None = None,
                     model: str = MODEL) -> Reply:
    """gpt-5 searching the web once per query (a reasoning item before each search),
    then answering with a url citation."""
    seed = "search:" + text
    output: list[dict[str, Any]] = []
    for i, query in enumerate(queries):
        output.append(_reasoning_item(f"{seed}:{i}", None))
        output.append({"id": _id("ws", f"{seed}:{i}"), "type": "web_search_call",
                       "status": "completed", "action": {"type": "search", "query": query}})
    citation = {"type": "url_citation", "start_index": 0, "end_index": len(text),
                "title": "Source", "url": "https://example.org/news?utm_source=openai"}
    output.append(_message_item(seed, text, [citation]))
    return Reply(200, response_body(seed, output, usage=usage, model=model))


def _image_item(seed: str, image: bytes, *, size: str, quality: str,
                output_format: str) -> dict[str, Any]:
    """A finished ``image_generation_call`` (the shape the corpus records: the size and
    quality the tool chose for ``auto``, the revised prompt, the base64 ``result``)."""
    return {
        "id": _id("ig", seed),
        "type": "image_generation_call",
        "status": "completed",
        "background": "opaque",
        "output_format": output_format,
        "quality": quality,
        "size": size,
        "revised_prompt": "A watercolor fox in a snowy birch forest, soft morning light.",
        "result": base64.b64encode(image).decode("ascii"),
    }


def _image_body(seed: str, image: bytes, text: str, *, size: str, quality: str,
                output_format: str, image_model: str | None, usage: Usage | None,
                model: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "image_generation", "background": "auto",
                            "moderation": "auto", "n": 1, "output_compression": 100,
                            "output_format": output_format, "quality": "auto", "size": "auto"}
    if image_model is not None:
        tool["model"] = image_model
    output = [_reasoning_item(seed, None),
              _image_item(seed, image, size=size, quality=quality, output_format=output_format),
              _message_item(seed, text)]
    return response_body(seed, output, usage=usage, model=model,
                         extra={"tools": [tool], "tool_choice": "auto"})


def image_generation_reply(
    image: bytes, *, text: str = "", size: str = "1024x1024", quality: str = "medium",
    output_format: str = "png", image_model: str | None = None, usage: Usage | None = None,
    model: str = MODEL,
) -> Reply:
    """gpt-5 drawing with the built-in ``image_generation`` tool: a reasoning item, the
    image call, then a (usually empty) message, as recorded in the corpus."""
    seed = "image:" + text + size + quality
    return Reply(200, _image_body(seed, image, text, size=size, quality=quality,
                                  output_format=output_format, image_model=image_model,
                                  usage=usage, model=model))


def image_generation_stream(
    image: bytes, *, text: str = "", size: str = "1024x1024", quality: str = "medium",
    output_format: str = "png", image_model: str | None = None, usage: Usage | None = None,
    model: str = MODEL,
) -> Reply:
    """The same answer streamed: the image call's progress events (no partial images),
    the finished item with its ``result`` in ``output_item.done``."""
    seed = "image:" + text + size + quality
    body = _image_body(seed, image, text, size=size, quality=quality,
                       output_format=output_format, image_model=image_model, usage=usage,
                       model=model)
    reasoning, call, message = body["output"]
    events = _Events()
    events.start(body)
    events.reasoning(0, reasoning)
    events.add("response.output_item.added", output_index=1,
               item={"id": call["id"], "type": "image_generation_call", "status": "in_progress"})
    for stage in ("in_progress", "generating", "completed"):
        events.add(f"response.image_generation_call.{stage}", item_id=call["id"],
                   output_index=1)
    events.add("response.output_item.done", output_index=1, item=call)
    events.message(2, message, [text] if text else [])
    events.add("response.completed", response=body)
    return events.reply()


# --------------------------------------------------------------------------- streams


class _Events:
    """Builds the typed event stream with running sequence numbers."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, "sequence_number": len(self.events), **fields})

    def start(self, body: dict[str, Any]) -> None:
        opening = {**body, "status": "in_progress", "output": [], "usage": None}
        self.add("response.created", response=opening)
        self.add("response.in_progress", response=opening)

    def reasoning(self, index: int, item: dict[str, Any]) -> None:
        self.add("response.output_item.added", output_index=index,
                 item={**item, "summary": [], "encrypted_content": None})
        for s, summary in enumerate(item["summary"]):
            part = {"type": "summary_text", "text": ""}
            self.add("response.reasoning_summary_part.added", item_id=item["id"],
                     output_index=index, summary_index=s, part=part)
            text = summary["text"]
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                self.add("response.reasoning_summary_text.delta", item_id=item["id"],
                         output_index=index, summary_index=s, delta=piece, obfuscation="kq")
            self.add("response.reasoning_summary_text.done", item_id=item["id"],
                     output_index=index, summary_index=s, text=text)
            self.add("response.reasoning_summary_part.done", item_id=item["id"],
                     output_index=index, summary_index=s, part={**part, "text": text})
        self.add("response.output_item.done", output_index=index, item=item)

    def message(self, index: int, item: dict[str, Any], pieces: list[str]) -> None:
        opened = {**item, "status": "in_progress", "content": []}
        self.add("response.output_item.added", output_index=index, item=opened)
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        self.add("response.content_part.added", item_id=item["id"], output_index=index,
                 content_index=0, part=empty)
        for piece in pieces:
            self.add("response.output_text.delta", item_id=item["id"], output_index=index,
                     content_index=0, delta=piece, logprobs=[], obfuscation="Xq3")
        text = "".join(pieces)
        self.add("response.output_text.done", item_id=item["id"], output_index=index,
                 content_index=0, text=text, logprobs=[])
        self.add("response.content_part.done", item_id=item["id"], output_index=index,
                 content_index=0, part=item["content"][0])
        self.add("response.output_item.done", output_index=index, item=item)

    def call(self, index: int, item: dict[str, Any]) -> None:
        self.add("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "arguments": ""})
        raw = item["arguments"]
        for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
            self.add("response.function_call_arguments.delta", item_id=item["id"],
                     output_index=index, delta=piece, obfuscation="ab")
        self.add("response.function_call_arguments.done", item_id=item["id"],
                 output_index=index, arguments=raw)
        self.add("response.output_item.done", output_index=index, item=item)

    def reply(self, *, cut_after: int | None = None) -> Reply:
        names = [e["type"] for e in self.events]
        return Reply(200, chunks=sse(*self.events, event_names=names), cut_after=cut_after)


def text_stream(
    text_pieces: list[str],
    *,
    usage: Usage | None = None,
    model: str = MODEL,
    reasoning: str | bool | None = None,
    cut_after: int | None = None,
) -> Reply:
    """A streamed answer (reasoning summary deltas first when ``reasoning``), ending in
    ``response.completed``; ``cut_after`` drops the connection after that many events."""
    text = "".join(text_pieces)
    seed = "text:" + text
    lead = _lead(seed, reasoning)
    output = [*lead, _message_item(seed, text)]
    body = response_body(seed, output, usage=usage, model=model)
    events = _Events()
    events.start(body)
    for index, item in enumerate(lead):
        events.reasoning(index, item)
    events.message(len(lead), output[-1], text_pieces)
    events.add("response.completed", response=body)
    return events.reply(cut_after=cut_after)


def tool_call_stream(
    calls: list[tuple[str, dict[str, Any]]],
    *,
    usage: Usage | None = None,
    model: str = MODEL,
    reasoning: str | bool | None = None,
) -> Reply:
    """A streamed answer calling each ``(name, arguments)``, arguments in two fragments."""
    seed = "calls:" + repr(calls)
    lead = _lead(seed, reasoning)
    items = [_call_item(name, i, args) for i, (name, args) in enumerate(calls)]
    body = response_body(seed, [*lead, *items], usage=usage, model=model)
    events = _Events()
    events.start(body)
    for index, item in enumerate(lead):
        events.reasoning(index, item)
    for offset, item in enumerate(items):
        events.call(len(lead) + offset, item)
    events.add("response.completed", response=body)
    return events.reply()


def failed_stream(code: str, message: str, *, after_text: str = "") -> Reply:
    """A stream that starts (optionally some text) and ends in ``response.failed``."""
    seed = "failed:" + message
    body = response_body(seed, [], status="failed")
    events = _Events()
    events.start(body)
    if after_text:
        item = _message_item(seed, after_text)
        events.add("response.output_item.added", output_index=0,
                   item={**item, "status": "in_progress", "content": []})
        events.add("response.output_text.delta", item_id=item["id"], output_index=0,
                   content_index=0, delta=after_text, logprobs=[])
    events.add("response.failed",
               response={**body, "error": {"code": code, "message": message}, "usage": None})
    return events.reply()


def error_event_stream(code: str, message: str) -> Reply:
    """A stream that starts, then sends a top-level ``error`` event."""
    body = response_body("error:" + message, [])
    events = _Events()
    events.start(body)
    events.add("error", code=code, message=message, param=None)
    return events.reply()
