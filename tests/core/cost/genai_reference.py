"""genai-prices' own calculation of a tollway Usage: the reference the pricing tests
compare PriceBook against (tollway prices with integers resolved once; genai-prices
re-walks its unit registry with Decimals on every call, so they are computed apart).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP

import genai_prices

from tollway.core.cost.pricing import price_context
from tollway.core.types import NANOS_PER_USD, Usage

GENAI_PROVIDER = {"openai": "openai", "azure": "azure", "anthropic": "anthropic",
                  "gemini": "google", "vertex_ai": "google"}


def genai_usage(usage: Usage) -> genai_prices.Usage:
    """The same counts under genai-prices' usage keys (subsets as subsets, as in tollway)."""
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        input_audio_tokens=usage.input_audio_tokens,
        input_image_tokens=usage.input_image_tokens,
        input_video_tokens=usage.input_video_tokens,
        cache_audio_read_tokens=usage.cache_audio_read_tokens,
        cache_image_read_tokens=usage.cache_image_read_tokens,
        output_audio_tokens=usage.output_audio_tokens,
        output_image_tokens=usage.output_image_tokens,
        output_video_tokens=usage.output_video_tokens,
        web_searches=usage.units.get("web_search", 0),
    )


def genai_nanos(provider: str, model: str, usage: Usage, at: datetime | None = None) -> int:
    """genai-prices' ``calc_price`` of ``usage`` (its service tier as the price context)
    in nano-USD, rounded half up like tollway rounds its one sum."""
    calculation = genai_prices.calc_price(
        genai_usage(usage),
        model,
        provider_id=GENAI_PROVIDER[provider],
        genai_request_timestamp=at,
        price_context=price_context(usage.service_tier),
    )
    return int((calculation.total_price * NANOS_PER_USD).to_integral_value(ROUND_HALF_UP))
