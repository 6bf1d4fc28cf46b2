"""The upper bound a call reserves: input estimate, output bound, cost bound."""

from __future__ import annotations

from tollway.core.cost.estimate import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    IMAGE_TOKENS,
    MEDIA_TOKENS,
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    estimate_input_tokens,
    output_bound,
    upper_bound,
)
from tollway.core.cost.pricing import ModelPrice
from tollway.core.inputs import build_request
from tollway.core.types import File, Image, Message, Reasoning, ResponseFormat, Text, Tool, ToolCall

BASE = REQUEST_OVERHEAD + MESSAGE_OVERHEAD


def test_ascii_text_counts_four_characters_per_token_rounded_up() -> None:
    assert estimate_input_tokens(build_request("abcd")) == BASE + 1
    assert estimate_input_tokens(build_request("abcde")) == BASE + 2
    assert estimate_input_tokens(build_request("x" * 400)) == BASE + 100


def test_non_ascii_characters_count_one_token_each() -> None:
    # 4 CJK characters + 4 ASCII: never undercounted at 4 characters per token.
    assert estimate_input_tokens(build_request("東京都庁abcd")) == BASE + 4 + 1


def test_every_message_adds_its_overhead() -> None:
    one = estimate_input_tokens(build_request([Message.user("hi")]))
    three = estimate_input_tokens(
        build_request([Message.system("hi"), Message.user("hi"), Message.assistant("hi")])
    )
    assert three - one == 2 * (MESSAGE_OVERHEAD + 1)


def test_images_and_documents_count_fixed_documented_amounts() -> None:
    request = build_request([
        Message.user([Text("look"), Image(url="https://x/y.png"), File(data=b"%PDF", media_type="application/pdf")])
    ])
    assert estimate_input_tokens(request) == BASE + 1 + IMAGE_TOKENS + MEDIA_TOKENS


def test_a_text_file_counts_as_its_text() -> None:
    request = build_request([Message.user([File(data=b"a" * 40, media_type="text/plain")])])
    assert estimate_input_tokens(request) == BASE + 10


def test_tools_tool_calls_and_the_response_schema_are_counted() -> None:
    plain = estimate_input_tokens(build_request("hi"))
    tool = Tool("lookup", "find a thing", {"type": "object", "properties": {"q": {"type": "string"}}})
    with_tool = estimate_input_tokens(build_request("hi", tools=[tool]))
    assert with_tool > plain + 10
    call = Message.assistant([ToolCall.from_arguments("c1", "lookup", {"q": "x" * 100})])
    with_call = estimate_input_tokens(build_request([Message.user("hi"), call]))
    assert with_call > plain + 25
    fmt = ResponseFormat(schema={"type": "object", "properties": {"answer": {"type": "string"}}})
    assert estimate_input_tokens(build_request("hi", response_format=fmt)) > plain + 10


def test_output_bound_prefers_max_tokens_then_model_max_then_default() -> None:
    price = ModelPrice(input=1, output=1, max_output_tokens=16_384)
    assert output_bound(build_request("hi", max_tokens=50), price, 4096) == 50
    assert output_bound(build_request("hi"), price, 4096) == 16_384
    assert output_bound(build_request("hi"), ModelPrice(input=1, output=1), 4096) == 4096
    assert output_bound(build_request("hi"), None, 777) == 777


def test_reasoning_budget_adds_to_the_default_output_bound() -> None:
    request = build_request("hi", reasoning=Reasoning(budget_tokens=2000))
    assert output_bound(request, None, DEFAULT_MAX_OUTPUT_TOKENS) == DEFAULT_MAX_OUTPUT_TOKENS + 2000


def test_cost_bound_prices_estimated_input_and_output_bound() -> None:
    # $1 per million input tokens, $4 per million output tokens.
    price = ModelPrice(input=1_000_000_000, output=4_000_000_000)
    bound = upper_bound(build_request("x" * 40, max_tokens=100), price)
    assert (bound.input_tokens, bound.output_tokens) == (BASE + 10, 100)
    assert bound.cost_nanos == (BASE + 10) * 1_000 + 100 * 4_000


def test_cost_bound_uses_the_dearer_reasoning_rate_when_there_is_one() -> None:
    price = ModelPrice(input=0, output=1_000_000_000, reasoning=3_000_000_000)
    assert upper_bound(build_request("hi", max_tokens=10), price).cost_nanos == 30_000


def test_unpriced_model_has_token_bounds_but_no_cost_bound() -> None:
    bound = upper_bound(build_request("hello", max_tokens=9), None)
    assert (bound.input_tokens, bound.output_tokens, bound.cost_nanos) == (BASE + 2, 9, None)


def test_media_allowances_are_priced_at_the_models_modality_rates() -> None:
    """Gemini 2.5 Flash (from genai-prices): audio input $1.00/M against $0.30/M text.
    An audio clip's allowance is reserved at the audio rate, an image's at the text rate
    (the model has no image rate), so a reservation is never short for audio."""
    from tollway.core.cost.pricing import PriceBook
    from tollway.core.types import Audio, Usage

    price = PriceBook().model_price("gemini", "gemini-2.5-flash")
    assert price is not None
    request = build_request(
        [Message("user", [Text("listen"), Audio(data=b"RIFF", media_type="audio/wav"),
                          Image(url="https://example.test/a.png")])],
        max_tokens=100,
    )
    est = estimate_input_tokens(request)
    bound = upper_bound(request, price)
    audio = Usage(input_tokens=est, output_tokens=100, input_audio_tokens=MEDIA_TOKENS,
                  input_image_tokens=IMAGE_TOKENS)
    assert bound.cost_nanos == price.cost_nanos(audio)
    assert bound.cost_nanos == price.cost_nanos(Usage(input_tokens=est, output_tokens=100)) + (
        MEDIA_TOKENS * (1_000 - 300))  # nano-USD per token: $1.00/M audio, $0.30/M text
