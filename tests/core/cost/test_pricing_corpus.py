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


def _load_raw(prefix: str) -> dict[str, Any]:
    folder = corpus_dir()
    if not folder.is_dir():
        pytest.skip(f"no corpus at {folder}")
    matches = sorted(folder.glob(f"{prefix}_*.json"))
    if not matches:
        pytest.skip(f"corpus interaction {prefix} not found in {folder}")
    return dict(json.loads(Path(matches[0]).read_text()))


def _load(prefix: str) -> dict[str, Any]:
    record = _load_raw(prefix)
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


# --------------------------------------------------------------------------- grounding, tiers, modalities
# Recorded bodies parsed by the dialect (streams through the SSE decoder and the stream
# parser), priced by PriceBook, compared with genai-prices' own calculation of the same
# usage and tier (tests/core/cost/genai_reference.py).


def _stream_response(record: dict[str, Any], dialect: Any, request: Any = None) -> Any:
    from tollway.core.sse import SSEDecoder
    from tollway.core.types import StreamAccumulator

    model = _recorded_model(record)
    parser = dialect.stream_parser(request, model)
    decoder, acc = SSEDecoder(), StreamAccumulator()
    for event in [*decoder.feed(record["response_body"]), *decoder.flush()]:
        for out in parser.feed(event):
            acc.add(out)
    for out in parser.close():
        acc.add(out)
    return acc.response(provider=dialect.name, model=model)


def _recorded_model(record: dict[str, Any]) -> str:
    url = record["url"]
    if "/models/" in url:
        return url.split("/models/", 1)[1].split(":", 1)[0]
    return str(record["request"]["model"])


def _queries(body: dict[str, Any]) -> list[str]:
    return [q for c in body.get("candidates", [])
            for q in ((c.get("groundingMetadata") or {}).get("webSearchQueries") or []) if q]


def test_gemini_3_grounding_is_billed_per_search_query() -> None:
    """038: gemini-3-flash-preview ran one real query (plus Gemini's empty grounding
    pass): one $14/1,000 unit, exactly as genai-prices prices it."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.gemini import DIALECT

    body = _load("038")["body"]
    response = DIALECT.parse_response(body, None, _model(body))
    assert response.usage.units == {"web_search": len(_queries(body))} == {"web_search": 1}
    cost = PriceBook().price("gemini", response.model, response.usage)
    assert cost == genai_nanos("gemini", response.model, response.usage)


def test_gemini_3_streamed_grounding_counts_what_the_answer_counts() -> None:
    """045 (streamed, grounding metadata on the last chunk) prices like 038."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.gemini import DIALECT

    record = _load_raw("045")
    response = _stream_response(record, DIALECT)
    assert response.usage.units == {"web_search": 1}
    cost = PriceBook().price("gemini", response.model, response.usage)
    assert cost == genai_nanos("gemini", response.model, response.usage)


def test_gemini_2_grounding_is_billed_once_per_grounded_prompt() -> None:
    """038's answer as Gemini 2.5 Flash would bill it, with two real queries: Google bills
    one grounded prompt ($35/1,000), not two, so the call costs ~$0.035, not ~$0.070."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.gemini import DIALECT

    body = copy.deepcopy(_load("038")["body"])
    body["modelVersion"] = "gemini-2.5-flash"
    grounding = body["candidates"][0]["groundingMetadata"]
    grounding["webSearchQueries"] = ["largest city in Mexico", "Mexico City population"]
    response = DIALECT.parse_response(body, None, "gemini-2.5-flash")
    assert response.usage.units == {"web_search": 1}
    cost = PriceBook().price("gemini", "gemini-2.5-flash", response.usage)
    assert cost == genai_nanos("gemini", "gemini-2.5-flash", response.usage)
    per_query = copy.deepcopy(response.usage)
    per_query.units = {"web_search": 2}
    assert cost is not None
    assert genai_nanos("gemini", "gemini-2.5-flash", per_query) - cost == 35_000_000


def test_gemini_2_with_search_enabled_but_unused_bills_no_grounding() -> None:
    """048: Vertex 2.5 Flash with the googleSearch tool and an empty groundingMetadata."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.gemini import VERTEX_DIALECT

    body = _load("048")["body"]
    response = VERTEX_DIALECT.parse_response(body, None, _model(body))
    assert response.usage.units == {}
    cost = PriceBook().price("vertex_ai", response.model, response.usage)
    assert cost == genai_nanos("vertex_ai", response.model, response.usage)


def test_recorded_openai_flex_stream_is_priced_at_flex_rates() -> None:
    """091: a gpt-5 Responses stream sent and served with service_tier flex."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.openai_responses import DIALECT
    from tollway.core.inputs import build_request

    record = _load_raw("091")
    request = build_request("Calculate 100 * 200 / 3", extra={"service_tier": "flex"})
    response = _stream_response(record, DIALECT, request)
    assert response.usage.service_tier == "flex"
    cost = PriceBook().price("openai", "gpt-5", response.usage)
    assert cost == genai_nanos("openai", "gpt-5", response.usage)
    standard = copy.deepcopy(response.usage)
    standard.service_tier = None
    assert cost is not None
    assert cost * 2 == pytest.approx(PriceBook().price("openai", "gpt-5", standard), abs=1)


def test_recorded_vertex_flex_traffic_is_the_flex_tier() -> None:
    """053: Vertex reports flex as trafficType ON_DEMAND_FLEX; genai-prices has no flex
    rate for gemini-3-flash-preview, so it costs what genai-prices says (standard)."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.gemini import VERTEX_DIALECT

    response = _stream_response(_load_raw("053"), VERTEX_DIALECT)
    assert response.usage.service_tier == "flex"
    cost = PriceBook().price("vertex_ai", response.model, response.usage)
    assert cost == genai_nanos("vertex_ai", response.model, response.usage)


def test_recorded_gemini_document_tokens_are_the_image_modality() -> None:
    """036: a PDF (DOCUMENT) in the prompt and in the cache: genai-prices reads DOCUMENT
    as image; 2.5 Flash has no image rate, so the cost is the text cost computed above."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.gemini import DIALECT

    body = _load("036")["body"]
    usage = DIALECT.parse_response(body, None, _model(body)).usage
    assert (usage.input_image_tokens, usage.cache_image_read_tokens) == (258, 172)
    cost = PriceBook().price("gemini", "gemini-2.5-flash", usage)
    assert cost == genai_nanos("gemini", "gemini-2.5-flash", usage) == 115 * 300 + 230 * 30 + 37 * 2_500


def test_recorded_gemini_audio_prompt_is_priced_at_the_audio_rate() -> None:
    """036 with its document tokens reported as AUDIO instead: $1.00/M and $0.10/M cached
    (2.5 Flash), as genai-prices computes, against $0.30 / $0.03 for text."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.gemini import DIALECT

    body = copy.deepcopy(_load("036")["body"])
    meta = body["usageMetadata"]
    for details in (meta["promptTokensDetails"], meta["cacheTokensDetails"]):
        for item in details:
            if item["modality"] == "DOCUMENT":
                item["modality"] = "AUDIO"
    usage = DIALECT.parse_response(body, None, _model(body)).usage
    assert (usage.input_audio_tokens, usage.cache_audio_read_tokens) == (258, 172)
    cost = PriceBook().price("gemini", "gemini-2.5-flash", usage)
    assert cost == genai_nanos("gemini", "gemini-2.5-flash", usage)
    assert cost == (115 - 86) * 300 + 86 * 1_000 + (230 - 172) * 30 + 172 * 100 + 37 * 2_500


@pytest.mark.parametrize(("tier", "field"), [("batch", "service_tier"), ("priority", "service_tier"),
                                             ("fast", "speed")])
def test_recorded_anthropic_usage_tier_is_priced_at_genai_prices_rates(tier: str, field: str) -> None:
    """001 (claude-sonnet-5) with its usage reporting batch, priority or fast mode."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.anthropic import DIALECT

    body = copy.deepcopy(_load("001")["body"])
    body["usage"][field] = tier
    usage = DIALECT.parse_response(body, None, _model(body)).usage
    assert usage.service_tier == tier
    cost = PriceBook().price("anthropic", _model(body), usage, at=AT)
    assert cost == genai_nanos("anthropic", _model(body), usage, at=AT)


@pytest.mark.parametrize("tier", ["priority", "flex", "default"])
def test_recorded_openai_chat_tier_is_priced_at_genai_prices_rates(tier: str) -> None:
    """056 (gpt-5-mini) as served at another tier; ``default`` is the standard price."""
    from tests.core.cost.genai_reference import genai_nanos
    from tollway.core.dialects.openai_chat import DIALECT

    body = copy.deepcopy(_load("056")["body"])
    body["service_tier"] = tier
    usage = DIALECT.parse_response(body, None, _model(body)).usage
    assert usage.service_tier == (None if tier == "default" else tier)
    cost = PriceBook().price("openai", _model(body), usage)
    assert cost == genai_nanos("openai", _model(body), usage)
    if tier != "default":
        assert cost != 334 * 250 + 429 * 2_000  # the standard price (case 056 above)
