"""Realistic Gemini ``generateContent`` / ``streamGenerateContent`` replies for the
loopback fake server.

Written by hand in Gemini's wire shape as recorded in the corpus (``responseId``,
``modelVersion``, ``usageMetadata`` with ``thoughtsTokenCount`` / ``cachedContentTokenCount``,
a ``thoughtSignature`` on the first function call, SSE chunks separated by CRLF, running
usage totals on every chunk, ``finishReason`` only on the last), not produced by tollway's
own code, so tests that use them check tollway against the wire format.

Usage: pass a canonical ``tollway.core.types.Usage`` to pin the numbers. It is written as
Gemini reports it: ``promptTokenCount`` = input (cache reads included, as Gemini counts
them), ``cachedContentTokenCount`` = cache reads, ``thoughtsTokenCount`` = reasoning,
``candidatesTokenCount`` = output minus reasoning. So parsing the reply gives back the
same Usage. The default has a cache hit and reasoning, so cost code is exercised on
every reply.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from tests.fakes.server import Reply, sse
from tollway.core.types import Usage

MODEL = "gemini-2.5-flash"
DEFAULT_USAGE = Usage(input_tokens=1_204, output_tokens=311, cache_read_tokens=1_024,
                      reasoning_tokens=268)
"""A typical second turn on a thinking model: most of the prompt is cached, most of the
output is thinking."""
SIGNATURE = "CiQBjz1rX+z7CAOCNB0aLI7ypObFNPY+MRlb2NP1K12YF4ii184KZgGPPWtf8hW="
"""A thoughtSignature-shaped opaque string (base64, as Gemini sends them)."""

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def usage_metadata(usage: Usage | None = None) -> dict[str, Any]:
    """The ``usageMetadata`` object for ``usage`` (default :data:`DEFAULT_USAGE`)."""
    u = usage or DEFAULT_USAGE
    candidates = u.output_tokens - u.reasoning_tokens
    meta: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": u.input_tokens + u.output_tokens,
        "promptTokensDetails": _details(u.input_tokens, AUDIO=u.input_audio_tokens,
                                        IMAGE=u.input_image_tokens, VIDEO=u.input_video_tokens),
    }
    if u.output_audio_tokens or u.output_image_tokens or u.output_video_tokens:
        meta["candidatesTokensDetails"] = _details(
            candidates, AUDIO=u.output_audio_tokens, IMAGE=u.output_image_tokens,
            VIDEO=u.output_video_tokens,
        )
    if u.cache_read_tokens:
        meta["cachedContentTokenCount"] = u.cache_read_tokens
        meta["cacheTokensDetails"] = _details(u.cache_read_tokens, AUDIO=u.cache_audio_read_tokens,
                                              IMAGE=u.cache_image_read_tokens)
    if u.reasoning_tokens:
        meta["thoughtsTokenCount"] = u.reasoning_tokens
    return meta


def _details(total: int, **modalities: int) -> list[dict[str, Any]]:
    """A ``*TokensDetails`` list: TEXT holds what the other modalities leave."""
    text = total - sum(modalities.values())
    out = [{"modality": "TEXT", "tokenCount": text}] if text or not any(modalities.values()) else []
    out += [{"modality": m, "tokenCount": n} for m, n in modalities.items() if n]
    return out


def response_id(seed: str) -> str:
    """A responseId-shaped string, stable for a given seed (so tests can predict the
    ids tollway derives from it)."""
    return hashlib.sha256(seed.encode()).hexdigest()[:23]


def _body(parts: list[dict[str, Any]], usage: Usage | None, model: str, rid: str,
          finish: str = "STOP") -> dict[str, Any]:
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish,
                        "index": 0}],
        "usageMetadata": usage_metadata(usage),
        "modelVersion": model,
        "responseId": rid,
    }


def text_reply(text: str, *, usage: Usage | None = None, model: str = MODEL,
               thinking: str | None = None, finish: str = "STOP") -> Reply:
    """A plain answer; with ``thinking`` a thought summary part comes first and the
    answer carries a thoughtSignature (as Gemini 2.5 / 3 send with includeThoughts)."""
    parts: list[dict[str, Any]] = []
    if thinking is not None:
        parts.append({"text": thinking, "thought": True})
        parts.append({"text": text, "thoughtSignature": SIGNATURE})
    else:
        parts.append({"text": text})
    return Reply(200, _body(parts, usage, model, response_id(text), finish))


def tool_call_reply(calls: list[tuple[str, dict[str, Any]]], *, usage: Usage | None = None,
                    model: str = MODEL, with_ids: bool = False) -> Reply:
    """Function calls (parallel when several). Like Gemini 3, only the first call carries
    a thoughtSignature; ``with_ids`` adds Gemini 3 style call ids (``call-0``...)."""
    parts = []
    for index, (name, args) in enumerate(calls):
        call: dict[str, Any] = {"name": name, "args": args}
        if with_ids:
            call["id"] = f"call-{index}"
        part: dict[str, Any] = {"functionCall": call}
        if index == 0:
            part["thoughtSignature"] = SIGNATURE
        parts.append(part)
    rid = response_id(json.dumps(calls))
    return Reply(200, _body(parts, usage, model, rid))


def _running(usage: Usage | None, steps: int) -> list[dict[str, Any]]:
    """Running usage totals for ``steps`` chunks: prompt and thoughts from the first
    chunk, candidates growing to the final count (Gemini's shape)."""
    u = usage or DEFAULT_USAGE
    final = usage_metadata(u)
    out = []
    for step in range(1, steps + 1):
        meta = dict(final)
        candidates = (u.output_tokens - u.reasoning_tokens) * step // steps
        meta["candidatesTokenCount"] = candidates
        meta["totalTokenCount"] = u.input_tokens + u.reasoning_tokens + candidates
        out.append(meta)
    return out


def text_stream(text_pieces: list[str], *, usage: Usage | None = None,
                model: str = MODEL) -> Reply:
    """A streamed answer: one chunk per piece, running usage totals on each, the last
    chunk with ``finishReason`` (CRLF-separated, as Gemini sends)."""
    rid = response_id("".join(text_pieces))
    metas = _running(usage, len(text_pieces))
    chunks = []
    for index, piece in enumerate(text_pieces):
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"},
                                     "index": 0}
        if index == len(text_pieces) - 1:
            candidate["finishReason"] = "STOP"
        chunks.append({"candidates": [candidate], "usageMetadata": metas[index],
                       "modelVersion": model, "responseId": rid})
    return Reply(200, chunks=sse(*chunks, crlf=True))


def tool_call_stream(calls: list[tuple[str, dict[str, Any]]], *, usage: Usage | None = None,
                     model: str = MODEL) -> Reply:
    """Streamed function calls: Gemini sends each call whole, all in one chunk, with the
    finishReason on it."""
    rid = response_id(json.dumps(calls))
    parts = []
    for index, (name, args) in enumerate(calls):
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if index == 0:
            part["thoughtSignature"] = SIGNATURE
        parts.append(part)
    chunk = {"candidates": [{"content": {"parts": parts, "role": "model"},
                             "finishReason": "STOP", "index": 0}],
             "usageMetadata": usage_metadata(usage), "modelVersion": model, "responseId": rid}
    return Reply(200, chunks=sse(chunk, crlf=True))


def error_reply(status: int, message: str, *, retry_after: float | None = None) -> Reply:
    """A Google error object. For 429 with ``retry_after`` the wait is in a RetryInfo
    detail (``retryDelay: "7s"``), where Gemini puts it (it sends no Retry-After header)."""
    error: dict[str, Any] = {"code": status, "message": message,
                             "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    if retry_after is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
        ]
    return Reply(status, {"error": error})


IMAGE_MODEL = "gemini-2.5-flash-image"
IMAGE_TOKENS = 1_290
"""What one 1024x1024 image costs in output tokens on Gemini 2.5 Flash Image."""


def _image_parts(image: bytes, text: str, signed: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"text": text})
    inline: dict[str, Any] = {"inlineData": {"mimeType": "image/png",
                                             "data": base64.b64encode(image).decode("ascii")}}
    if signed:
        inline["thoughtSignature"] = SIGNATURE
    parts.append(inline)
    return parts


def _image_usage(prompt_tokens: int, text: str) -> dict[str, Any]:
    text_tokens = max(1, len(text) // 4) if text else 0
    candidates = IMAGE_TOKENS + text_tokens
    details = [{"modality": "IMAGE", "tokenCount": IMAGE_TOKENS}]
    if text_tokens:
        details.insert(0, {"modality": "TEXT", "tokenCount": text_tokens})
    return {"promptTokenCount": prompt_tokens, "candidatesTokenCount": candidates,
            "totalTokenCount": prompt_tokens + candidates,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
            "candidatesTokensDetails": details}


def image_reply(image: bytes, *, text: str = "", prompt_tokens: int = 14,
                model: str = IMAGE_MODEL, signed: bool = False) -> Reply:
    """An image model's answer to ``responseModalities: [TEXT, IMAGE]``: optional text,
    then the picture as an ``inlineData`` part; ``candidatesTokensDetails`` gives the
    IMAGE tokens (1,290 for a 1024x1024 image); ``signed`` adds a thoughtSignature to the
    image part (Gemini 3 image models sign their images)."""
    rid = response_id("image:" + text)
    parts = _image_parts(image, text, signed)
    body = _body(parts, None, model, rid)
    body["usageMetadata"] = _image_usage(prompt_tokens, text)
    return Reply(200, body)


def image_stream(image: bytes, *, text: str = "", prompt_tokens: int = 14,
                 model: str = IMAGE_MODEL) -> Reply:
    """The same answer streamed: the text chunk first, then the whole image in the last
    chunk with the finishReason (Gemini never splits inlineData across chunks)."""
    rid = response_id("image:" + text)
    usage = _image_usage(prompt_tokens, text)
    chunks = []
    if text:
        early = dict(usage, candidatesTokenCount=0, totalTokenCount=prompt_tokens)
        early.pop("candidatesTokensDetails")
        chunks.append({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                       "index": 0}],
                       "usageMetadata": early, "modelVersion": model, "responseId": rid})
    chunks.append({"candidates": [{"content": {"parts": _image_parts(image, "", False),
                                               "role": "model"},
                                   "finishReason": "STOP", "index": 0}],
                   "usageMetadata": usage, "modelVersion": model, "responseId": rid})
    return Reply(200, chunks=sse(*chunks, crlf=True))
