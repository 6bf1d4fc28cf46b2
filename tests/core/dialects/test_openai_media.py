"""The OpenAI embeddings and images dialects, sans-I/O: bodies built, answers and errors
parsed, with no server."""

from __future__ import annotations

import base64
import struct
from email.parser import BytesParser
from email.policy import HTTP

import pytest

from tests.fakes.replies_media import png
from tollway.core.dialects.base import Exchange, HttpRequest
from tollway.core.dialects.openai_media import (
    OpenAIEmbeddingDialect,
    OpenAIImageDialect,
    decode_vector,
)
from tollway.core.dialects.openai_media.multipart import FilePart, encode_multipart
from tollway.core.errors import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
)
from tollway.core.inputs import build_embedding_request, build_image_request
from tollway.core.providers import embedding_dialect_for, provider_spec

EMBED = OpenAIEmbeddingDialect()
IMAGES = OpenAIImageDialect()


def test_base64_float32_decodes_exactly() -> None:
    values = [0.5, -1.25, 3.0]
    packed = base64.b64encode(struct.pack("<3f", *values)).decode()
    assert decode_vector(packed) == values
    with pytest.raises(ValueError, match="not float32"):
        decode_vector(base64.b64encode(b"12345").decode())


def test_batches_respect_the_input_and_token_caps_in_order() -> None:
    small = OpenAIEmbeddingDialect(max_inputs=3, max_tokens=10)
    texts = ["a" * 16, "b" * 16, "c" * 4, "d" * 80, "e"]  # 4, 4, 1, 20, 1 tokens
    batches = [x.inputs for x in small.exchanges(build_embedding_request(texts), "m")]
    assert batches == [["a" * 16, "b" * 16, "c" * 4], ["d" * 80], ["e"]]
    assert [t for b in batches for t in b] == texts


def test_extra_parameters_pass_through_and_mistral_names_dimensions_its_way() -> None:
    request = build_embedding_request("x", dimensions=256, user="u1", encoding_format="base64")
    [exchange] = EMBED.exchanges(request, "text-embedding-3-large")
    assert exchange.http.json == {"model": "text-embedding-3-large", "input": ["x"],
                                  "dimensions": 256, "user": "u1", "encoding_format": "base64"}
    mistral = embedding_dialect_for(provider_spec("mistral"))  # type: ignore[arg-type]
    [exchange] = mistral.exchanges(request, "codestral-embed")
    assert exchange.http.json["output_dimension"] == 256 and "dimensions" not in exchange.http.json


def test_embedding_answers_that_do_not_fit_are_server_errors() -> None:
    exchange = Exchange(HttpRequest("/embeddings", {}), ["a", "b"])
    with pytest.raises(ServerError, match="asked for 2 embeddings"):
        EMBED.parse_response({"data": [{"index": 0, "embedding": [1.0]}]}, exchange, "m")
    with pytest.raises(ServerError, match="no 'data' list"):
        EMBED.parse_response({"object": "list"}, exchange, "m")
    with pytest.raises(ServerError, match="malformed"):
        EMBED.parse_response({"data": [{"index": 0, "embedding": {"x": 1}},
                                       {"index": 1, "embedding": [1.0]}]}, exchange, "m")


def test_an_answer_without_usage_is_priced_on_the_estimate_and_says_so() -> None:
    exchange = Exchange(HttpRequest("/embeddings", {}), ["abcdefgh"])
    result = EMBED.parse_response({"data": [{"index": 0, "embedding": [0.1]}]}, exchange, "m")
    assert result.usage.input_tokens == 2 and result.usage_estimated


def test_embedding_errors_are_typed() -> None:
    body = b'{"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}}'
    assert isinstance(EMBED.parse_error(401, body, {}), AuthenticationError)
    limited = EMBED.parse_error(429, b'{"error": {"message": "slow"}}', {"retry-after": "2"})
    assert isinstance(limited, RateLimitError) and limited.retry_after == 2


def test_generation_sends_only_the_parameters_given() -> None:
    [exchange] = IMAGES.exchanges(build_image_request("a cat"), "dall-e-2")
    assert exchange.http.json == {"model": "dall-e-2", "prompt": "a cat"}
    request = build_image_request("a cat", size="1536x1024", quality="high", n=3,
                                  output_format="webp", background="transparent")
    [exchange] = IMAGES.exchanges(request, "gpt-image-1")
    assert exchange.http.json == {"model": "gpt-image-1", "prompt": "a cat", "n": 3,
                                  "size": "1536x1024", "quality": "high",
                                  "output_format": "webp", "background": "transparent"}


def test_an_edit_is_a_valid_multipart_body_with_every_image() -> None:
    images = [png(2, 2, (1, 2, 3)), png(3, 3, (4, 5, 6))]
    request = build_image_request("merge them", image=images, n=2, quality="low")
    [exchange] = IMAGES.exchanges(request, "gpt-image-1")
    http = exchange.http
    assert http.path == "/images/edits" and http.content is not None
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + http.headers["content-type"].encode() + b"\r\n\r\n" + http.content)
    parts = {(p.get_param("name", header="content-disposition"), p.get_filename()): p
             for p in message.iter_parts()}
    assert parts[("prompt", None)].get_content() == "merge them"
    assert parts[("n", None)].get_content() == "2"
    files = [p for (name, _), p in parts.items() if name == "image[]"]
    assert [f.get_payload(decode=True) for f in files] == images
    assert all(f.get_content_type() == "image/png" for f in files)


def test_multipart_quotes_names_and_ends_with_the_closing_boundary() -> None:
    body, ctype = encode_multipart([("a\"b", "v")], [FilePart("f", 'x"y.png', b"\x00", "image/png")],
                                   boundary="B")
    assert ctype == "multipart/form-data; boundary=B"
    assert b'name="a\\"b"' in body and b'filename="x\\"y.png"' in body
    assert body.endswith(b"--B--\r\n")


def test_an_edit_needs_image_bytes() -> None:
    from tollway.core.types import Image

    request = build_image_request("x", image=Image(url="https://example.com/a.png"))
    with pytest.raises(InvalidRequestError, match="bytes, not URLs"):
        IMAGES.exchanges(request, "gpt-image-1")


def test_image_answers_parse_bytes_urls_and_usage() -> None:
    request = build_image_request("x", output_format="jpeg")
    exchange = Exchange(HttpRequest("/images/generations", {}), count=1)
    body = {"created": 5, "data": [{"b64_json": base64.b64encode(b"JPEG").decode()}],
            "usage": {"input_tokens": 30, "output_tokens": 500,
                      "input_tokens_details": {"text_tokens": 10, "image_tokens": 20},
                      "output_tokens_details": {"text_tokens": 100, "image_tokens": 400}}}
    result = IMAGES.parse_response(body, exchange, request, "gpt-image-1.5")
    assert result.image.data == b"JPEG" and result.image.media_type == "image/jpeg"
    u = result.usage
    assert (u.input_tokens, u.input_image_tokens, u.output_tokens, u.output_image_tokens) == (
        30, 20, 500, 400)
    with pytest.raises(ServerError, match="neither b64_json nor url"):
        IMAGES.parse_response({"data": [{}]}, exchange, request, "gpt-image-1")
    with pytest.raises(ServerError, match="not valid base64"):
        IMAGES.parse_response({"data": [{"b64_json": "@@@"}]}, exchange, request, "gpt-image-1")
