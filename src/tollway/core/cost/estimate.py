"""The upper bound of a call, before it is made: what budgets reserve.

A reservation must be at least what the call will cost, or concurrent calls could
overshoot a budget; and it should not be wildly more, or a budget denies calls it could
afford. The rules (documented in the README, pinned by tests):

Input tokens (no tokenizer is loaded; this runs in microseconds):

- text (message text, thinking, tool-call arguments, tool results, tool definitions
  and the response-format schema as JSON): ASCII characters at 4 per token, rounded
  up, plus one token per other character (CJK and most non-Latin scripts tokenize at
  about one token per character, so they are never undercounted 4x);
- :data:`MESSAGE_OVERHEAD` tokens per message and :data:`REQUEST_OVERHEAD` per request
  (role markers and the reply primer every chat template adds);
- each image :data:`IMAGE_TOKENS`, each audio clip or non-text file
  :data:`MEDIA_TOKENS` (fixed amounts: the real count depends on the provider's
  resizing / page rendering, which is not known here); a text file counts as text.

Output tokens: the request's ``max_tokens`` when given (every provider stops there,
reasoning included); else the model's known ``max_output_tokens`` (from the price
table or a price override); else ``default_max_output_tokens``
(:data:`DEFAULT_MAX_OUTPUT_TOKENS`, configurable) plus any reasoning ``budget_tokens``.
A call that generates more than its bound still settles at its real cost; only the
reservation was short. Set ``max_tokens`` to make the bound exact.

Cost: the model's price of (estimated input, output bound); when the model bills
reasoning at a higher rate than output, the dearer of the two. When the model rates
audio / image / video input apart from text (Gemini 2.5 Flash audio: $1.00/M against
$0.30/M), the media allowances above are priced at those rates.

Embeddings (:func:`embedding_bound`): the texts' tokens by the same text rule, at the
input rate; no output.

A chat call asking for images (``output_modalities``) of a model with an image-output
rate reserves every output token at that rate; a Responses call's tool images are added
by the budget guard (:func:`tollway.core.cost.tool_images.tool_image_bound`).

Images (:func:`image_bound`): for a model priced per image, ``n`` times the image's
price at the requested size and quality, or the dearest size / quality the price lists
when the request leaves either open; for a token-priced model (gpt-image, Gemini image
models), the prompt's tokens plus :data:`IMAGE_TOKENS` per input image at the input
rates and ``n`` times the most image tokens one image can take at that quality
(:data:`IMAGE_OUTPUT_TOKENS`) at the image-output rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tollway.core.dialects._batching import estimate_tokens
from tollway.core.media_types import EmbeddingRequest, ImageRequest
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    Request,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    Usage,
)

if TYPE_CHECKING:
    from tollway.core.cost.pricing import ModelPrice

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "IMAGE_OUTPUT_TOKENS",
    "IMAGE_TOKENS",
    "MEDIA_TOKENS",
    "MESSAGE_OVERHEAD",
    "REQUEST_OVERHEAD",
    "Bound",
    "embedding_bound",
    "estimate_input_tokens",
    "image_bound",
    "output_bound",
    "upper_bound",
]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
REQUEST_OVERHEAD = 3
IMAGE_TOKENS = 1_600
"""About the most a single image costs on the major APIs at default detail (Anthropic
~1,600 for a 1.15-megapixel image; OpenAI high detail 1,105 for 1024x1024; Gemini 258)."""
MEDIA_TOKENS = 4_000
"""An audio clip or a binary document (PDF): a fixed allowance, not a measurement."""
DEFAULT_MAX_OUTPUT_TOKENS = 4_096
TOOL_OVERHEAD = 8


_text_tokens = estimate_tokens
"""The text rule of the module docstring (shared with the embedding batcher)."""


def _json_tokens(value: Any) -> int:
    try:
        return _text_tokens(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return _text_tokens(str(value))


def _part_tokens(part: Any) -> int:
    kind = part.__class__
    if kind is Text:
        return _text_tokens(part.text)
    if kind is ToolCall:
        return _text_tokens(part.name) + _text_tokens(part.arguments_json) + TOOL_OVERHEAD
    if kind is ToolResult:
        content = part.content
        if isinstance(content, str):
            return _text_tokens(content) + TOOL_OVERHEAD
        return sum(_part_tokens(p) for p in content) + TOOL_OVERHEAD
    if kind is Thinking:
        return _text_tokens(part.text) + _text_tokens(part.signature or "") // 4
    if kind is Image:
        return IMAGE_TOKENS
    if kind is File:
        if part.data is not None and (part.media_type or "").startswith("text/"):
            return _text_tokens(part.data.decode("utf-8", "replace"))
        return MEDIA_TOKENS
    if kind is Audio:
        return MEDIA_TOKENS
    return _text_tokens(str(getattr(part, "text", "")))


def _message_tokens(message: Message) -> int:
    total = MESSAGE_OVERHEAD
    for part in message.parts:
        total += _part_tokens(part)
    return total


def estimate_input_tokens(request: Request) -> int:
    """Input tokens of ``request`` by the rules in the module docstring."""
    total = REQUEST_OVERHEAD
    for message in request.messages:
        total += _message_tokens(message)
    for tool in request.tools:
        total += TOOL_OVERHEAD + _text_tokens(tool.name) + _text_tokens(tool.description)
        total += _json_tokens(tool.parameters)
    fmt = request.response_format
    if fmt is not None and fmt.schema is not None:
        total += TOOL_OVERHEAD + _json_tokens(fmt.schema)
    return total


def output_bound(
    request: Request, price: ModelPrice | None, default_max_output_tokens: int
) -> int:
    """The most output tokens the call can produce (rules in the module docstring)."""
    if request.max_tokens is not None:
        return request.max_tokens
    known = price.max_output_tokens if price is not None else None
    if known:
        return known
    reasoning = request.reasoning
    extra = reasoning.budget_tokens if reasoning is not None and reasoning.budget_tokens else 0
    return default_max_output_tokens + extra


@dataclass(frozen=True, slots=True)
class Bound:
    """A call's reservation: estimated input tokens, output bound, cost bound (nano-USD,
    None when the model has no known price)."""

    input_tokens: int
    output_tokens: int
    cost_nanos: int | None


def upper_bound(
    request: Request,
    price: ModelPrice | None,
    *,
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
    input_tokens: int | None = None,
) -> Bound:
    """The call's upper bound; ``input_tokens`` may be passed when already estimated."""
    est_in = estimate_input_tokens(request) if input_tokens is None else input_tokens
    out = output_bound(request, price, default_max_output_tokens)
    if price is None:
        return Bound(est_in, out, None)
    usage = Usage(input_tokens=est_in, output_tokens=out)
    if price.modalities:
        _add_media(usage, request.messages)
        if request.wants_images and "output_image_tokens" in price.modalities:
            # An image model asked to draw may spend all of its output on images, at
            # the image rate (Gemini image output: $30/M against $2.50/M for text).
            usage.output_image_tokens = out
    cost = price.cost_nanos(usage)
    if not price.tiers and price.reasoning is None:
        return Bound(est_in, out, cost)  # no reasoning rate anywhere: nothing to compare
    rates = price.rates_for(est_in)
    if rates.reasoning is not None and rates.reasoning > rates.output:
        usage.reasoning_tokens = out
        cost = max(cost, price.cost_nanos(usage))
    return Bound(est_in, out, cost)


def _add_media(usage: Usage, messages: list[Message]) -> None:
    """Count the media allowances of ``messages`` into ``usage``'s input modalities
    (a PDF or other binary document as image, the way Gemini bills documents)."""
    for message in messages:
        for part in message.parts:
            _add_part_media(usage, part)


def _add_part_media(usage: Usage, part: Any) -> None:
    kind = part.__class__
    if kind is Image:
        usage.input_image_tokens += IMAGE_TOKENS
    elif kind is Audio:
        usage.input_audio_tokens += MEDIA_TOKENS
    elif kind is File:
        media = part.media_type or ""
        if media.startswith("text/"):
            return  # text: already counted at the text rate
        if media.startswith("video/"):
            usage.input_video_tokens += MEDIA_TOKENS
        elif media.startswith("audio/"):
            usage.input_audio_tokens += MEDIA_TOKENS
        else:
            usage.input_image_tokens += MEDIA_TOKENS
    elif kind is ToolResult and not isinstance(part.content, str):
        for inner in part.content:
            _add_part_media(usage, inner)


IMAGE_OUTPUT_TOKENS: dict[str | None, int] = {"low": 408, "medium": 1584, "high": 6240}
"""The most output tokens one image takes at a quality (gpt-image-1's table, largest
size); any other or no quality: the high figure, which also covers Gemini's 1,290-2,520."""


def embedding_bound(request: EmbeddingRequest, price: ModelPrice | None) -> Bound:
    tokens = sum(_text_tokens(text) for text in request.inputs)
    if price is None:
        return Bound(tokens, 0, None)
    return Bound(tokens, 0, price.cost_nanos(Usage(input_tokens=tokens)))


def image_bound(request: ImageRequest, price: ModelPrice | None) -> Bound:
    n = request.n
    if price is not None and price.image_units():
        rate = price.image_rate(request.size, request.quality)
        return Bound(0, 0, None if rate is None else n * rate)
    images_in = len(request.images) + (request.mask is not None)
    text_in = _text_tokens(request.prompt)
    tokens_in = text_in + images_in * IMAGE_TOKENS
    per_image = IMAGE_OUTPUT_TOKENS.get(request.quality, IMAGE_OUTPUT_TOKENS["high"])
    out = n * per_image
    if price is None:
        return Bound(tokens_in, out, None)
    usage = Usage(
        input_tokens=tokens_in, output_tokens=out,
        input_image_tokens=images_in * IMAGE_TOKENS, output_image_tokens=out,
    )
    return Bound(tokens_in, out, price.cost_nanos(usage))
