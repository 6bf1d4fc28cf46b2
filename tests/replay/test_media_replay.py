"""Replay every recorded embeddings and images interaction (corpus A and C) through the
media dialects: the recorded request is rebuilt from its canonical form, the recorded
answer parses to the vectors / images the raw body holds (decoded here with small
independent code: struct for base64 float32, json for lists), errors are typed.
Skips cleanly when the corpus is absent."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_dir
from tollway.core.dialects.base import Exchange, HttpRequest
from tollway.core.dialects.gemini_media import GeminiEmbeddingDialect
from tollway.core.dialects.openai_media import OpenAIEmbeddingDialect, OpenAIImageDialect
from tollway.core.errors import BadRequestError, NotFoundError
from tollway.core.inputs import build_embedding_request, build_image_request

ENDPOINTS = ("embeddings", "images.generations", "batchEmbedContents")


def _interactions() -> list[Any]:
    folders = [corpus_dir(), corpus_dir().parent / "C"]
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            record = json.loads(path.read_text())
            if record.get("endpoint") in ENDPOINTS:
                found.append(pytest.param(record, id=f"{folder.name}/{path.stem}"))
    if not found:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no corpus with embeddings"))]
    return found


def _floats(value: Any) -> list[float]:
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(x) for x in value]


@pytest.mark.parametrize("record", _interactions())
def test_recorded_media_interaction_replays(record: dict[str, Any]) -> None:
    request, endpoint, status = record["request"], record["endpoint"], record["status"]
    body = record["response_body"]
    if endpoint == "embeddings":
        _openai_embeddings(request, status, body)
    elif endpoint == "batchEmbedContents":
        _gemini_embeddings(record["url"], request, status, body)
    else:
        _openai_images(request, status, body)


def _openai_embeddings(request: dict[str, Any], status: int, body: str) -> None:
    dialect = OpenAIEmbeddingDialect()
    extra = {k: v for k, v in request.items() if k not in ("model", "input", "dimensions")}
    canonical = build_embedding_request(request["input"], dimensions=request.get("dimensions"),
                                        **extra)
    [exchange] = dialect.exchanges(canonical, request["model"])
    assert exchange.http.path == "/embeddings"
    texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
    assert exchange.http.json == {**request, "input": texts}  # one text is sent as a list
    if status >= 400:
        error = dialect.parse_error(status, body, {})
        assert isinstance(error, NotFoundError) and error.status == 404
        return
    raw = json.loads(body)
    result = dialect.parse_response(raw, exchange, request["model"])
    assert result.vectors == [pytest.approx(_floats(d["embedding"])) for d in raw["data"]]
    assert result.dimensions == request.get("dimensions", result.dimensions) > 0
    assert result.usage.input_tokens == raw["usage"]["prompt_tokens"]
    assert result.model == raw["model"] and not result.usage_estimated


def _gemini_embeddings(url: str, request: dict[str, Any], status: int, body: str) -> None:
    dialect = GeminiEmbeddingDialect()
    model = url.rsplit("/models/", 1)[1].split(":", 1)[0]
    first = request["requests"][0]
    task = {"RETRIEVAL_QUERY": "query", "RETRIEVAL_DOCUMENT": "document"}[first["taskType"]]
    texts = [r["content"]["parts"][0]["text"] for r in request["requests"]]
    canonical = build_embedding_request(texts, dimensions=first.get("outputDimensionality"),
                                        input_type=task)
    # The recorder sent one text through batchEmbedContents; tollway sends one text to
    # embedContent. The per-text object is the same, and a batch is rebuilt exactly.
    [single] = dialect.exchanges(canonical, model)
    assert single.http.path == f"/models/{model}:embedContent"
    assert {**single.http.json, "model": f"models/{model}"} == first
    batch_body = {"requests": [dialect._item(t, canonical, model) for t in texts]}
    assert batch_body == request
    exchange = Exchange(HttpRequest(f"/models/{model}:batchEmbedContents", batch_body), texts)
    if status >= 400:
        error = dialect.parse_error(status, body, {})
        assert isinstance(error, NotFoundError) and "not found" in str(error)
        return
    raw = json.loads(body)
    result = dialect.parse_response(raw, exchange, model)
    assert result.vectors == [pytest.approx(e["values"]) for e in raw["embeddings"]]
    assert result.dimensions == first["outputDimensionality"]
    assert result.usage_estimated and result.usage.input_tokens > 0


def _openai_images(request: dict[str, Any], status: int, body: str) -> None:
    dialect = OpenAIImageDialect()
    extra = {k: v for k, v in request.items()
             if k not in ("model", "prompt", "n", "size", "quality", "output_format")}
    canonical = build_image_request(request["prompt"], size=request.get("size"),
                                    quality=request.get("quality"), n=request.get("n", 1),
                                    **extra)
    [exchange] = dialect.exchanges(canonical, request["model"])
    assert exchange.http.path == "/images/generations"
    sent = dict(exchange.http.json)
    assert {**sent, "n": sent.get("n", 1)} == {**request, "n": request.get("n", 1)}
    if status >= 400:
        error = dialect.parse_error(status, body, {})
        assert isinstance(error, BadRequestError) and "quality" in str(error)
        return
    raw = json.loads(body)
    result = dialect.parse_response(raw, exchange, canonical, request["model"])
    assert [i.url for i in result.images] == [d.get("url") for d in raw["data"]]
    assert all(i.data is None for i in result.images)
    # dall-e-2 is priced per image: one unit per image at its size (quality: standard).
    assert result.usage.units == {f"image:{request['size']}:standard": len(raw["data"])}


def test_the_corpus_has_the_media_interactions_it_claims() -> None:
    folder = corpus_dir().parent / "C"
    if not folder.is_dir():
        pytest.skip(f"no corpus at {folder}")
    endpoints = [json.loads(p.read_text())["endpoint"] for p in Path(folder).glob("*.json")]
    assert endpoints.count("embeddings") == 3 and endpoints.count("images.generations") == 5
