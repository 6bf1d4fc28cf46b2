"""The price of images a chat call made through a built-in tool (the Responses
``image_generation`` tool).

OpenAI bills such an image apart from the call's own tokens: as the image model's
image output tokens, a fixed count per size and quality, at that model's rate. The
call's usage counts each image as a unit ``image_generation:<image model>:<size>:
<quality>`` (the Responses dialect writes it); this module turns those units into
nano-USD with the image model's price from the same PriceBook:

1. the image model's per-image prices (``images:`` in tollway.yaml, which win), else
2. its output-image token rate (genai-prices; the plain output rate when it lists no
   image rate) x the tokens OpenAI publishes for that size and quality
   (:data:`IMAGE_TOKENS`, gpt-image-1's table), else
3. unknown: the whole call's cost is unknown, never $0 for the image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tollway.core.dialects.openai_responses.response import DEFAULT_IMAGE_MODEL, IMAGE_UNIT_PREFIX

if TYPE_CHECKING:
    from tollway.core.cost.pricing import ModelPrice

TOKENS_PER_PRICE_UNIT = 1_000_000

IMAGE_TOKENS: Mapping[str, Mapping[tuple[str, str], int]] = {
    "gpt-image-1": {
        ("1024x1024", "low"): 272, ("1024x1536", "low"): 408, ("1536x1024", "low"): 400,
        ("1024x1024", "medium"): 1056, ("1024x1536", "medium"): 1584,
        ("1536x1024", "medium"): 1568,
        ("1024x1024", "high"): 4160, ("1024x1536", "high"): 6240,
        ("1536x1024", "high"): 6208,
    },
}
"""Output tokens of one image per (size, quality), as OpenAI's image generation guide
publishes them for gpt-image-1 (a 1536x1024 high image: 6,208 tokens, $0.25 at $40/M).
Models whose table OpenAI does not publish are priced only by a tollway.yaml override."""


def tool_image_units(units: Mapping[str, int]) -> dict[str, int]:
    """The image-tool units of a call's usage."""
    return {k: v for k, v in units.items() if k.startswith(IMAGE_UNIT_PREFIX) and v}


def split_unit(name: str) -> tuple[str, str, str]:
    """``image_generation:<model>:<size>:<quality>`` -> (model, size, quality)."""
    model, _, rest = name[len(IMAGE_UNIT_PREFIX):].partition(":")
    size, _, quality = rest.partition(":")
    return model, size or "*", quality or "*"


def tool_images_cost(
    units: Mapping[str, int],
    image_price: Callable[[str], ModelPrice | None],
) -> int | None:
    """nano-USD for the image-tool ``units``; None when any image has no known price.
    ``image_price(model)`` returns the image model's ModelPrice (or None)."""
    total = 0
    for name, count in tool_image_units(units).items():
        model, size, quality = split_unit(name)
        price = image_price(model)
        if price is None:
            return None
        each = _per_image(price, model, size, quality)
        if each is None:
            return None
        total += count * each
    return total


def _per_image(price: ModelPrice, model: str, size: str, quality: str) -> int | None:
    if price.image_units():
        return price.image_rate(size, quality) if size != "*" and quality != "*" else None
    tokens = IMAGE_TOKENS.get(model, {}).get((size, quality))
    if tokens is None:
        return None
    rate = price.modalities.get("output_image_tokens", price.output)
    return (tokens * rate + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT


def dearest_tool_image(model: str, image_price: ModelPrice | None) -> int | None:
    """What the dearest image ``model`` can make costs (nano-USD): what a budget holds
    for a Responses call that may draw. None when unknown."""
    if image_price is None:
        return None
    if image_price.image_units():
        return image_price.image_rate(None, None)
    table = IMAGE_TOKENS.get(model)
    if not table:
        return None
    rate = image_price.modalities.get("output_image_tokens", image_price.output)
    return (max(table.values()) * rate + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT


def requested_image_model(extra: Mapping[str, object]) -> str:
    """The image model a request's own ``image_generation`` tool names, else OpenAI's
    default for the tool."""
    tools = extra.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, Mapping) and tool.get("type") == "image_generation":
            model = tool.get("model")
            if isinstance(model, str) and model:
                return model
    return DEFAULT_IMAGE_MODEL
