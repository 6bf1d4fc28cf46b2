"""Image output inside chat answers, sans-I/O: Gemini ``inlineData`` parts and Responses
``image_generation_call`` items as canonical Image parts (whole and streamed give the
same Response), ``output_modalities`` on the wire, generated images sent back in the
history, and the price of a tool-made image (:mod:`tollway.core.cost.tool_images`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.fakes import replies_gemini as gem
from tests.fakes import replies_openai_responses as rsp
from tests.fakes.replies_media import png
from tollway.core.cost.pricing import PriceBook
from tollway.core.dialects.gemini import DIALECT as GEMINI
from tollway.core.dialects.openai_responses import DIALECT as RESPONSES
from tollway.core.errors import InvalidRequestError
from tollway.core.inputs import build_request
from tollway.core.sse import SSEDecoder
from tollway.core.types import Image, Message, Response, StreamAccumulator, Thinking, Usage

PICTURE = png(3, 2, (10, 200, 90))


def collect(dialect: Any, chunks: list[bytes], model: str) -> Response:
    parser = dialect.stream_parser(None, model)
    decoder = SSEDecoder()
    acc = StreamAccumulator()
    for raw in chunks:
        for event in decoder.feed(raw):
            for out in parser.feed(event):
                acc.add(out)
    for event in decoder.flush():
        for out in parser.feed(event):
            acc.add(out)
    for out in parser.close():
        acc.add(out)
    return acc.response(provider=dialect.name, model=model)


def shape(response: Response) -> list[tuple[str, Any]]:
    return [(type(p).__name__, getattr(p, "data", None) or getattr(p, "text", None))
            for p in response.parts]


# --------------------------------------------------------------------------- Gemini


def test_gemini_request_asks_for_the_modalities() -> None:
    request = build_request("draw", output_modalities=["text", "image"])
    body = GEMINI.build_request(request, gem.IMAGE_MODEL, stream=False).json
    assert body["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    plain = GEMINI.build_request(build_request("hi"), gem.IMAGE_MODEL, stream=False).json
    assert "responseModalities" not in plain.get("generationConfig", {})
    with pytest.raises(InvalidRequestError, match="output_modalities"):
        build_request("draw", output_modalities=["video"])


def test_gemini_image_parts_whole_and_streamed_give_the_same_response() -> None:
    whole = GEMINI.parse_response(gem.image_reply(PICTURE, text="A fox.").body, None,  # type: ignore[arg-type]
                                  gem.IMAGE_MODEL)
    streamed = collect(GEMINI, gem.image_stream(PICTURE, text="A fox.").chunks or [],
                       gem.IMAGE_MODEL)
    assert shape(whole) == shape(streamed) == [("Text", "A fox."), ("Image", PICTURE)]
    assert whole.images[0].media_type == "image/png"
    assert whole.usage == streamed.usage
    assert whole.usage.output_image_tokens == gem.IMAGE_TOKENS


def test_gemini_thought_images_and_undecodable_data_stay_opaque_for_gemini() -> None:
    encoded = base64.b64encode(PICTURE).decode()
    parts = [{"inlineData": {"mimeType": "image/png", "data": encoded}, "thought": True},
             {"inlineData": {"mimeType": "image/png", "data": "%%not base64%%"}},
             {"inlineData": {"mimeType": "image/png", "data": encoded},
              "thoughtSignature": gem.SIGNATURE}]
    body = {"candidates": [{"content": {"parts": parts, "role": "model"},
                            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1290}}
    response = GEMINI.parse_response(body, None, gem.IMAGE_MODEL)
    thought, broken, image = response.parts
    assert isinstance(thought, Thinking) and isinstance(broken, Thinking)
    assert isinstance(image, Image) and image.data == PICTURE
    # Sent back, the final image keeps its signature and the opaque parts are verbatim.
    history = build_request([Message.user("draw"), response.to_message(), Message.user("more")])
    sent = GEMINI.build_request(history, gem.IMAGE_MODEL, stream=False).json["contents"][1]
    assert sent["parts"][0] == parts[0] and sent["parts"][1] == parts[1]
    assert sent["parts"][2] == parts[2]


# --------------------------------------------------------------------------- Responses


def test_responses_request_adds_the_image_generation_tool_once() -> None:
    request = build_request("draw", output_modalities=["image"])
    body = RESPONSES.build_request(request, "gpt-5", stream=False).json
    assert body["tools"] == [{"type": "image_generation"}]
    own = build_request("draw", output_modalities=["image"],
                        extra={"tools": [{"type": "image_generation", "quality": "low"}]})
    body = RESPONSES.build_request(own, "gpt-5", stream=False).json
    assert body["tools"] == [{"type": "image_generation", "quality": "low"}]


def test_responses_image_call_whole_and_streamed_give_the_same_response() -> None:
    reply = rsp.image_generation_reply(PICTURE, text="Done.", quality="low")
    whole = RESPONSES.parse_response(reply.body, None, "gpt-5")  # type: ignore[arg-type]
    streamed = collect(RESPONSES, rsp.image_generation_stream(
        PICTURE, text="Done.", quality="low").chunks or [], "gpt-5")
    assert shape(whole)[1:] == shape(streamed)[1:] == [("Image", PICTURE), ("Text", "Done.")]
    assert whole.usage == streamed.usage
    assert whole.usage.units == {"image_generation:gpt-image-1:1024x1024:low": 1}


def test_an_image_call_without_a_result_is_kept_as_an_item_and_not_billed() -> None:
    body = json.loads(json.dumps(rsp.image_generation_reply(PICTURE).body))
    call = body["output"][1]
    call.update(status="failed", result=None)
    response = RESPONSES.parse_response(body, None, "gpt-5")
    assert response.images == [] and response.usage.units == {}


# --------------------------------------------------------------------------- prices


def test_tool_images_are_priced_by_the_image_model_or_cost_unknown() -> None:
    book = PriceBook()
    base = Usage(input_tokens=100, output_tokens=10)
    plain = book.price("openai", "gpt-5", base)
    assert plain is not None

    def with_unit(unit: str, n: int = 1) -> Usage:
        return Usage(input_tokens=100, output_tokens=10, units={unit: n})

    # gpt-image-1 at $40/M: a low 1024x1536 image is 408 tokens, two are 816.
    assert book.price("openai", "gpt-5", with_unit(
        "image_generation:gpt-image-1:1024x1536:low", 2)) == plain + 2 * 408 * 40_000
    with pytest.warns(UserWarning, match="image tool"):
        assert book.price("openai", "gpt-5", with_unit("image_generation:gpt-image-1:*:*")) is None
    configured = PriceBook({"openai/gpt-image-1": {"images": {"1024x1024": {"low": 0.011}}}})
    assert configured.price("openai", "gpt-5", with_unit(
        "image_generation:gpt-image-1:1024x1024:low")) == plain + 11_000_000
