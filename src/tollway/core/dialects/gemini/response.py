"""Gemini response bodies and SSE chunks -> canonical Response / stream events.

How Gemini parts become canonical parts (the same in both paths):

- ``text`` -> Text; ``text`` + ``thought: true`` -> Thinking(provider="gemini");
  ``functionCall`` -> ToolCall (args as a dict). A ``thoughtSignature`` on any of them
  goes to that part's ``provider_data["gemini"]["thoughtSignature"]`` so the next
  request returns it on the same part.
- Gemini 2 function calls carry no id; tollway makes a deterministic one from the
  response id and the call's position (``gemini-call-<responseId>-<n>``), identical in
  the streamed and non-streamed answer, and leaves it out when sending the call back.
  Gemini 3 ids are kept.
- A generated image (``inlineData``, not a thought, asked for with
  ``responseModalities: IMAGE``) -> Image (bytes decoded, its MIME type; a signature on
  it goes back on it); its output tokens are ``candidatesTokensDetails`` IMAGE, which
  genai-prices rates apart from text.
- Parts tollway has no canonical type for (server-side ``toolCall`` / ``toolResponse``,
  ``executableCode``, ``codeExecutionResult``, the interim images of a thinking image
  model (``inlineData`` with ``thought: true``), a bare ``thoughtSignature``) become an empty Thinking(provider="gemini") holding the raw part
  in ``provider_data["gemini"]["part"]``: Gemini gets it back verbatim (signature
  included), every other dialect drops it as foreign reasoning.
- Grounding / URL-context / citation metadata, ``finishMessage``, safety ratings and the
  service tier go to ``Response.provider_data["gemini"]``.

A streamed text part may be cut across many chunks; consecutive text chunks merge into
one part, and a signature arriving on any of them (Gemini 2.5 sends it on the first,
Gemini 3 on a trailing empty chunk) belongs to that merged part, which is what the
non-streamed answer holds. A second signature starts a new part.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from tollway.core.dialects.base import SSEEvent
from tollway.core.dialects.gemini.errors import error_from_payload
from tollway.core.dialects.gemini.request import DIALECT_NAME, GENERATED_ID_PREFIX
from tollway.core.errors import ContentFilterError, StreamError, scrub
from tollway.core.types import (
    FinishEvent,
    FinishReason,
    Image,
    ImageEvent,
    Part,
    Response,
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
    service_tier_of,
)

FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "LANGUAGE": "error",
    "NO_IMAGE": "error",
    "IMAGE_OTHER": "error",
    "OTHER": "error",
}
"""Gemini ``finishReason`` -> canonical; STOP with function calls is ``tool_calls``,
and a reason not listed here (a future one) maps to ``error``."""

_CANDIDATE_METADATA = (
    "groundingMetadata",
    "urlContextMetadata",
    "citationMetadata",
    "finishMessage",
    "safetyRatings",
    "avgLogprobs",
    "logprobsResult",
)
_USAGE_METADATA = ("serviceTier", "trafficType")


def finish_reason(raw: Any, has_calls: bool) -> FinishReason:
    if raw is None or raw == "FINISH_REASON_UNSPECIFIED":
        return "tool_calls" if has_calls else "stop"
    if raw == "STOP":
        return "tool_calls" if has_calls else "stop"
    return FINISH_REASONS.get(str(raw), "error")


def usage_from_metadata(
    meta: Mapping[str, Any] | None,
    grounding: Any = None,
    model: str = "",
    requested_tier: str | None = None,
) -> Usage:
    """DESIGN.md usage: input = prompt + tool-use prompt (cached content is already part
    of the prompt count); output = candidates + thoughts. The modality details
    (``promptTokensDetails`` and ``toolUsePromptTokensDetails`` for input,
    ``cacheTokensDetails`` for cached input, ``candidatesTokensDetails`` for output) give
    the audio / image / video subsets (a DOCUMENT is billed as image, as genai-prices
    reads it); Google Search grounding is ``units["web_search"]``, counted the way Google
    bills ``model`` (:func:`web_search_units`); ``serviceTier`` (Vertex: ``trafficType``
    ``ON_DEMAND_FLEX`` / ``ON_DEMAND_PRIORITY``), else the request's tier, is the
    service tier."""
    meta = meta or {}
    thoughts = _int(meta.get("thoughtsTokenCount"))
    prompt = _modalities(meta.get("promptTokensDetails"), meta.get("toolUsePromptTokensDetails"))
    cached = _modalities(meta.get("cacheTokensDetails"))
    output = _modalities(meta.get("candidatesTokensDetails"))
    raw_tier = meta.get("serviceTier") or _TRAFFIC_TIERS.get(str(meta.get("trafficType")))
    usage = Usage(
        input_tokens=_int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount")),
        output_tokens=_int(meta.get("candidatesTokenCount")) + thoughts,
        cache_read_tokens=_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
        input_audio_tokens=prompt.get("AUDIO", 0),
        input_image_tokens=prompt.get("IMAGE", 0),
        input_video_tokens=prompt.get("VIDEO", 0),
        cache_audio_read_tokens=cached.get("AUDIO", 0),
        cache_image_read_tokens=cached.get("IMAGE", 0),
        output_audio_tokens=output.get("AUDIO", 0),
        output_image_tokens=output.get("IMAGE", 0),
        output_video_tokens=output.get("VIDEO", 0),
        service_tier=service_tier_of(raw_tier) if raw_tier else requested_tier,
    )
    searches = web_search_units(grounding, model)
    if searches:
        usage.units["web_search"] = searches
    return usage


_TRAFFIC_TIERS = {"ON_DEMAND_FLEX": "flex", "ON_DEMAND_PRIORITY": "priority"}
"""Vertex reports the tier as ``trafficType`` (it has no ``serviceTier``)."""


def _modalities(*details: Any) -> dict[str, int]:
    """``[{"modality": "AUDIO", "tokenCount": 12}, ...]`` lists summed per modality
    (DOCUMENT counted as IMAGE)."""
    out: dict[str, int] = {}
    for listed in details:
        if not isinstance(listed, list):
            continue
        for item in listed:
            if not isinstance(item, Mapping):
                continue
            modality = item.get("modality")
            if modality == "DOCUMENT":
                modality = "IMAGE"
            if isinstance(modality, str):
                out[modality] = out.get(modality, 0) + _int(item.get("tokenCount"))
    return out


def web_search_count(grounding: Any) -> int:
    """Google Search queries the model ran (``groundingMetadata.webSearchQueries``;
    Gemini lists an empty string for a grounding pass without a query)."""
    if not isinstance(grounding, Mapping):
        return 0
    queries = grounding.get("webSearchQueries")
    if not isinstance(queries, list):
        return 0
    return sum(1 for q in queries if isinstance(q, str) and q.strip())


_GENERATION = re.compile(r"gemini-(\d+)(?:[.-]|$)")


def bills_grounding_per_query(model: str) -> bool:
    """Google bills Search grounding per search query from Gemini 3 on, and per grounded
    prompt (one per request that searched, whatever the number of queries) before it.
    A name without a generation number (``gemini-flash-latest``) is a current model:
    per query."""
    found = _GENERATION.search(model.rsplit("/", 1)[-1])
    return found is None or int(found.group(1)) >= 3


def web_search_units(grounding: Any, model: str) -> int:
    """What Google bills for the Search grounding of one answer from ``model``: the
    number of queries (Gemini 3 and later), else 1 when the model searched at all."""
    queries = web_search_count(grounding)
    if not queries or bills_grounding_per_query(model):
        return queries
    return 1


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def generated_call_id(response_id: str | None, index: int) -> str:
    return (
        f"{GENERATED_ID_PREFIX}{response_id}-{index}"
        if response_id
        else (f"{GENERATED_ID_PREFIX}{index}")
    )


def raise_for_payload(body: Mapping[str, Any]) -> None:
    """An error object or a blocked prompt in a 200 body / stream chunk is raised as
    the typed error (a blocked prompt has no candidates: ContentFilterError)."""
    error = body.get("error")
    if isinstance(error, Mapping):
        raise error_from_payload(None, error, json.dumps(body)[:2000])
    if body.get("candidates"):
        return
    feedback = body.get("promptFeedback")
    if isinstance(feedback, Mapping) and feedback.get("blockReason"):
        reason = str(feedback["blockReason"])
        raise ContentFilterError(
            f"Gemini blocked the prompt ({reason}); no answer was generated: rephrase the "
            "prompt or adjust safetySettings",
            status=200,
            provider=DIALECT_NAME,
            code=reason,
            body=json.dumps(feedback)[:2000],
        )


def _signature_data(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    signature = raw.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        return {DIALECT_NAME: {"thoughtSignature": signature}}
    return None


def _opaque(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {DIALECT_NAME: {"part": dict(raw)}}


def _is_text(raw: Mapping[str, Any]) -> bool:
    return isinstance(raw.get("text"), str)


def generated_image(raw: Mapping[str, Any]) -> Image | None:
    """A model-generated ``inlineData`` image part as an Image, or None when the part
    is something else (a thought image, audio, undecodable data: kept opaque)."""
    inline = raw.get("inlineData")
    if not isinstance(inline, Mapping) or raw.get("thought") is True:
        return None
    mime = inline.get("mimeType")
    data = inline.get("data")
    if not isinstance(mime, str) or not mime.startswith("image/") or not isinstance(data, str):
        return None
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return Image(data=decoded, media_type=mime, provider_data=_signature_data(raw))


def parts_from_wire(raw_parts: Any, response_id: str | None) -> list[Part]:
    parts: list[Part] = []
    calls = 0
    for raw in raw_parts if isinstance(raw_parts, list) else ():
        if not isinstance(raw, Mapping):
            continue
        signed = _signature_data(raw)
        call = raw.get("functionCall")
        if isinstance(call, Mapping):
            call_id = call.get("id") or generated_call_id(response_id, calls)
            calls += 1
            raw_args = call.get("args")
            args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
            name = str(call.get("name", ""))
            parts.append(ToolCall.from_arguments(str(call_id), name, args, signed))
        elif _is_text(raw) and raw.get("thought") is True:
            parts.append(Thinking(raw["text"], provider=DIALECT_NAME, provider_data=signed))
        elif _is_text(raw):
            if raw["text"] or signed:
                parts.append(Text(raw["text"], signed))
        elif (image := generated_image(raw)) is not None:
            parts.append(image)
        else:
            parts.append(Thinking("", provider=DIALECT_NAME, provider_data=_opaque(raw)))
    return parts


def _metadata(body: Mapping[str, Any], candidate: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: candidate[key] for key in _CANDIDATE_METADATA if key in candidate}
    if "promptFeedback" in body:
        out["promptFeedback"] = body["promptFeedback"]
    usage = body.get("usageMetadata")
    if isinstance(usage, Mapping):
        out.update({key: usage[key] for key in _USAGE_METADATA if key in usage})
    return out


def parse_body(body: Mapping[str, Any], model: str, requested_tier: str | None = None) -> Response:
    raise_for_payload(body)
    response_id = body.get("responseId") if isinstance(body.get("responseId"), str) else None
    candidates = body.get("candidates") or []
    first = candidates[0] if candidates else None
    candidate: Mapping[str, Any] = first if isinstance(first, Mapping) else {}
    content = candidate.get("content")
    raw_parts = content.get("parts") if isinstance(content, Mapping) else None
    parts = parts_from_wire(raw_parts, response_id)
    has_calls = any(isinstance(p, ToolCall) for p in parts)
    # No candidate and no block reason: nothing was generated.
    finish = finish_reason(candidate.get("finishReason"), has_calls) if candidates else "error"
    metadata = _metadata(body, candidate)
    served = str(body.get("modelVersion") or model)
    return Response(
        id=response_id or "",
        model=served,
        provider=DIALECT_NAME,
        parts=parts,
        finish_reason=finish,
        usage=usage_from_metadata(
            body.get("usageMetadata"), candidate.get("groundingMetadata"), served, requested_tier
        ),
        provider_data={DIALECT_NAME: metadata} if metadata else None,
    )


class GeminiStreamParser:
    """One ``streamGenerateContent?alt=sse`` stream. Every chunk is a partial
    GenerateContentResponse; ``usageMetadata`` holds running totals (the last one is the
    answer's usage, never a sum); the chunk with ``finishReason`` ends the answer."""

    __slots__ = (
        "_block",
        "_calls",
        "_finished",
        "_grounding",
        "_metadata",
        "_model",
        "_open",
        "_open_signed",
        "_response_id",
        "_started",
        "_tier",
        "_usage_meta",
    )

    def __init__(self, model: str, requested_tier: str | None = None) -> None:
        self._model = model
        self._tier = requested_tier
        self._started = False
        self._response_id: str | None = None
        self._block = -1
        self._open: str | None = None
        self._open_signed = False
        self._calls = 0
        self._finished = False
        self._usage_meta: Mapping[str, Any] | None = None
        self._grounding: Any = None
        self._metadata: dict[str, Any] = {}

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data.strip()
        if not data:
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            raise StreamError(
                "Gemini sent a stream chunk that is not JSON; the stream is corrupt",
                provider=DIALECT_NAME,
                body=scrub(data, 300),
            ) from None
        chunks = chunk if isinstance(chunk, list) else [chunk]
        out: list[StreamEvent] = []
        for item in chunks:
            if not isinstance(item, Mapping):
                raise StreamError(
                    "Gemini sent a stream chunk that is not a JSON object",
                    provider=DIALECT_NAME,
                    body=scrub(data, 300),
                )
            self._chunk(item, out)
        return out

    def close(self) -> list[StreamEvent]:
        if not self._finished:
            raise StreamError(
                "the Gemini stream ended before a chunk with finishReason: the answer is "
                "incomplete (connection cut or the server stopped)",
                provider=DIALECT_NAME,
                model=self._model,
            )
        if self._metadata:
            return [StreamStart(provider_data={DIALECT_NAME: dict(self._metadata)})]
        return []

    # ------------------------------------------------------------------ internals

    def _chunk(self, chunk: Mapping[str, Any], out: list[StreamEvent]) -> None:
        raise_for_payload(chunk)
        if not self._started:
            self._started = True
            rid = chunk.get("responseId")
            self._response_id = rid if isinstance(rid, str) else None
            version = chunk.get("modelVersion")
            if isinstance(version, str) and version:
                self._model = version  # what served the answer: its grounding billing
            out.append(StreamStart(self._response_id, version or None))
        candidates = chunk.get("candidates") or []
        candidate = candidates[0] if candidates and isinstance(candidates[0], Mapping) else {}
        content = candidate.get("content")
        raw_parts = content.get("parts") if isinstance(content, Mapping) else None
        for raw in raw_parts if isinstance(raw_parts, list) else ():
            if isinstance(raw, Mapping):
                self._part(raw, out)
        metadata = _metadata(chunk, candidate)
        grounding = candidate.get("groundingMetadata")
        if grounding:
            self._grounding = grounding
        self._metadata.update({k: v for k, v in metadata.items() if v or k not in self._metadata})
        usage_meta = chunk.get("usageMetadata")
        if isinstance(usage_meta, Mapping):
            self._usage_meta = usage_meta
        if isinstance(usage_meta, Mapping) or (grounding and self._usage_meta is not None):
            out.append(UsageEvent(
                usage_from_metadata(self._usage_meta, self._grounding, self._model, self._tier)
            ))
        reason = candidate.get("finishReason")
        if reason:
            self._finished = True
            out.append(FinishEvent(finish_reason(reason, self._calls > 0)))

    def _part(self, raw: Mapping[str, Any], out: list[StreamEvent]) -> None:
        signed = _signature_data(raw)
        call = raw.get("functionCall")
        if isinstance(call, Mapping):
            index = self._calls
            self._calls += 1
            self._open = None
            raw_args = call.get("args")
            args = raw_args if isinstance(raw_args, dict) else {}
            out.append(
                ToolCallDelta(
                    index,
                    str(call.get("id") or generated_call_id(self._response_id, index)),
                    str(call.get("name", "")),
                    json.dumps(args, separators=(",", ":")),
                    signed,
                )
            )
            return
        if _is_text(raw):
            kind = "thought" if raw.get("thought") is True else "text"
            text = raw["text"]
            if not text and signed is None:
                return
            if self._open != kind or (signed is not None and self._open_signed):
                self._block += 1
                self._open = kind
                self._open_signed = False
            if signed is not None:
                self._open_signed = True
            if kind == "text":
                out.append(TextDelta(text, self._block, signed))
            else:
                out.append(
                    ThinkingDelta(text, self._block, provider=DIALECT_NAME, provider_data=signed)
                )
            return
        self._block += 1
        self._open = None
        image = generated_image(raw)
        if image is not None:
            out.append(ImageEvent(image))
            return
        out.append(
            ThinkingDelta("", self._block, provider=DIALECT_NAME, provider_data=_opaque(raw))
        )
