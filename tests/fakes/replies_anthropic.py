"""Scripted replies in the Anthropic Messages API wire format, for the loopback fake server.

Build a :class:`~tests.fakes.server.Reply` from canonical content::

    fake.add(text_reply("Hello!"), tool_call_reply([("get_weather", {"city": "Paris"})]))
    fake.add(text_stream(["Hel", "lo!"], usage=wire_usage(input_tokens=30, output_tokens=3)))
    fake.add(error_reply(429, "slow down", retry_after=2))

Usage is Anthropic's wire shape (:func:`wire_usage`). The default is a realistic turn
with a cached prefix: 212 uncached input tokens + 1536 read from the cache + 0 written,
so tollway's canonical ``input_tokens`` is 1748 and ``cache_read_tokens`` 1536; the output
count is derived from the text (about 4 characters per token), and with thinking the
thinking part of it is reported as ``thinking_tokens``. Streams follow the real
protocol: ``message_start`` (input and cache counts, output 1), a ``ping``, content
blocks with deltas (the first ``input_json_delta`` of a tool call is empty), then
``message_delta`` with the stop reason and the cumulative output count, ``message_stop``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tests.fakes.server import Reply, sse
from tollway.core.types import Usage

DEFAULT_MODEL = "claude-sonnet-4-5-20250929"


def wire_usage(
    input_tokens: int = 212,
    output_tokens: int | None = None,
    *,
    cache_read: int = 1536,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    thinking_tokens: int = 0,
    web_searches: int = 0,
) -> dict[str, Any]:
    """An Anthropic ``usage`` object. ``input_tokens`` is the *uncached* part (Anthropic's
    meaning); ``cache_write_1h`` is the part of ``cache_write`` cached for one hour.
    Without ``output_tokens`` the reply builders fill in a count derived from the text."""
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
            "ephemeral_1h_input_tokens": cache_write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    if thinking_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    if web_searches:
        usage["server_tool_use"] = {"web_search_requests": web_searches, "web_fetch_requests": 0}
    return usage


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def from_usage(usage: Usage) -> dict[str, Any]:
    """The Anthropic wire usage for a canonical Usage (so other tests can pin numbers the
    same way for every dialect): Anthropic's ``input_tokens`` excludes cache traffic."""
    return wire_usage(
        usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
        usage.output_tokens,
        cache_read=usage.cache_read_tokens,
        cache_write=usage.cache_write_tokens,
        cache_write_1h=usage.cache_write_1h_tokens,
        thinking_tokens=usage.reasoning_tokens,
        web_searches=usage.units.get("web_search", 0),
    )


def _usage_for(
    usage: Mapping[str, Any] | Usage | None, output_text: str, thinking_text: str = ""
) -> dict[str, Any]:
    if isinstance(usage, Usage):
        out = from_usage(usage)
    elif usage is not None:
        out = dict(usage)
    else:
        out = wire_usage(thinking_tokens=_tokens(thinking_text) if thinking_text else 0)
    if out.get("output_tokens") is None:
        out["output_tokens"] = _tokens(output_text)
    return out


def _message_id(seed: str) -> str:
    return "msg_01" + hashlib.sha256(seed.encode()).hexdigest()[:22]


def tool_id(name: str, number: int) -> str:
    """The id the builders give the ``number``-th call (0-based) to tool ``name``."""
    return "toolu_01" + hashlib.sha256(f"{name}:{number}".encode()).hexdigest()[:22]


def _message(
    content: list[dict[str, Any]], stop_reason: str | None, usage: dict[str, Any], model: str
) -> dict[str, Any]:
    return {
        "id": _message_id(json.dumps(content, sort_keys=True)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def text_reply(
    text: str,
    *,
    usage: Mapping[str, Any] | Usage | None = None,
    model: str = DEFAULT_MODEL,
    thinking: str | None = None,
    signature: str = "EqQBCkYIBxgCKkBthinking-signature-for-tests==",
    stop_reason: str = "end_turn",
) -> Reply:
    """A non-streamed answer; with ``thinking``, a signed thinking block comes first."""
    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append({"type": "thinking", "thinking": thinking, "signature": signature})
    content.append({"type": "text", "text": text})
    usage_out = _usage_for(usage, (thinking or "") + text, thinking or "")
    body = _message(content, stop_reason, usage_out, model)
    return Reply(200, body)


def tool_call_reply(
    calls: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    usage: Mapping[str, Any] | Usage | None = None,
    model: str = DEFAULT_MODEL,
    text: str | None = None,
) -> Reply:
    """A non-streamed answer asking for tool calls (optionally preceded by text)."""
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    for number, (name, arguments) in enumerate(calls):
        call_id = tool_id(name, number)
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": dict(arguments)})
    produced = (text or "") + "".join(json.dumps(dict(a)) for _, a in calls)
    body = _message(content, "tool_use", _usage_for(usage, produced), model)
    return Reply(200, body)


def _stream_reply(
    blocks: list[list[dict[str, Any]]],
    stop_reason: str,
    usage: dict[str, Any],
    model: str,
    ping: bool,
) -> Reply:
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("server_tool_use", None)
    start_usage.pop("output_tokens_details", None)
    message = _message([], None, start_usage, model)
    message["id"] = _message_id(json.dumps(blocks, sort_keys=True))
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": message})
    ]
    for number, block_events in enumerate(blocks):
        for event in block_events:
            events.append((event["type"], {**event, "index": number}))
        if number == 0 and ping:
            events.append(("ping", {"type": "ping"}))
    final_usage = {
        key: usage[key]
        for key in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
            "output_tokens_details",
            "server_tool_use",
        )
        if key in usage
    }
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": final_usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return Reply(200, chunks=sse(*(e[1] for e in events), event_names=[e[0] for e in events]))


def _text_block(pieces: Sequence[str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"type": "content_block_start", "content_block": {"type": "text", "text": ""}}
    ]
    events += [
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": piece}}
        for piece in pieces
    ]
    events.append({"type": "content_block_stop"})
    return events


def text_stream(
    text_pieces: Sequence[str],
    *,
    usage: Mapping[str, Any] | Usage | None = None,
    model: str = DEFAULT_MODEL,
    thinking: Sequence[str] | None = None,
    signature: str = "EqQBCkYIBxgCKkBthinking-signature-for-tests==",
    ping: bool = True,
    stop_reason: str = "end_turn",
) -> Reply:
    """A streamed answer in ``text_pieces``; with ``thinking`` pieces, a thinking block
    (closed by its ``signature_delta``) comes first."""
    blocks: list[list[dict[str, Any]]] = []
    if thinking is not None:
        events: list[dict[str, Any]] = [
            {
                "type": "content_block_start",
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            }
        ]
        events += [
            {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": piece}}
            for piece in thinking
        ]
        signed = {"type": "signature_delta", "signature": signature}
        events.append({"type": "content_block_delta", "delta": signed})
        events.append({"type": "content_block_stop"})
        blocks.append(events)
    blocks.append(_text_block(text_pieces))
    thought = "".join(thinking or ())
    usage_out = _usage_for(usage, thought + "".join(text_pieces), thought)
    return _stream_reply(blocks, stop_reason, usage_out, model, ping)


def tool_call_stream(
    calls: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    usage: Mapping[str, Any] | Usage | None = None,
    model: str = DEFAULT_MODEL,
    text: str | None = None,
    ping: bool = True,
) -> Reply:
    """A streamed answer asking for tool calls; each call's JSON arrives in two fragments
    after the protocol's initial empty one."""
    blocks: list[list[dict[str, Any]]] = []
    if text:
        blocks.append(_text_block([text]))
    for number, (name, arguments) in enumerate(calls):
        raw = json.dumps(dict(arguments))
        half = len(raw) // 2
        start = {"type": "tool_use", "id": tool_id(name, number), "name": name, "input": {}}
        events: list[dict[str, Any]] = [{"type": "content_block_start", "content_block": start}]
        for fragment in ("", raw[:half], raw[half:]):
            events.append(
                {
                    "type": "content_block_delta",
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                }
            )
        events.append({"type": "content_block_stop"})
        blocks.append(events)
    produced = (text or "") + "".join(json.dumps(dict(a)) for _, a in calls)
    return _stream_reply(blocks, "tool_use", _usage_for(usage, produced), model, ping)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_reply(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    error_type: str | None = None,
) -> Reply:
    """An Anthropic error response; the error type follows the status unless given."""
    kind = error_type or _ERROR_TYPES.get(status, "api_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011" + hashlib.sha256(message.encode()).hexdigest()[:21],
    }
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    return Reply(status, body, headers=headers)


def error_stream(
    message: str = "Overloaded",
    *,
    error_type: str = "overloaded_error",
    text_before: str = "Partial",
    model: str = DEFAULT_MODEL,
) -> Reply:
    """A stream that starts answering, then fails with an in-stream ``error`` event (HTTP
    status already 200), as Anthropic does when it is overloaded mid-answer."""
    usage = wire_usage(output_tokens=1)
    message_start = {"type": "message_start", "message": _message([], None, usage, model)}
    events = [
        ("message_start", message_start),
        *((e["type"], {**e, "index": 0}) for e in _text_block([text_before])[:2]),
        ("error", {"type": "error", "error": {"type": error_type, "message": message}}),
    ]
    return Reply(200, chunks=sse(*(e[1] for e in events), event_names=[e[0] for e in events]))
