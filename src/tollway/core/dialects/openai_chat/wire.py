"""Field mappings both directions of the OpenAI chat dialect share: usage, finish
reasons, the fields compatible servers put reasoning text in.

Kept apart from the dialect class so the reverse direction (gateway: canonical ->
OpenAI JSON) and the forward one (provider JSON -> canonical) read the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.core.types import FinishReason, Usage, service_tier_of

DIALECT_NAME = "openai_chat"

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
"""OpenAI finish_reason -> canonical; anything else (``eos``, ``end_turn`` from some
compatible servers) means the model stopped normally."""

REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Message / delta fields compatible servers put reasoning text in (DeepSeek, vLLM,
Ollama, OpenRouter); OpenAI itself never returns reasoning text in chat completions."""


def finish_reason(raw: Any, *, has_tool_calls: bool, refused: bool) -> FinishReason:
    """Canonical finish reason. OpenAI says ``stop`` when ``tool_choice`` forced a named
    function, and some compatible servers always say ``stop``; a turn that carries tool
    calls is reported as ``tool_calls`` so tool loops need not inspect the parts."""
    if refused:
        return "content_filter"
    reason = FINISH_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"
    if reason == "stop" and has_tool_calls:
        return "tool_calls"
    return reason


def usage_from_openai(usage: Mapping[str, Any] | None, service_tier: Any = None) -> Usage:
    """OpenAI usage -> canonical. ``prompt_tokens`` already includes cached tokens and
    ``completion_tokens`` already includes reasoning, which is exactly the canonical
    meaning; the details give the subsets (cached, reasoning, audio, image). DeepSeek
    reports cache hits as ``prompt_cache_hit_tokens`` instead of
    ``prompt_tokens_details.cached_tokens``. ``service_tier``: the body's (the tier
    that served the call), else the one the request asked for."""
    tier = service_tier_of(service_tier)
    if not usage:
        return Usage(service_tier=tier)
    prompt_details = usage.get("prompt_tokens_details") or _NO_DETAILS
    completion_details = usage.get("completion_tokens_details") or _NO_DETAILS
    cache_read = _int(prompt_details.get("cached_tokens"))
    if not cache_read:
        cache_read = _int(usage.get("prompt_cache_hit_tokens"))
    return Usage(
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        cache_read,
        _int(prompt_details.get("cache_write_tokens")),
        0,
        _int(completion_details.get("reasoning_tokens")),
        input_audio_tokens=_int(prompt_details.get("audio_tokens")),
        input_image_tokens=_int(prompt_details.get("image_tokens")),
        output_audio_tokens=_int(completion_details.get("audio_tokens")),
        output_image_tokens=_int(completion_details.get("image_tokens")),
        service_tier=tier,
    )


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """Canonical usage -> the OpenAI ``usage`` object (details included, so a client
    can price cached input and reasoning output)."""
    prompt_details: dict[str, Any] = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    completion_details: dict[str, Any] = {"reasoning_tokens": usage.reasoning_tokens}
    for details, key, value in (
        (prompt_details, "audio_tokens", usage.input_audio_tokens),
        (prompt_details, "image_tokens", usage.input_image_tokens),
        (completion_details, "audio_tokens", usage.output_audio_tokens),
        (completion_details, "image_tokens", usage.output_image_tokens),
    ):
        if value:
            details[key] = value
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": completion_details,
    }


_NO_DETAILS: Mapping[str, Any] = {}


def _int(value: Any) -> int:
    """A token count; anything that is not a plain int (None, a bool, a string) is 0."""
    return value if value.__class__ is int else 0
