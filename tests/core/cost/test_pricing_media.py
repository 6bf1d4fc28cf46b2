"""Prices of embeddings and images: genai-prices' embedding and image-token rates, and
per-image prices from tollway.yaml overrides."""

from __future__ import annotations

import random

import pytest

from tollway.core.cost.estimate import IMAGE_OUTPUT_TOKENS, embedding_bound, image_bound
from tollway.core.cost.pricing import PriceBook
from tollway.core.errors import ConfigError
from tollway.core.inputs import build_embedding_request, build_image_request
from tollway.core.types import Usage


def _genai(model: str, provider: str, **usage: int) -> int:
    from genai_prices import calc_price
    from genai_prices.types import Usage as GenaiUsage

    price = calc_price(GenaiUsage(**usage), model_ref=model, provider_id=provider)
    return int((price.total_price * 1_000_000_000).to_integral_value())


@pytest.mark.parametrize(("provider", "model", "genai_provider"), [
    ("openai", "gpt-image-1", "openai"), ("openai", "gpt-image-1.5", "openai"),
    ("openai", "gpt-image-1-mini", "openai"), ("openai", "chatgpt-image-latest", "openai"),
    ("gemini", "gemini-2.5-flash-image", "google"),
    ("gemini", "gemini-3-pro-image-preview", "google"),
])
def test_image_token_prices_equal_genai_prices(provider: str, model: str, genai_provider: str) -> None:
    book = PriceBook()
    rng = random.Random(model)
    for _ in range(20):
        text_in, image_in = rng.randint(1, 500), rng.choice([0, 388, 1_000])
        image_out, text_out = rng.choice([272, 1_056, 4_160]), rng.choice([0, 30])
        usage = Usage(input_tokens=text_in + image_in, output_tokens=image_out + text_out,
                      input_image_tokens=image_in, output_image_tokens=image_out)
        expected = _genai(model, genai_provider, input_tokens=text_in + image_in,
                          input_image_tokens=image_in, output_tokens=image_out + text_out,
                          output_image_tokens=image_out)
        assert abs(book.price(provider, model, usage) - expected) <= 1


@pytest.mark.parametrize(("provider", "model", "genai_provider"), [
    ("openai", "text-embedding-3-small", "openai"), ("openai", "text-embedding-3-large", "openai"),
    ("gemini", "gemini-embedding-001", "google"), ("mistral", "mistral-embed", "mistral"),
    ("azure", "text-embedding-3-small", "azure"),
])
def test_embedding_prices_equal_genai_prices(provider: str, model: str, genai_provider: str) -> None:
    for tokens in (1, 17, 123_456):
        assert PriceBook().price(provider, model, Usage(input_tokens=tokens)) == _genai(
            model, genai_provider, input_tokens=tokens)


def test_per_image_overrides_by_size_and_quality_with_wildcards() -> None:
    book = PriceBook({
        "openai/dall-e-3": {"images": {"1024x1024": {"standard": 0.04, "hd": 0.08},
                                       "1792x1024": {"standard": 0.08, "hd": 0.12}}},
        "gemini/imagen-4.0-ultra-generate-001": {"images": {"*": 0.06}},
        "together/*": {"images": {"1024x1024": 0.003, "*": {"*": 0.01}}},
    })
    units = {"image:1792x1024:hd": 2, "image:1024x1024:standard": 1}
    assert book.price("openai", "dall-e-3", Usage(units=units)) == 2 * 120_000_000 + 40_000_000
    assert book.price("gemini", "imagen-4.0-ultra-generate-001",
                      Usage(units={"image:default:default": 3})) == 180_000_000
    assert book.price("together", "flux", Usage(units={"image:1024x1024:auto": 1})) == 3_000_000
    assert book.price("together", "flux", Usage(units={"image:512x512:auto": 1})) == 10_000_000
    price = book.model_price("openai", "dall-e-3")
    assert price is not None
    assert price.image_rate(None, None) == 120_000_000      # the dearest: what budgets reserve
    assert price.image_rate("1024x1024", None) == 80_000_000
    assert price.image_rate(None, "standard") == 80_000_000
    assert price.image_rate("1024x1024", "standard") == 40_000_000


def test_an_image_the_price_does_not_list_has_unknown_cost() -> None:
    book = PriceBook({"openai/dall-e-2": {"images": {"1024x1024": 0.02}}})
    with pytest.warns(UserWarning, match="256x256"):
        assert book.price("openai", "dall-e-2", Usage(units={"image:256x256:standard": 1})) is None
    assert book.price("openai", "dall-e-2", Usage(units={"image:1024x1024:standard": 1})) == 20_000_000
    assert PriceBook().price("openai", "dall-e-3", Usage(units={"image:1024x1024:hd": 1})) is None


def test_image_token_rates_can_be_overridden_per_modality() -> None:
    book = PriceBook({"openai/gpt-image-1": {"output_image": 50},
                      "openai_compatible/my-image": {"input": 1, "output": 2, "input_image": 3,
                                                     "output_image": 4}})
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000,
                  input_image_tokens=500_000, output_image_tokens=1_000_000)
    # $5/M text in, $10/M image in (genai-prices), image out patched to $50/M.
    assert book.price("openai", "gpt-image-1", usage) == 57_500_000_000  # 2.5 + 5 + 50
    assert book.price("openai_compatible", "my-image", usage) == 6_000_000_000  # 0.5+1.5+4


def test_bad_image_prices_are_config_errors_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        PriceBook({"openai/dall-e-3": {"images": {"1024x1024": {"hd": -1}}}})
    assert "prices.openai/dall-e-3.images" in str(caught.value)


def test_budget_bounds_for_embeddings_and_images() -> None:
    book = PriceBook({"openai/dall-e-3": {"images": {"1024x1024": {"standard": 0.04, "hd": 0.08}}}})
    small = book.model_price("openai", "text-embedding-3-small")
    bound = embedding_bound(build_embedding_request(["a" * 40, "b" * 8]), small)
    assert (bound.input_tokens, bound.output_tokens) == (12, 0)
    assert bound.cost_nanos == book.price("openai", "text-embedding-3-small", Usage(input_tokens=12))
    dalle = book.model_price("openai", "dall-e-3")
    assert image_bound(build_image_request("x", n=3), dalle).cost_nanos == 3 * 80_000_000
    assert image_bound(build_image_request("x", quality="standard"), dalle).cost_nanos == 40_000_000
    gpt = book.model_price("openai", "gpt-image-1")
    low = image_bound(build_image_request("x" * 40, quality="low", n=2), gpt)
    assert low.output_tokens == 2 * IMAGE_OUTPUT_TOKENS["low"]
    assert low.cost_nanos == book.price("openai", "gpt-image-1", Usage(
        input_tokens=10, output_tokens=low.output_tokens, output_image_tokens=low.output_tokens))
    assert image_bound(build_image_request("x"), None).cost_nanos is None
