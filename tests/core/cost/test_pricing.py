"""PriceBook / ModelPrice: exact integer pricing, genai-prices resolution, overrides.

Hand-computed expectations state the per-million-token prices they use; those for
genai-prices models are the ones in its bundled data (genai-prices 0.2.3).
"""

from __future__ import annotations

import random
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollway.core.cost.pricing import (
    ModelPrice,
    PriceBook,
    UnpricedModelWarning,
    _convert,
    usd_to_nanos,
)
from tollway.core.errors import ConfigError
from tollway.core.types import Usage

NOV = datetime(2026, 11, 1, 12, tzinfo=UTC)


def usd(value: str) -> int:
    return usd_to_nanos(Decimal(value))


# --------------------------------------------------------------------------- ModelPrice


def test_usd_to_nanos_is_exact_for_decimal_strings_and_floats() -> None:
    assert usd_to_nanos("0.15") == 150_000_000
    assert usd_to_nanos(0.075) == 75_000_000
    assert usd_to_nanos(Decimal("0.2288")) == 228_800_000
    assert usd_to_nanos("0.0000000005") == 1  # half a nano rounds up


def test_cost_bills_uncached_input_cache_read_and_write_each_once() -> None:
    price = ModelPrice(
        input=usd("3"), output=usd("15"), cache_read=usd("0.3"), cache_write=usd("3.75")
    )
    usage = Usage(input_tokens=10_000, output_tokens=500, cache_read_tokens=6_000,
                  cache_write_tokens=3_000)
    # 1000 uncached x $3 + 6000 x $0.30 + 3000 x $3.75 + 500 x $15, per million tokens
    expected = (1_000 * 3 + 6_000 * Decimal("0.3") + 3_000 * Decimal("3.75") + 500 * 15) * 1000
    assert price.cost_nanos(usage) == int(expected) == 23_550_000


def test_one_hour_cache_writes_use_their_rate_or_twice_the_input_rate() -> None:
    usage = Usage(input_tokens=1_000, cache_write_tokens=1_000, cache_write_1h_tokens=400)
    explicit = ModelPrice(input=usd("3"), output=usd("15"), cache_write=usd("3.75"),
                          cache_write_1h=usd("6.5"))
    # $3.75 per million tokens = 3,750 nano-USD per token
    assert explicit.cost_nanos(usage) == 600 * 3750 + 400 * 6500
    derived = ModelPrice(input=usd("3"), output=usd("15"), cache_write=usd("3.75"))
    assert derived.cache_write_1h is None
    assert derived.cost_nanos(usage) == 600 * 3750 + 400 * 6000  # 2 x the $3 input rate


def test_missing_cache_rates_fall_back_to_the_input_rate() -> None:
    price = ModelPrice(input=usd("2"), output=usd("8"))
    usage = Usage(input_tokens=1_000, cache_read_tokens=300, cache_write_tokens=200)
    assert price.cost_nanos(usage) == 1_000 * 2_000


def test_reasoning_is_part_of_output_and_billed_at_its_own_rate_only_when_distinct() -> None:
    usage = Usage(output_tokens=1_000, reasoning_tokens=600)
    same = ModelPrice(input=usd("1"), output=usd("4"))
    assert same.cost_nanos(usage) == 1_000 * 4_000  # never output + reasoning
    distinct = ModelPrice(input=usd("1"), output=usd("4"), reasoning=usd("10"))
    assert distinct.cost_nanos(usage) == 400 * 4_000 + 600 * 10_000


def test_per_request_and_per_unit_prices_are_added() -> None:
    price = ModelPrice(input=0, output=0, per_request=usd("0.005"),
                       units={"web_search": usd("0.01")})
    usage = Usage(units={"web_search": 3, "unpriced_thing": 5})
    assert price.cost_nanos(usage) == 5_000_000 + 3 * 10_000_000
    # unit names as providers spell them map to the same price
    assert price.cost_nanos(Usage(units={"web_search_requests": 1})) == 15_000_000
    assert price.cost_nanos(Usage(units={"web_searches": 2})) == 25_000_000


def test_rounding_is_half_up_once_per_call() -> None:
    # $0.0375/MTok = 37.5 nano-USD per token: rounded once on the call's total
    price = ModelPrice(input=usd("0.0375"), output=usd("0.0125"))
    assert price.cost_nanos(Usage(input_tokens=1)) == 38
    assert price.cost_nanos(Usage(input_tokens=2)) == 75
    assert price.cost_nanos(Usage(input_tokens=1, output_tokens=1)) == 50  # 37.5 + 12.5


def test_inconsistent_counts_never_make_a_negative_cost() -> None:
    price = ModelPrice(input=usd("1"), output=usd("2"), cache_read=usd("0.1"), reasoning=usd("3"))
    usage = Usage(input_tokens=10, cache_read_tokens=50, output_tokens=5, reasoning_tokens=9)
    # uncached input and visible output clamp at 0; cache reads and reasoning are billed
    assert price.cost_nanos(usage) == 50 * 100 + 9 * 3_000


def test_tiers_apply_to_every_token_strictly_above_the_threshold() -> None:
    base = ModelPrice(input=usd("1.25"), output=usd("10"), cache_read=usd("0.125"))
    tier = ModelPrice(input=usd("2.5"), output=usd("15"), cache_read=usd("0.25"))
    price = ModelPrice(input=base.input, output=base.output, cache_read=base.cache_read,
                       tiers=((200_000, tier),))
    at_threshold = Usage(input_tokens=200_000, output_tokens=1_000)
    above = Usage(input_tokens=200_001, output_tokens=1_000, cache_read_tokens=100_000)
    # nano-USD per token: base 1250 in / 10000 out; tier 2500 in / 250 cached / 15000 out
    assert price.cost_nanos(at_threshold) == 200_000 * 1_250 + 1_000 * 10_000
    assert price.cost_nanos(above) == 100_001 * 2_500 + 100_000 * 250 + 1_000 * 15_000
    assert price.rates_for(300_000) is tier and price.rates_for(10) is price


# --------------------------------------------------------------------------- genai-prices


def _record_warnings() -> warnings.catch_warnings[list[warnings.WarningMessage]]:
    return warnings.catch_warnings(record=True)


def test_unknown_model_prices_to_none_with_exactly_one_warning() -> None:
    book = PriceBook()
    with _record_warnings() as caught:
        warnings.simplefilter("always")
        results = [book.price("openai", "no-such-model-xyz", Usage(10, 10)) for _ in range(5)]
        book.model_price("openai", "no-such-model-xyz")
    assert results == [None] * 5
    unpriced = [w for w in caught if issubclass(w.category, UnpricedModelWarning)]
    assert len(unpriced) == 1
    assert "openai/no-such-model-xyz" in str(unpriced[0].message)


def test_local_providers_are_unpriced_unless_configured() -> None:
    with _record_warnings():
        warnings.simplefilter("ignore")
        assert PriceBook().price("ollama", "llama3.2", Usage(100, 100)) is None
        assert PriceBook().price("vllm", "gpt-4o", Usage(100, 100)) is None
        # a generic OpenAI-compatible server is priced by model name, but not a local
        # build's "name:tag" (deepseek-r1:7b is not the hosted deepseek-reasoner)
        assert PriceBook().price("openai_compatible", "deepseek-r1:7b", Usage(1, 1)) is None
    free = PriceBook({"ollama/*": {"input": 0, "output": 0}})
    assert free.price("ollama", "llama3.2", Usage(100, 100)) == 0


def test_known_models_resolve_through_every_provider_mapping() -> None:
    book = PriceBook()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    # gpt-4o: $2.50 in / $10 out; Azure falls back to OpenAI's prices
    assert book.price("openai", "gpt-4o-2024-08-06", usage) == usd("12.5")
    assert book.price("azure", "gpt-4o", usage) == usd("12.5")
    assert book.price("openai_compatible", "gpt-4o", usage) == usd("12.5")
    # claude-sonnet-4-5: $3 / $15 up to 200k input, also under Vertex's "@date" names
    # and through proxies that prefix the vendor
    for provider, model in [
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("vertex_ai", "claude-sonnet-4-5@20250929"),
        ("litellm_proxy", "anthropic/claude-sonnet-4-5"),
        ("openrouter", "anthropic/claude-sonnet-4.5"),
    ]:
        assert book.price(provider, model, Usage(100_000, 100_000)) == usd("1.8"), model
    # Gemini under its API name with the "models/" prefix: 2.0 flash $0.10 / $0.40
    assert book.price("gemini", "models/gemini-2.0-flash", usage) == usd("0.5")
    assert book.price("xai", "grok-4", Usage(1_000_000, 0)) == usd("3")


def test_model_price_carries_context_window_and_is_cached() -> None:
    book = PriceBook()
    price = book.model_price("openai", "gpt-4o")
    assert price is not None and price.context_window == 128_000
    assert book.model_price("openai", "gpt-4o") is price


def test_dated_price_changes_follow_the_call_time() -> None:
    # gpt-5.6-sol (up to 272k input): $5 / $30 until 2026-08-21, then $4 / $20
    book = PriceBook()
    usage = Usage(input_tokens=100_000, output_tokens=100_000)
    assert book.price("openai", "gpt-5.6-sol", usage, at=NOV) == usd("2.4")
    old = datetime(2026, 8, 1, tzinfo=UTC)
    assert book.price("openai", "gpt-5.6-sol", usage, at=old) == usd("3.5")


def test_time_of_day_prices_are_evaluated_per_call() -> None:
    # deepseek-chat: $0.27 in 00:30-16:30 UTC, $0.135 off-peak (genai-prices data)
    book = PriceBook()
    usage = Usage(input_tokens=1_000_000)
    peak = datetime(2026, 11, 2, 10, tzinfo=UTC)
    off_peak = datetime(2026, 11, 2, 20, tzinfo=UTC)
    assert book.price("deepseek", "deepseek-chat", usage, at=peak) == usd("0.27")
    assert book.price("deepseek", "deepseek-chat", usage, at=off_peak) == usd("0.135")


def test_integer_prices_match_genai_prices_for_every_bundled_model() -> None:
    """Every token-priced model in the bundled data, random usages (cache reads and
    writes, 1h writes where priced, reasoning, both sides of tier thresholds): the
    integer price equals genai-prices' Decimal calculation to within one nano-USD (half
    a nano from rounding the call, plus a rounding of the few rates that are not whole
    nano-USD per million tokens, e.g. $0.0000003333.../MTok)."""
    from genai_prices.data import providers
    from genai_prices.types import Usage as GenaiUsage

    rng = random.Random(20261128)
    compared = 0
    for provider in providers:
        for model in provider.models:
            prices = model.prices if not isinstance(model.prices, list) else model.prices[-1].prices
            mine = _convert(prices, model.context_window)
            if mine is None:
                continue
            has_1h = getattr(prices, "cache_write_1h_mtok", None) is not None
            for _ in range(3):
                n_in = rng.choice([100, 5_000, 199_999, 200_001, 300_000, 1_000_000])
                cr = rng.randint(0, n_in // 2)
                cw = rng.randint(0, n_in - cr)
                c1h = rng.randint(0, cw) if has_1h else 0
                out = rng.randint(0, 5_000)
                rs = rng.randint(0, out)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = prices.calc_price(GenaiUsage(
                        input_tokens=n_in, output_tokens=out, cache_read_tokens=cr,
                        cache_write_tokens=cw, cache_write_1h_tokens=c1h,
                        output_reasoning_tokens=rs,
                    ))["total_price"]
                got = mine.cost_nanos(Usage(n_in, out, cr, cw, c1h, rs))
                assert abs(got - expected * 1_000_000_000) <= 1, (
                    provider.id, model.id
                )
                compared += 1
    assert compared > 1_000


def test_importing_pricing_does_not_import_genai_prices() -> None:
    code = (
        "import sys, tollway.core.cost.pricing as p; "
        "assert 'genai_prices' not in sys.modules; "
        "p.PriceBook({'x/y': {'input': 1, 'output': 1}}); "
        "assert 'genai_prices' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- overrides


def test_override_defines_a_custom_model_with_all_rate_kinds() -> None:
    book = PriceBook({
        "acme/house-model": {
            "input": 0.15, "output": "0.6", "cache_read": 0.075, "cache_write": 0.2,
            "cache_write_1h": 0.3, "reasoning": 1.2, "per_request": 0.001,
            "units": {"web_search": 0.01}, "max_output_tokens": 8192, "context_window": 64000,
        }
    })
    price = book.model_price("acme", "house-model")
    assert price == ModelPrice(
        input=150_000_000, output=600_000_000, cache_read=75_000_000, cache_write=200_000_000,
        cache_write_1h=300_000_000, reasoning=1_200_000_000, per_request=1_000_000,
        units={"web_search": 10_000_000}, max_output_tokens=8192, context_window=64000,
    )
    usage = Usage(input_tokens=1_000, output_tokens=100, cache_read_tokens=200,
                  cache_write_tokens=300, cache_write_1h_tokens=100, reasoning_tokens=40,
                  units={"web_search": 2})
    expected_scaled = (500 * 150 + 200 * 75 + 200 * 200 + 100 * 300 + 60 * 600 + 40 * 1200)
    assert book.price("acme", "house-model", usage) == expected_scaled + 1_000_000 + 20_000_000


def test_override_wins_over_genai_prices_and_can_be_keyed_by_deployment_or_model() -> None:
    book = PriceBook({
        "openai/gpt-4o": {"input": 1, "output": 2},
        "my-azure-deployment": {"input": 5, "output": 5},
        "house-alias": {"input": 7, "output": 7},
    })
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert book.price("openai", "gpt-4o", usage) == usd("3")
    assert book.price("azure", "gpt-4o", usage, deployment="my-azure-deployment") == usd("10")
    assert book.price("azure", "gpt-4o", usage) == usd("12.5")  # genai-prices
    assert book.price("openai_compatible", "house-alias", usage) == usd("14")


def test_partial_override_patches_the_known_price() -> None:
    book = PriceBook({"openai/gpt-4o": {"cache_read": 0.5, "max_output_tokens": 16384}})
    price = book.model_price("openai", "gpt-4o")
    assert price is not None
    assert (price.input, price.output, price.cache_read) == (usd("2.5"), usd("10"), usd("0.5"))
    assert price.max_output_tokens == 16384 and price.context_window == 128_000


def test_partial_override_keeps_genai_tiers_and_patches_limits_everywhere() -> None:
    book = PriceBook({"gemini/gemini-2.5-pro": {"max_output_tokens": 65536}})
    price = book.model_price("gemini", "gemini-2.5-pro")
    assert price is not None and price.tiers
    assert price.rates_for(300_000).input == usd("2.5")
    assert price.rates_for(300_000).max_output_tokens == 65536


def test_override_tiers_inherit_unset_rates_from_the_base() -> None:
    book = PriceBook({
        "acme/long": {
            "input": 1, "output": 4, "cache_read": 0.1,
            "tiers": [{"above_input_tokens": 100_000, "input": 2, "output": 6}],
        }
    })
    small = Usage(input_tokens=100_000, output_tokens=10)
    large = Usage(input_tokens=100_001, output_tokens=10, cache_read_tokens=50_000)
    assert book.price("acme", "long", small) == 100_000 * 1_000 + 10 * 4_000
    assert book.price("acme", "long", large) == 50_001 * 2_000 + 50_000 * 100 + 10 * 6_000


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"a/b": {"input": -1, "output": 1}}, "prices.a/b.input"),
        ({"a/b": {"input": "cheap", "output": 1}}, "prices.a/b.input"),
        ({"a/b": {"input": 1, "output": 1, "inptu": 1}}, "prices.a/b.inptu"),
        ({"a/b": {"input": 1}}, "prices.a/b"),
        ({"a/b": {"input": 1, "output": 1, "tiers": [{"input": 2}]}},
         "prices.a/b.tiers.0.above_input_tokens"),
        ({"a/b": {"input": 1, "output": 1, "units": {"web_search": "x"}}},
         "prices.a/b.units.web_search"),
        ({"a/b": 0.5}, "prices.a/b"),
    ],
)
def test_bad_override_raises_config_error_naming_the_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        PriceBook(overrides)
    assert info.value.key == key
    assert key in str(info.value)


def test_negative_unit_prices_are_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        PriceBook({"a/b": {"input": 1, "output": 1, "units": {"web_search": -0.01}}})
    assert info.value.key == "prices.a/b.units.web_search"


def test_default_pricebook_is_shared() -> None:
    from tollway.core.cost.pricing import default_pricebook

    assert default_pricebook() is default_pricebook()


def test_a_pricebook_without_overrides_does_not_import_pydantic() -> None:
    code = (
        "import sys, tollway.core.types, tollway.core.errors; "
        "before = 'pydantic' in sys.modules; "
        "import tollway.core.cost.pricing as p; p.PriceBook(); "
        "assert ('pydantic' in sys.modules) == before, 'pricing imported pydantic'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
