"""Price recorded real responses (corpus A) and compare with a hand computation.

For each interaction the usage is read from the raw body by small code here (not by
tollway), priced with PriceBook, and compared with an expectation computed by hand from
the published per-million-token prices stated beside it (as bundled in genai-prices
0.2.3). When the dialect modules are present, the same body is also parsed by the
dialect and its ``Response.usage`` must price to the same amount.

Prices in nano-USD per token: $X per million tokens = X * 1000 nano-USD per token.
"""

from __future__ import annotations

import copy
import importlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_dir
from tollway.core.cost.pricing import PriceBook
from tollway.core.types import Usage

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)  # prices as of this date (dated price changes)


def _load(prefix: str) -> dict[str, Any]:
    folder = corpus_dir()
    if not folder.is_dir():
        pytest.skip(f"no corpus at {folder}")
    matches = sorted(folder.glob(f"{prefix}_*.json"))
    if not matches:
        pytest.skip(f"corpus interaction {prefix} not found in {folder}")
    record = json.loads(Path(matches[0]).read_text())
    record["body"] = json.loads(record["response_body"])
    return record


# --------------------------------------------------------------------------- raw usage


def _openai_usage(body: dict[str, Any]) -> Usage:
    u = body["usage"]
    prompt = u.get("prompt_tokens_details") or {}
    completion = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=u["prompt_tokens"],
        output_tokens=u["completion_tokens"],
        cache_read_tokens=prompt.get("cached_tokens") or 0,
        cache_write_tokens=prompt.get("cache_write_tokens") or 0,
        reasoning_tokens=completion.get("reasoning_tokens") or 0,
    )


def _anthropic_usage(body: dict[str, Any]) -> Usage:
    u = body["usage"]
    read = u.get("cache_read_input_tokens") or 0
    write = u.get("cache_creation_input_tokens") or 0
    searches = (u.get("server_tool_use") or {}).get("web_search_requests") or 0
    return Usage(
        input_tokens=u["input_tokens"] + read + write,
        output_tokens=u["output_tokens"],
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=(u.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0),
        reasoning_tokens=(u.get("output_tokens_details") or {}).get("thinking_tokens", 0),
        units={"web_search": searches} if searches else {},
    )


def _gemini_usage(body: dict[str, Any]) -> Usage:
    u = body["usageMetadata"]
    thoughts = u.get("thoughtsTokenCount", 0)
    queries = [
        q
        for c in body.get("candidates", [])
        for q in ((c.get("groundingMetadata") or {}).get("webSearchQueries") or [])
        if q
    ]
    return Usage(
        input_tokens=u["promptTokenCount"] + u.get("toolUsePromptTokenCount", 0),
        output_tokens=u.get("candidatesTokenCount", 0) + thoughts,
        cache_read_tokens=u.get("cachedContentTokenCount", 0),
        reasoning_tokens=thoughts,
        units={"web_search": len(queries)} if queries else {},
    )


RAW_USAGE = {"openai": _openai_usage, "anthropic": _anthropic_usage,
             "gemini": _gemini_usage, "vertex_ai": _gemini_usage}
DIALECTS = {"openai": ("openai_chat", "DIALECT"), "anthropic": ("anthropic", "DIALECT"),
            "gemini": ("gemini", "DIALECT"), "vertex_ai": ("gemini", "VERTEX_DIALECT")}


def _model(body: dict[str, Any]) -> str:
    return body.get("model") or body["modelVersion"]


# (corpus file prefix, tollway provider, expected nano-USD, how it was computed)
CASES = [
    # gpt-5-mini: $0.25 in, $2 out; reasoning is part of completion_tokens
    ("056", "openai", 334 * 250 + 429 * 2_000),
    ("061", "openai", 215 * 250 + 566 * 2_000),
    # gpt-5.6-sol since 2026-08-21: $4 in, $0.40 cached, $20 out (4,020 prompt, 4,012 cached)
    ("060", "openai", 8 * 4_000 + 4_012 * 400 + 4 * 20_000),
    # claude-sonnet-5: $2 in, $0.20 cache read, $2.50 5m write, $4 1h write, $10 out
    ("001", "anthropic", 6 * 2_000 + 574 * 2_500 + 20_443 * 200 + 489 * 10_000),
    ("002", "anthropic", 16 * 2_000 + 7_049 * 2_500 + 13_637 * 200 + 344 * 10_000),
    # claude-sonnet-4-5: $3 in, $15 out, web search $10 / 1,000
    ("003", "anthropic", 7_744 * 3_000 + 353 * 15_000 + 1 * 10_000_000),
    # ... above 200k input every token is at the long-context rates: $6 in, $22.50 out
    ("013", "anthropic", 401_468 * 6_000 + 792 * 22_500 + 10 * 10_000_000),
    # gemini-2.5-flash: $0.30 in, $0.03 cached, $2.50 out (thoughts are output)
    ("037", "gemini", 8 * 300 + 3_512 * 30 + (2 + 42) * 2_500),
    ("036", "gemini", 115 * 300 + 230 * 30 + 37 * 2_500),
    # gemini-2.5-pro (<= 200k): $1.25 in, $10 out; tool-use prompt tokens are input
    ("034", "gemini", 1_106 * 1_250 + (778 + 1_089) * 10_000),
    ("030", "gemini", (15 + 288) * 1_250 + (40 + 257) * 10_000),
    # gemini-3-flash-preview on Vertex: $0.50 in, $3 out, grounding $14 / 1,000 queries
    ("047", "vertex_ai", 125 * 500 + (250 + 456) * 3_000 + 1 * 14_000_000),
]


@pytest.mark.parametrize(("prefix", "provider", "expected"), CASES, ids=[c[0] for c in CASES])
def test_recorded_usage_prices_to_the_hand_computed_cost(
    prefix: str, provider: str, expected: int
) -> None:
    record = _load(prefix)
    body = record["body"]
    usage = RAW_USAGE[provider](body)
    assert PriceBook().price(provider, _model(body), usage, at=AT) == expected


def test_anthropic_one_hour_cache_writes_are_priced_at_their_own_rate() -> None:
    """Interaction 001 with 200 of its 574 cache-write tokens moved to the 1-hour TTL
    (the corpus has no 1h write): those 200 cost $4/MTok instead of $2.50/MTok."""
    body = copy.deepcopy(_load("001")["body"])
    body["usage"]["cache_creation"] = {"ephemeral_5m_input_tokens": 374,
                                       "ephemeral_1h_input_tokens": 200}
    usage = _anthropic_usage(body)
    assert usage.cache_write_1h_tokens == 200
    expected = 6 * 2_000 + 374 * 2_500 + 200 * 4_000 + 20_443 * 200 + 489 * 10_000
    assert PriceBook().price("anthropic", _model(body), usage, at=AT) == expected
    _check_dialect("anthropic", body, expected)


def _check_dialect(provider: str, body: dict[str, Any], expected: int) -> None:
    module_name, attr = DIALECTS[provider]
    module = pytest.importorskip(f"tollway.core.dialects.{module_name}")
    dialect = getattr(module, attr, None)
    if dialect is None:
        pytest.skip(f"tollway.core.dialects.{module_name} has no {attr}")
    response = dialect.parse_response(body, None, _model(body))
    cost = PriceBook().price(provider, response.model or _model(body), response.usage, at=AT)
    assert cost == expected, response.usage


@pytest.mark.parametrize(("prefix", "provider", "expected"), CASES, ids=[c[0] for c in CASES])
def test_dialect_parsed_usage_prices_to_the_same_cost(
    prefix: str, provider: str, expected: int
) -> None:
    record = _load(prefix)
    importlib.invalidate_caches()
    _check_dialect(provider, record["body"], expected)
