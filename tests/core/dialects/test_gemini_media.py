"""The Gemini / Vertex embeddings and Gemini / Imagen image dialects, sans-I/O."""

from __future__ import annotations

import base64

import pytest

from tests.fakes.replies_media import png
from tollway.core.dialects.base import Exchange, HttpRequest
from tollway.core.dialects.gemini_media import (
    GeminiEmbeddingDialect,
    GeminiImageDialect,
    ImagenDialect,
    VertexEmbeddingDialect,
)
from tollway.core.dialects.gemini_media.images import image_config
from tollway.core.errors import (
    ContentFilterError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from tollway.core.inputs import build_embedding_request, build_image_request

GEMINI = GeminiEmbeddingDialect()
VERTEX = VertexEmbeddingDialect()


def test_gemini_batches_at_100_texts_each_with_its_own_model_and_task() -> None:
    request = build_embedding_request([f"t{i}" for i in range(250)], input_type="document",
                                      title="Doc")
    exchanges = GEMINI.exchanges(request, "models/gemini-embedding-001")
    assert [len(x.inputs) for x in exchanges] == [100, 100, 50]
    first = exchanges[0].http.json["requests"][0]
    assert first == {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "t0"}]},
                     "taskType": "RETRIEVAL_DOCUMENT", "title": "Doc"}


def test_gemini_usage_metadata_is_read_when_present() -> None:
    exchange = Exchange(HttpRequest("/x", {}), ["a", "b"])
    body = {"embeddings": [{"values": [1.0]}, {"values": [2.0]}],
            "usageMetadata": {"promptTokenCount": 7}}
    result = GEMINI.parse_response(body, exchange, "gemini-embedding-001")
    assert result.usage.input_tokens == 7 and not result.usage_estimated
    with pytest.raises(ServerError, match="returned 1"):
        GEMINI.parse_response({"embeddings": [{"values": [1.0]}]}, exchange, "m")
    with pytest.raises(ServerError, match="neither"):
        GEMINI.parse_response({}, exchange, "m")


def test_vertex_sends_one_text_a_request_to_gemini_embedding_models() -> None:
    request = build_embedding_request(["a", "b", "c"], dimensions=256)
    assert [len(x.inputs) for x in VERTEX.exchanges(request, "gemini-embedding-001")] == [1, 1, 1]
    [batch] = VERTEX.exchanges(request, "text-embedding-005")
    assert batch.http.json == {"instances": [{"content": t} for t in "abc"],
                               "parameters": {"outputDimensionality": 256}}


def test_vertex_without_token_counts_falls_back_to_the_estimate() -> None:
    exchange = Exchange(HttpRequest("/x", {}), ["abcd"])
    result = VERTEX.parse_response({"predictions": [{"embeddings": {"values": [0.5]}}]},
                                   exchange, "text-embedding-005")
    assert result.usage_estimated and result.usage.input_tokens == 1


def test_vertex_reads_the_billable_character_count_or_counts_as_vertex_does() -> None:
    exchange = Exchange(HttpRequest("/x", {}), ["a b c", "dé f"])
    values = {"values": [0.5], "statistics": {"token_count": 3}}
    reported = VERTEX.parse_response(
        {"predictions": [{"embeddings": values}] * 2, "metadata": {"billableCharacterCount": 41}},
        exchange, "text-embedding-005",
    )
    assert reported.usage.units == {"input_characters": 41} and not reported.usage_estimated
    per_prediction = VERTEX.parse_response(
        {"predictions": [{"embeddings": {**values, "statistics": {
            "token_count": 3, "billable_character_count": n}}} for n in (3, 4)]},
        exchange, "text-embedding-005",
    )
    assert per_prediction.usage.units == {"input_characters": 7}
    # No count in the answer: whitespace-free code points, flagged as an estimate.
    counted = VERTEX.parse_response({"predictions": [{"embeddings": values}] * 2}, exchange,
                                    "text-multilingual-embedding-002")
    assert counted.usage.units == {"input_characters": 3 + 3} and counted.usage_estimated
    # gemini-embedding-* on Vertex is billed per token: no character unit is invented.
    gemini = VERTEX.parse_response({"predictions": [{"embeddings": values}] * 2}, exchange,
                                   "gemini-embedding-001")
    assert gemini.usage.units == {} and gemini.usage.input_tokens == 6


def test_google_errors_are_typed() -> None:
    body = b'{"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}'
    assert isinstance(GEMINI.parse_error(404, body, {}), NotFoundError)
    body = (b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", '
            b'"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4s"}]}}')
    error = GeminiImageDialect().parse_error(429, body, {})
    assert isinstance(error, RateLimitError) and error.retry_after == 4


@pytest.mark.parametrize(("size", "config"), [
    ("1024x1024", {"aspectRatio": "1:1"}), ("1536x1024", {"aspectRatio": "3:2"}),
    ("16:9", {"aspectRatio": "16:9"}), ("2k", {"imageSize": "2K"}), (None, {}),
])
def test_sizes_map_to_gemini_image_config(size: str | None, config: dict[str, str]) -> None:
    assert image_config(size) == config


def test_a_size_gemini_cannot_read_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="aspect ratio"):
        image_config("large")


def test_gemini_edit_sends_the_image_inline() -> None:
    request = build_image_request("add a hat", image=png())
    [exchange] = GeminiImageDialect().exchanges(request, "gemini-2.5-flash-image")
    parts = exchange.http.json["contents"][0]["parts"]
    assert parts[0] == {"text": "add a hat"}
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == png()


def test_a_blocked_gemini_image_prompt_is_a_content_filter_error() -> None:
    request = build_image_request("x")
    exchange = Exchange(HttpRequest("/x", {}))
    with pytest.raises(ContentFilterError):
        GeminiImageDialect().parse_response({"promptFeedback": {"blockReason": "SAFETY"}},
                                            exchange, request, "gemini-2.5-flash-image")


def test_imagen_refuses_edits_and_quality_and_skips_filtered_predictions() -> None:
    imagen = ImagenDialect()
    with pytest.raises(InvalidRequestError, match="Imagen generates"):
        imagen.exchanges(build_image_request("x", image=png()), "imagen-4.0-generate-001")
    with pytest.raises(InvalidRequestError, match="quality"):
        imagen.exchanges(build_image_request("x", quality="hd"), "imagen-4.0-generate-001")
    request = build_image_request("x", n=2)
    body = {"predictions": [{"bytesBase64Encoded": base64.b64encode(png()).decode(),
                             "mimeType": "image/png"}, {"raiFilteredReason": "blocked"}]}
    result = imagen.parse_response(body, Exchange(HttpRequest("/x", {})), request, "imagen-4")
    assert len(result.images) == 1 and result.usage.units == {"image:default:default": 1}
