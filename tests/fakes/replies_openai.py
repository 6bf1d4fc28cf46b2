"""Realistic OpenAI chat-completions replies for the loopback fake server.

Written by hand in OpenAI's wire shape (as recorded in the corpus: ``obfuscation``
padding on stream chunks, a role-only first chunk, the finish chunk, then a usage-only
chunk with ``choices: []`` and ``data: [DONE]``), not produced by tollway's own
reverse-direction code, so tests that use them check tollway against the wire format
rather than against itself.

Usage: pass a ``tollway.core.types.Usage`` to pin the numbers (cache reads and reasoning
included: OpenAI's ``prompt_tokens`` counts cached tokens, ``completion_tokens`` counts
reasoning tokens, exactly like the canonical Usage); the default is a small realistic
count with a cache hit, so cost code is exercised on every reply.
"""

from __future__ import annotations

import hashlib
import json
import time
from email.utils import formatdate
from typing import Any

from tests.fakes.server import Reply, sse
from tollway.core.types import Usage

MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1_754_432_618
DEFAULT_USAGE = Usage(input_tokens=1_351, output_tokens=42, cache_read_tokens=1_152)
"""A typical second turn: most of the prompt is a cache hit."""

_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def usage_body(usage: Usage | None = None) -> dict[str, Any]:
    """The ``usage`` object OpenAI sends for ``usage`` (default :data:`DEFAULT_USAGE`)."""
    u = usage or DEFAULT_USAGE
    prompt_details = {"cached_tokens": u.cache_read_tokens, "audio_tokens": u.input_audio_tokens}
    if u.cache_write_tokens:
        prompt_details["cache_write_tokens"] = u.cache_write_tokens
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "audio_tokens": u.output_audio_tokens,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_id(seed: str) -> str:
    """A stable ``chatcmpl-...`` id derived from the content (replies are reproducible)."""
    return "chatcmpl-" + hashlib.sha1(seed.encode()).hexdigest()[:29]


def call_id(name: str, index: int) -> str:
    return "call_" + hashlib.sha1(f"{name}:{index}".encode()).hexdigest()[:24]


def text_reply(text: str, *, usage: Usage | None = None, model: str = MODEL,
               service_tier: str | None = "default") -> Reply:
    """A non-streamed answer with ``text`` and ``finish_reason: stop``; ``service_tier``
    is the tier OpenAI reports having served it at (None: a compatible server that
    does not say)."""
    message = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    return Reply(200, _completion(text, message, "stop", usage, model, service_tier))


def tool_call_reply(
    calls: list[tuple[str, dict[str, Any]]], *, usage: Usage | None = None, model: str = MODEL
) -> Reply:
    """A non-streamed answer calling each ``(name, arguments)`` (parallel when several);
    ids come from :func:`call_id`."""
    message = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {
                "id": call_id(name, i),
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(calls)
        ],
    }
    return Reply(200, _completion(repr(calls), message, "tool_calls", usage, model))


def text_stream(text_pieces: list[str], *, usage: Usage | None = None, model: str = MODEL,
                service_tier: str | None = "default") -> Reply:
    """A streamed answer: one content delta per piece, then finish, usage and [DONE];
    every chunk names ``service_tier`` (None: not at all)."""
    cid = completion_id("".join(text_pieces))
    chunks = [_chunk(cid, model, {"role": "assistant", "content": "", "refusal": None},
                     tier=service_tier)]
    chunks += [_chunk(cid, model, {"content": piece}, tier=service_tier) for piece in text_pieces]
    closing = _close(chunks, cid, model, "stop", usage, service_tier)
    return Reply(200, chunks=sse(*closing, "[DONE]"))


def tool_call_stream(
    calls: list[tuple[str, dict[str, Any]]], *, usage: Usage | None = None, model: str = MODEL
) -> Reply:
    """A streamed answer calling each ``(name, arguments)``: per call a first delta with
    id and name (empty arguments), then the argument JSON in two fragments, as OpenAI
    splits it."""
    cid = completion_id(repr(calls))
    chunks = [_chunk(cid, model, {"role": "assistant", "content": None})]
    for i, (name, args) in enumerate(calls):
        first = {
            "index": i,
            "id": call_id(name, i),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        chunks.append(_chunk(cid, model, {"tool_calls": [first]}))
        raw = json.dumps(args)
        half = len(raw) // 2
        for fragment in (raw[:half], raw[half:]):
            delta = {"tool_calls": [{"index": i, "function": {"arguments": fragment}}]}
            chunks.append(_chunk(cid, model, delta))
    return Reply(200, chunks=sse(*_close(chunks, cid, model, "tool_calls", usage), "[DONE]"))


def error_reply(
    status: int,
    message: str,
    *,
    retry_after: float | str | None = None,
    code: str | None = None,
    type: str | None = None,
) -> Reply:
    """An OpenAI error body for ``status`` with the ``type`` / ``code`` OpenAI uses for
    it (override with ``code`` / ``type``, e.g. ``code="context_length_exceeded"`` or
    ``"insufficient_quota"``). ``retry_after`` seconds (a number) or an HTTP date
    (``"date"`` means 30 s from now) goes in the ``retry-after`` header."""
    default_type, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    error = {
        "message": message,
        "type": type or default_type,
        "param": None,
        "code": code if code is not None else default_code,
    }
    headers: dict[str, str] = {}
    if retry_after == "date":
        headers["retry-after"] = formatdate(time.time() + 30, usegmt=True)
    elif retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return Reply(status, {"error": error}, headers=headers)


def _completion(
    seed: str, message: dict[str, Any], finish: str, usage: Usage | None, model: str,
    tier: str | None = "default",
) -> dict[str, Any]:
    body = {
        "id": completion_id(seed),
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_body(usage),
        "service_tier": tier,
        "system_fingerprint": "fp_560af6e559",
    }
    if tier is None:
        del body["service_tier"]
    return body


def _chunk(
    cid: str, model: str, delta: dict[str, Any], finish: str | None = None,
    tier: str | None = "default",
) -> dict[str, Any]:
    chunk = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "service_tier": tier,
        "system_fingerprint": "fp_560af6e559",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
        "obfuscation": "Xq3",
    }
    if tier is None:
        del chunk["service_tier"]
    return chunk


def _close(
    chunks: list[dict[str, Any]], cid: str, model: str, finish: str, usage: Usage | None,
    tier: str | None = "default",
) -> list[dict[str, Any]]:
    final = _chunk(cid, model, {}, finish, tier)
    last = {**_chunk(cid, model, {}, tier=tier), "choices": [], "usage": usage_body(usage)}
    return [*chunks, final, last]
