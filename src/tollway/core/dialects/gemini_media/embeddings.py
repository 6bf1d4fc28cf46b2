"""Gemini ``embedContent`` / ``batchEmbedContents`` and Vertex AI ``:predict``
embeddings, sans-I/O.

- Gemini API: one text goes to ``embedContent``, several to ``batchEmbedContents`` (at
  most :data:`GEMINI_MAX_INPUTS` a request). ``input_type`` becomes ``taskType``
  (``RETRIEVAL_QUERY`` / ``RETRIEVAL_DOCUMENT``), ``dimensions`` ``outputDimensionality``;
  ``extra`` goes into each per-text request (``title``, another ``taskType``).
  The answers carry no token count (recorded traffic: none): the usage is then
  tollway's estimate and ``usage_estimated`` says so; a ``usageMetadata`` is read when
  present.
- Vertex AI: ``instances`` of ``{"content", "task_type"}``, ``parameters.
  outputDimensionality``; each prediction reports its ``statistics.token_count``.
  ``gemini-embedding-*`` takes one instance a request, ``text-embedding-*`` up to 250.
  Vertex bills its text embedding models (``text-embedding-*``,
  ``text-multilingual-embedding-*``) per character: the answer's
  ``metadata.billableCharacterCount`` (or per-prediction
  ``statistics.billable_character_count``) is ``Usage.units["input_characters"]``,
  priced by a price's ``input_characters`` rate. When the answer has no count, the
  characters are counted as Vertex counts them (whitespace excluded) and the usage is
  marked estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tollway.core.dialects._batching import batches, estimate_tokens
from tollway.core.dialects.base import Exchange, HttpRequest
from tollway.core.dialects.gemini.errors import parse_error
from tollway.core.errors import ProviderError, ServerError
from tollway.core.media_types import EmbeddingRequest, EmbeddingResponse, InputType
from tollway.core.types import Usage

__all__ = ["GeminiEmbeddingDialect", "VertexEmbeddingDialect"]

GEMINI_MAX_INPUTS = 100
VERTEX_MAX_INPUTS = 250
VERTEX_MAX_TOKENS = 20_000
TASK_TYPES: dict[str, str] = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}


def _task(input_type: InputType | None) -> str | None:
    return None if input_type is None else TASK_TYPES[input_type]


def _values(item: Any) -> list[float]:
    if not isinstance(item, Mapping) or not isinstance(item.get("values"), list):
        raise ServerError("an embedding in the answer has no 'values' list")
    try:
        return [float(x) for x in item["values"]]
    except (TypeError, ValueError):
        raise ServerError("an embedding's values are not numbers") from None


def _estimated(texts: list[str]) -> Usage:
    return Usage(input_tokens=sum(estimate_tokens(t) for t in texts))


def _checked(vectors: list[list[float]], exchange: Exchange) -> list[list[float]]:
    if len(vectors) != len(exchange.inputs):
        raise ServerError(
            f"asked for {len(exchange.inputs)} embeddings, the provider returned {len(vectors)}"
        )
    return vectors


@dataclass(frozen=True, slots=True)
class GeminiEmbeddingDialect:
    name: str = "gemini_embeddings"
    max_inputs: int = GEMINI_MAX_INPUTS

    def _item(self, text: str, request: EmbeddingRequest, model: str | None) -> dict[str, Any]:
        item: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
        if model is not None:
            item["model"] = f"models/{model}"
        task = _task(request.input_type)
        if task is not None:
            item["taskType"] = task
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        item.update(request.extra)
        return item

    def exchanges(self, request: EmbeddingRequest, model: str) -> list[Exchange]:
        name = model.removeprefix("models/")
        headers = dict(request.extra_headers)
        out = []
        for texts in batches(request.inputs, self.max_inputs):
            if len(texts) == 1:
                http = HttpRequest(
                    f"/models/{name}:embedContent", self._item(texts[0], request, None), headers
                )
            else:
                body = {"requests": [self._item(t, request, name) for t in texts]}
                http = HttpRequest(f"/models/{name}:batchEmbedContents", body, headers)
            out.append(Exchange(http, texts))
        return out

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, model: str
    ) -> EmbeddingResponse:
        if "embeddings" in body:
            listed = body["embeddings"]
            if not isinstance(listed, list):
                raise ServerError("'embeddings' in the answer is not a list")
            vectors = [_values(item) for item in listed]
        elif "embedding" in body:
            vectors = [_values(body["embedding"])]
        else:
            raise ServerError("a Gemini embeddings answer has neither 'embedding' nor 'embeddings'")
        meta = body.get("usageMetadata")
        tokens = meta.get("promptTokenCount") if isinstance(meta, Mapping) else None
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            usage, estimated = Usage(input_tokens=tokens), False
        else:
            usage, estimated = _estimated(exchange.inputs), True
        return EmbeddingResponse(
            vectors=_checked(vectors, exchange), model=model.removeprefix("models/"),
            provider="", usage=usage, usage_estimated=estimated,
        )

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return parse_error(status, body, headers)


CHARACTERS_UNIT = "input_characters"


def _count(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    return None


def billable_characters(text: str) -> int:
    """Characters as Vertex bills them: every UTF-8 code point but whitespace."""
    return sum(1 for ch in text if not ch.isspace())


def _billed_characters(body: Mapping[str, Any], predictions: list[Any]) -> int | None:
    """The answer's billable character count: ``metadata.billableCharacterCount``,
    else the per-prediction ``statistics.billable_character_count`` summed (None when
    the answer says neither)."""
    meta = body.get("metadata")
    total = _count(meta.get("billableCharacterCount")) if isinstance(meta, Mapping) else None
    if total is not None:
        return total
    found = False
    total = 0
    for item in predictions:
        embeddings = item.get("embeddings") if isinstance(item, Mapping) else None
        stats = embeddings.get("statistics") if isinstance(embeddings, Mapping) else None
        count = _count(stats.get("billable_character_count")) if isinstance(stats, Mapping) else None
        if count is not None:
            found = True
            total += count
    return total if found else None


def bills_characters(model: str) -> bool:
    """Vertex's text embedding models, billed per character (gemini-embedding-* is
    billed per token)."""
    name = model.removeprefix("models/").rsplit("/", 1)[-1]
    return not name.startswith("gemini-") and "embedding" in name


@dataclass(frozen=True, slots=True)
class VertexEmbeddingDialect:
    name: str = "vertex_embeddings"
    max_inputs: int = VERTEX_MAX_INPUTS
    max_tokens: int = VERTEX_MAX_TOKENS

    def exchanges(self, request: EmbeddingRequest, model: str) -> list[Exchange]:
        name = model.removeprefix("models/")
        limit = 1 if name.startswith("gemini-embedding") else self.max_inputs
        task = _task(request.input_type)
        parameters: dict[str, Any] = {}
        if request.dimensions is not None:
            parameters["outputDimensionality"] = request.dimensions
        out = []
        for texts in batches(request.inputs, limit, self.max_tokens):
            instances = []
            for text in texts:
                instance: dict[str, Any] = {"content": text}
                if task is not None:
                    instance["task_type"] = task
                instance.update(request.extra)
                instances.append(instance)
            body: dict[str, Any] = {"instances": instances}
            if parameters:
                body["parameters"] = parameters
            http = HttpRequest(f"/models/{name}:predict", body, dict(request.extra_headers))
            out.append(Exchange(http, texts))
        return out

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, model: str
    ) -> EmbeddingResponse:
        predictions = body.get("predictions")
        if not isinstance(predictions, list):
            raise ServerError("a Vertex embeddings answer has no 'predictions' list")
        vectors: list[list[float]] = []
        tokens = 0
        counted = True
        for item in predictions:
            embeddings = item.get("embeddings") if isinstance(item, Mapping) else None
            vectors.append(_values(embeddings))
            stats = embeddings.get("statistics") if isinstance(embeddings, Mapping) else None
            count = stats.get("token_count") if isinstance(stats, Mapping) else None
            if isinstance(count, int | float) and not isinstance(count, bool):
                tokens += int(count)
            else:
                counted = False
        usage = Usage(input_tokens=tokens) if counted else _estimated(exchange.inputs)
        estimated = not counted
        characters = _billed_characters(body, predictions)
        if characters is None and bills_characters(model):
            characters = sum(billable_characters(t) for t in exchange.inputs)
            estimated = True
        if characters is not None:
            usage.units[CHARACTERS_UNIT] = characters
        return EmbeddingResponse(
            vectors=_checked(vectors, exchange), model=model, provider="", usage=usage,
            usage_estimated=estimated,
        )

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return parse_error(status, body, headers)
