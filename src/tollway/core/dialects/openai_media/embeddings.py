"""OpenAI ``POST /embeddings`` (and every server that copies it: Azure, Ollama, vLLM,
Mistral, Together, LiteLLM proxy...), sans-I/O.

Vectors come back as float lists, or, with ``encoding_format: "base64"`` (the OpenAI
Python SDK's default), as base64 of little-endian float32: both decode to float lists
here. ``data[].index`` orders them, whatever order the server listed them in.
``input_type`` has no OpenAI equivalent and is not sent.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tollway.core.dialects._batching import batches, estimate_tokens
from tollway.core.dialects.base import Exchange, HttpRequest
from tollway.core.dialects.openai_chat.errors import error_from_http
from tollway.core.errors import ProviderError, ServerError
from tollway.core.media_types import EmbeddingRequest, EmbeddingResponse
from tollway.core.types import Usage

__all__ = ["OpenAIEmbeddingDialect", "decode_vector"]

MAX_INPUTS = 2048
"""OpenAI's cap on inputs per request."""
MAX_TOKENS = 250_000
"""OpenAI caps a request at 300,000 tokens; batches are cut below it by the estimate."""


def decode_vector(value: Any) -> list[float]:
    """A float list, or base64 little-endian float32 (``encoding_format: base64``)."""
    if isinstance(value, str):
        raw = base64.b64decode(value)
        if len(raw) % 4:
            raise ValueError(f"base64 embedding of {len(raw)} bytes is not float32 data")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(value, list):
        return [float(x) for x in value]
    raise ValueError(f"an embedding must be a list of floats or base64; got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class OpenAIEmbeddingDialect:
    """``max_inputs`` / ``max_tokens``: the provider's batch limits; ``dimensions_field``:
    where the requested size goes (Mistral calls it ``output_dimension``)."""

    name: str = "openai_embeddings"
    max_inputs: int = MAX_INPUTS
    max_tokens: int | None = MAX_TOKENS
    dimensions_field: str = "dimensions"

    def exchanges(self, request: EmbeddingRequest, model: str) -> list[Exchange]:
        out = []
        for texts in batches(request.inputs, self.max_inputs, self.max_tokens):
            body: dict[str, Any] = {"model": model, "input": texts}
            if request.dimensions is not None:
                body[self.dimensions_field] = request.dimensions
            body.update(request.extra)
            out.append(Exchange(HttpRequest("/embeddings", body, dict(request.extra_headers)), texts))
        return out

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, model: str
    ) -> EmbeddingResponse:
        data = body.get("data")
        if not isinstance(data, list):
            raise ServerError("an embeddings answer has no 'data' list", body=str(body)[:200])
        try:
            ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
            vectors = [decode_vector(item.get("embedding")) for item in ordered]
        except (ValueError, TypeError, AttributeError) as exc:
            raise ServerError(f"an embeddings answer is malformed: {exc}") from None
        if len(vectors) != len(exchange.inputs):
            raise ServerError(
                f"asked for {len(exchange.inputs)} embeddings, the provider returned {len(vectors)}"
            )
        usage = body.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        estimated = not tokens and any(exchange.inputs)
        if estimated:  # a compatible server that reports no usage: priced on the estimate
            tokens = sum(estimate_tokens(text) for text in exchange.inputs)
        return EmbeddingResponse(
            vectors=vectors,
            model=str(body.get("model") or model),
            provider="",
            usage=Usage(input_tokens=tokens),
            usage_estimated=estimated,
        )

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return error_from_http(status, body, headers)
