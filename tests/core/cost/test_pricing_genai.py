"""PriceBook against genai-prices' own ``calc_price``: modality rates, service tiers,
batch, prompt-size tiers and dated variants give the same nano-USD, computed by
genai-prices in the test (never a literal), and differ from the standard price where
genai-prices says they do (so a regression to text / standard rates fails).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from tests.core.cost.genai_reference import genai_nanos
from tollway.core.cost.pricing import PriceBook
from tollway.core.types import Usage

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
BEFORE_TIER_PRICES = datetime(2026, 9, 1, 12, tzinfo=UTC)
"""genai-prices dates OpenAI's tier rates from 2026-10-12 and batch from 2026-10-14."""


def standard(usage: Usage) -> Usage:
    return Usage(**{**_fields(usage), "service_tier": None})


def text_only(usage: Usage) -> Usage:
    modal = ("input_audio_tokens", "input_image_tokens", "input_video_tokens",
             "cache_audio_read_tokens", "cache_image_read_tokens", "output_audio_tokens",
             "output_image_tokens", "output_video_tokens")
    return Usage(**{**_fields(usage), **dict.fromkeys(modal, 0)})


def _fields(usage: Usage) -> dict[str, object]:
    return {name: getattr(usage, name) for name in usage.__slots__}  # type: ignore[attr-defined]


# (provider, model, usage, what makes this price differ from the plain one)
MODALITY_CASES = [
    # Gemini 2.5 Flash: audio input $1.00/M vs text $0.30/M, cached audio $0.10 vs $0.03
    ("gemini", "gemini-2.5-flash",
     Usage(input_tokens=12_000, output_tokens=800, input_audio_tokens=9_000), "audio"),
    ("gemini", "gemini-2.5-flash",
     Usage(input_tokens=40_000, output_tokens=1_200, reasoning_tokens=700, cache_read_tokens=30_000,
           input_audio_tokens=20_000, cache_audio_read_tokens=15_000), "cached audio"),
    ("gemini", "gemini-2.0-flash",
     Usage(input_tokens=5_000, output_tokens=300, cache_read_tokens=2_000,
           input_audio_tokens=3_000, cache_audio_read_tokens=1_000), "audio"),
    ("gemini", "gemini-3-flash-preview",
     Usage(input_tokens=8_000, output_tokens=500, input_audio_tokens=6_000), "audio"),
    # image output at $120/M against $12/M text
    ("gemini", "gemini-3-pro-image-preview",
     Usage(input_tokens=300, output_tokens=1_500, output_image_tokens=1_120), "image out"),
    # OpenAI audio: $32/M in, $64/M out against $2.50 / $10 text
    ("openai", "gpt-audio",
     Usage(input_tokens=2_000, output_tokens=900, input_audio_tokens=1_500,
           output_audio_tokens=700), "audio in and out"),
    ("openai", "gpt-4o-mini-realtime-preview",
     Usage(input_tokens=4_000, output_tokens=600, cache_read_tokens=1_000,
           input_audio_tokens=2_500, cache_audio_read_tokens=800, output_audio_tokens=400),
     "realtime audio"),
]


@pytest.mark.parametrize(("provider", "model", "usage", "why"), MODALITY_CASES,
                         ids=[f"{c[1]}-{c[3]}" for c in MODALITY_CASES])
def test_modality_tokens_are_priced_at_their_rates_as_genai_prices_computes(
    provider: str, model: str, usage: Usage, why: str
) -> None:
    book = PriceBook()
    cost = book.price(provider, model, usage)
    assert cost == genai_nanos(provider, model, usage)
    assert cost != book.price(provider, model, text_only(usage)), why


def test_gemini_audio_input_costs_a_dollar_per_million_not_the_text_rate() -> None:
    """The issue's figures: 2.5 Flash audio input $1.00/M, text $0.30/M."""
    book = PriceBook()
    audio = Usage(input_tokens=1_000_000, input_audio_tokens=1_000_000)
    assert book.price("gemini", "gemini-2.5-flash", audio) == genai_nanos(
        "gemini", "gemini-2.5-flash", audio) == 1_000_000_000
    assert book.price("gemini", "gemini-2.5-flash", Usage(input_tokens=1_000_000)) == 300_000_000


# (provider, model, tier, usage)
TIER_CASES = [
    ("openai", "gpt-5", "priority", Usage(input_tokens=20_000, output_tokens=3_000,
                                          cache_read_tokens=8_000, reasoning_tokens=2_000)),
    ("openai", "gpt-5", "flex", Usage(input_tokens=20_000, output_tokens=3_000,
                                      cache_read_tokens=8_000)),
    ("openai", "gpt-5", "fast", Usage(input_tokens=1_000, output_tokens=1_000)),
    ("openai", "gpt-5", "batch", Usage(input_tokens=50_000, output_tokens=10_000)),
    ("openai", "gpt-4o-mini", "priority", Usage(input_tokens=9_000, output_tokens=400,
                                                cache_read_tokens=4_000)),
    ("openai", "gpt-5.6-sol", "flex", Usage(input_tokens=300_000, output_tokens=2_000)),
    ("anthropic", "claude-opus-5-5", "fast", Usage(input_tokens=30_000, output_tokens=2_000,
                                                   cache_read_tokens=20_000,
                                                   cache_write_tokens=5_000)),
    ("anthropic", "claude-sonnet-4-5", "batch", Usage(input_tokens=12_000, output_tokens=900)),
    # Gemini 2.5 Pro batch above the 200k prompt tier: the variant is tiered too
    ("gemini", "gemini-2.5-pro", "batch", Usage(input_tokens=250_000, output_tokens=4_000)),
    ("gemini", "gemini-2.5-flash", "batch", Usage(input_tokens=9_000, output_tokens=600,
                                                  input_audio_tokens=4_000)),
]


@pytest.mark.parametrize(("provider", "model", "tier", "usage"), TIER_CASES,
                         ids=[f"{c[1]}-{c[2]}" for c in TIER_CASES])
def test_service_tiers_are_priced_at_genai_prices_tier_rates(
    provider: str, model: str, tier: str, usage: Usage
) -> None:
    book = PriceBook()
    usage.service_tier = tier
    cost = book.price(provider, model, usage)
    assert cost == genai_nanos(provider, model, usage)
    assert cost != book.price(provider, model, standard(usage))


@pytest.mark.parametrize(("provider", "model", "tier"), [
    ("anthropic", "claude-sonnet-4-5", "priority"),  # no published Anthropic priority rates
    ("openai", "gpt-4o-mini", "scale"),  # a tier genai-prices has no rates for
    ("azure", "gpt-4o-mini", "priority"),  # Azure prices OpenAI's list without its variants
])
def test_a_tier_without_its_own_rates_costs_what_genai_prices_says(
    provider: str, model: str, tier: str
) -> None:
    usage = Usage(input_tokens=10_000, output_tokens=1_000, service_tier=tier)
    cost = PriceBook().price(provider, model, usage)
    assert cost == genai_nanos(provider, model, usage)
    assert cost == PriceBook().price(provider, model, standard(usage))


def test_dated_tier_rates_apply_only_from_their_start_date() -> None:
    book = PriceBook()
    usage = Usage(input_tokens=10_000, output_tokens=2_000, service_tier="priority")
    before = book.price("openai", "gpt-4o-mini", usage, at=BEFORE_TIER_PRICES)
    after = book.price("openai", "gpt-4o-mini", usage, at=NOW)
    assert before == genai_nanos("openai", "gpt-4o-mini", usage, at=BEFORE_TIER_PRICES)
    assert after == genai_nanos("openai", "gpt-4o-mini", usage, at=NOW)
    assert before == book.price("openai", "gpt-4o-mini", standard(usage), at=BEFORE_TIER_PRICES)
    assert after > before


def test_conditional_prices_and_tier_variants_combine_as_in_genai_prices() -> None:
    """gemini-3-flash-preview has a dated price change (grounding from 2026-01-05) and a
    dated batch variant: every combination of date and tier matches genai-prices."""
    book = PriceBook()
    usage = Usage(input_tokens=10_000, output_tokens=1_000, units={"web_search": 3})
    for when in (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC), NOW):
        for tier in (None, "batch"):
            usage.service_tier = tier
            got = book.price("gemini", "gemini-3-flash-preview", usage, at=when)
            assert got == genai_nanos("gemini", "gemini-3-flash-preview", usage, at=when), (when, tier)


SWEEP_MODELS = [
    ("gemini", "gemini-2.5-flash"), ("gemini", "gemini-2.5-pro"), ("gemini", "gemini-2.0-flash"),
    ("gemini", "gemini-3-flash-preview"), ("gemini", "gemini-2.5-flash-lite"),
    ("openai", "gpt-4o-mini"), ("openai", "gpt-5"), ("openai", "gpt-audio"),
    ("openai", "gpt-4o-mini-realtime-preview"), ("anthropic", "claude-opus-5-5"),
    ("anthropic", "claude-sonnet-4-5"), ("azure", "gpt-4o-mini"),
]


@pytest.mark.parametrize(("provider", "model"), SWEEP_MODELS, ids=[m for _, m in SWEEP_MODELS])
def test_random_usages_and_tiers_price_exactly_as_genai_prices(provider: str, model: str) -> None:
    """Consistent random usages (subsets within their totals), every tier: equal to the
    nano-USD (genai-prices' Decimal result rounded once)."""
    rng = random.Random(f"{provider}/{model}")
    book = PriceBook()
    for _ in range(60):
        inp = rng.randint(0, 400_000)
        cached = rng.randint(0, inp // 2)
        written = rng.randint(0, (inp - cached) // 2)
        audio = rng.randint(0, (inp - cached - written) // 2)
        out = rng.randint(0, 6_000)
        reasoning = rng.randint(0, out // 2)
        out_audio = rng.randint(0, (out - reasoning) // 2)
        usage = Usage(
            input_tokens=inp, output_tokens=out, cache_read_tokens=cached,
            cache_write_tokens=written, reasoning_tokens=reasoning, input_audio_tokens=audio,
            cache_audio_read_tokens=rng.randint(0, min(audio, cached)),
            input_image_tokens=rng.randint(0, (inp - cached - written - audio) // 2),
            output_audio_tokens=out_audio,
            output_image_tokens=rng.randint(0, (out - reasoning - out_audio) // 2),
            units={"web_search": rng.randint(0, 3)},
            service_tier=rng.choice([None, "priority", "flex", "fast", "batch"]),
        )
        assert book.price(provider, model, usage) == genai_nanos(provider, model, usage), usage
