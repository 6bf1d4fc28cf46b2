"""Canonical types of the two non-chat endpoints: embeddings and image generation.

The same style as the chat types (``core/types.py``): slotted dataclasses, no wire
format. Dialects translate between these and a provider's JSON; the Model facade fills
the tollway fields (cost, latency, deployment, attribution, trace id) after the call,
exactly as it does for a chat Response.

Usage keeps its one meaning (DESIGN.md): for embeddings ``input_tokens`` are the tokens
embedded; for images ``input_tokens`` are every input token (the prompt's text tokens and,
for edits, the input images' tokens, counted again in ``input_image_tokens``) and
``output_tokens`` the generated image tokens (also in ``output_image_tokens``). Models
priced per image (dall-e, Imagen) report ``units`` such as
``{"image:1024x1024:hd": 2}``: one unit per image, named by size and quality.
"""

from __future__ import annotations

import base64 as _b64
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeAlias

from tollway.core.types import NANOS_PER_USD, Attempt, Image, Usage

InputType: TypeAlias = Literal["query", "document"]
"""What the texts are for: a search ``query`` or a ``document`` to index (providers
with asymmetric embeddings, Gemini's ``taskType`` and Vertex's ``task_type``, embed the
two differently; providers without the notion ignore it)."""

CallKind: TypeAlias = Literal["model", "embedding", "image", "retrieval"]
"""The ledger ``kind`` of a call: ``model`` (chat), ``embedding``, ``image``, or
``retrieval`` (a vector store search, :class:`FeeRequest`)."""
KIND_EMBEDDING: CallKind = "embedding"
KIND_IMAGE: CallKind = "image"


def image_unit(size: str | None, quality: str | None) -> str:
    """The ``Usage.units`` name of one image priced per image: ``image:<size>:<quality>``
    (``default`` where the request left either unset)."""
    return f"image:{size or 'default'}:{quality or 'default'}"


def _cost(nanos: int | None) -> Decimal | None:
    return None if nanos is None else Decimal(nanos) / NANOS_PER_USD


# --------------------------------------------------------------------------- fees


@dataclass(slots=True, frozen=True)
class FeeRequest:
    """A charge that is not a model call, put to the guards like one so budgets,
    rate limits and allowed hours apply to it: a managed vector store's per-search fee
    (``what``: the store). Budgets reserve exactly ``fee_nanos`` (one request, no
    tokens) and the caller settles to what was paid; the deployment it is reserved on
    names the backend (provider) and the store (model), so scopes match it."""

    what: str
    fee_nanos: int = 0


# --------------------------------------------------------------------------- embeddings


@dataclass(slots=True)
class EmbeddingRequest:
    """Texts to embed, in order. ``extra`` is passed through untouched into the body."""

    inputs: list[str]
    dimensions: int | None = None
    input_type: InputType | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EmbeddingResponse:
    """One vector per input text, in input order (whatever order the provider answered
    in, and however many requests the texts were batched into)."""

    vectors: list[list[float]]
    model: str
    provider: str
    usage: Usage = field(default_factory=Usage)
    usage_estimated: bool = False
    """True when the provider reported no token count (Gemini's batchEmbedContents): the
    cost is then priced on tollway's estimate of the input tokens, never left at $0."""
    cost_nanos: int | None = None
    """Cost in nano-USD; None when the model is unpriced (never a silent 0)."""
    latency: float = 0.0
    deployment: str | None = None
    attribution: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    trace_id: str | None = None
    provider_data: dict[str, Any] | None = None

    @property
    def dimensions(self) -> int:
        """The length of each vector (0 for an empty response)."""
        return len(self.vectors[0]) if self.vectors else 0

    @property
    def cost(self) -> Decimal | None:
        """Cost in USD; None when the model has no known price."""
        return _cost(self.cost_nanos)


# --------------------------------------------------------------------------- images


@dataclass(slots=True)
class ImageRequest:
    """Generate (or, with ``images``, edit) ``n`` images from ``prompt``.

    ``size`` (``"1024x1024"``), ``quality`` (``"low"``...``"high"``, ``"standard"`` /
    ``"hd"``) and ``output_format`` (``"png"``, ``"jpeg"``, ``"webp"``) are sent only when
    given (dall-e-2 rejects a quality it does not know). ``images`` / ``mask`` are the
    inputs of an edit.
    """

    prompt: str
    size: str | None = None
    quality: str | None = None
    n: int = 1
    output_format: str | None = None
    images: list[Image] = field(default_factory=list)
    mask: Image | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_edit(self) -> bool:
        return bool(self.images)


@dataclass(slots=True)
class GeneratedImage:
    """One generated image: its bytes (``data``) or a URL the provider hosts it at
    (OpenAI's URLs expire after an hour), with its media type."""

    data: bytes | None = None
    url: str | None = None
    media_type: str = "image/png"
    revised_prompt: str | None = None
    provider_data: dict[str, Any] | None = None

    @property
    def base64(self) -> str:
        return _b64.b64encode(self.data or b"").decode("ascii")

    @property
    def data_url(self) -> str:
        """The image as a URL: the provider's, or a ``data:`` URL of the bytes."""
        if self.url and self.data is None:
            return self.url
        return f"data:{self.media_type};base64,{self.base64}"

    def save(self, path: str | Path) -> Path:
        """Write the bytes to ``path`` (a URL-only image has none: fetch it yourself)."""
        if self.data is None:
            raise ValueError(
                "this image has no bytes, only a URL; ask for output as data "
                "(response_format='b64_json' on dall-e) or download the URL"
            )
        target = Path(path)
        target.write_bytes(self.data)
        return target


@dataclass(slots=True)
class ImageResponse:
    images: list[GeneratedImage]
    model: str
    provider: str
    usage: Usage = field(default_factory=Usage)
    cost_nanos: int | None = None
    """Cost in nano-USD; None when the model is unpriced (never a silent 0)."""
    size: str | None = None
    quality: str | None = None
    """Size and quality as the provider reports them (gpt-image) or as requested."""
    text: str = ""
    """Text the model wrote beside the images (Gemini image models do)."""
    latency: float = 0.0
    deployment: str | None = None
    attribution: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    trace_id: str | None = None
    provider_data: dict[str, Any] | None = None

    @property
    def cost(self) -> Decimal | None:
        """Cost in USD; None when the model has no known price."""
        return _cost(self.cost_nanos)

    @property
    def image(self) -> GeneratedImage:
        """The first image (most calls ask for one)."""
        if not self.images:
            raise IndexError("the provider returned no image")
        return self.images[0]
