"""``Agent(TollwayModel(...), output_type=BinaryImage)``: a Pydantic AI agent whose answer
is an image, through Pydantic AI's real agent loop against the loopback fake Gemini
(``generateContent`` with ``responseModalities``) and fake Responses API (the built-in
``image_generation`` tool), non-streamed and streamed, on both drivers (``run_sync`` /
``run_stream_sync`` and the coroutines). Each run is one priced ledger row whose cost is
genai-prices' own calculation: Gemini image output tokens at their own rate, the
Responses image at the image model's output rate x OpenAI's tokens for its size and
quality, added to the chat model's tokens."""

from __future__ import annotations

import asyncio
import base64
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelRequestRejectedError
from pydantic_ai.messages import BinaryImage, FilePart, ModelResponse
from pydantic_ai.settings import ModelSettings

import tollway
from tests.adapters._lg_pai_fakes import KEY, records
from tests.adapters._media_fakes import tiny_png
from tests.conftest import Driver
from tests.fakes import replies_gemini as gem
from tests.fakes import replies_openai_responses as rsp
from tests.fakes.server import FakeProvider
from tollway.adapters.pydantic_ai import TollwayModel
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.cost.pricing import PriceBook, UnpricedModelWarning
from tollway.core.errors import BadRequestError, BudgetExceededError
from tollway.core.stores.open import open_ledger
from tollway.core.transport import default_transport
from tollway.core.types import Usage

PICTURE = tiny_png((20, 120, 220))
PROMPT = "Draw a fox in the snow."
RSP_USAGE = Usage(input_tokens=1_889, output_tokens=1_434, reasoning_tokens=1_280)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


def genai_cost(model: str, provider: str, **usage: int) -> int:
    """genai-prices' own Decimal calculation, as nano-USD."""
    from genai_prices import calc_price
    from genai_prices.types import Usage as GenaiUsage

    price = calc_price(GenaiUsage(**usage), model_ref=model, provider_id=provider)
    return int((price.total_price * 1_000_000_000).to_integral_value())


def run_agent(driver: Driver, agent: Agent[None, Any], *, stream: bool) -> Any:
    """The agent's output through Pydantic AI's sync or async entry point."""
    if not driver.is_async:
        if stream:
            result = agent.run_stream_sync(PROMPT)
            return result.get_output(), result.all_messages()
        sync = agent.run_sync(PROMPT)
        return sync.output, sync.all_messages()

    async def main() -> Any:
        try:
            if stream:
                async with agent.run_stream(PROMPT) as streamed:
                    output = await streamed.get_output()
                    return output, streamed.all_messages()
            done = await agent.run(PROMPT)
            return done.output, done.all_messages()
        finally:
            await default_transport().aclose()

    return asyncio.run(main())


def gemini_agent(fake: FakeProvider, ledger: Ledger) -> Agent[None, BinaryImage]:
    model = TollwayModel(f"gemini/{gem.IMAGE_MODEL}", api_key=KEY, api_base=fake.url,
                         ledger=ledger, user="ana")
    return Agent(model, output_type=BinaryImage, name="illustrator")


def responses_agent(fake: FakeProvider, ledger: Ledger, **kw: Any) -> Agent[None, BinaryImage]:
    client = tollway.Model("openai/gpt-5", api="responses", api_key=KEY, api_base=fake.url,
                           ledger=ledger, **kw)
    return Agent(TollwayModel(client=client, user="ana"), output_type=BinaryImage,
                 name="illustrator")


def _image_response(messages: list[Any]) -> FilePart:
    [response] = [m for m in messages if isinstance(m, ModelResponse)]
    [file] = [p for p in response.parts if isinstance(p, FilePart)]
    return file


# --------------------------------------------------------------------------- Gemini


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_gemini_image_model_answers_a_binary_image_priced_at_the_image_token_rate(
    fake: FakeProvider, driver: Driver, ledger: Ledger, stream: bool
) -> None:
    text = "Here is your fox."
    fake.add(gem.image_stream(PICTURE, text=text) if stream else gem.image_reply(PICTURE, text=text))
    output, messages = run_agent(driver, gemini_agent(fake, ledger), stream=stream)

    assert isinstance(output, BinaryImage)
    assert output.data == PICTURE and output.media_type == "image/png"
    sent = fake.requests[0].json
    # output_type=BinaryImage alone takes no text: Gemini is asked for IMAGE only.
    assert sent["generationConfig"]["responseModalities"] == ["IMAGE"]
    assert _image_response(messages).content.data == PICTURE

    [row] = records(ledger)
    usage = row.usage
    text_tokens = len(text) // 4
    assert (usage.input_tokens, usage.output_tokens) == (14, gem.IMAGE_TOKENS + text_tokens)
    assert usage.output_image_tokens == gem.IMAGE_TOKENS
    expected = genai_cost(gem.IMAGE_MODEL, "google", input_tokens=14,
                          output_tokens=gem.IMAGE_TOKENS + text_tokens,
                          output_image_tokens=gem.IMAGE_TOKENS)
    # 1,290 image tokens at $30/M (not the $2.50/M text rate): $0.0387 of the total.
    assert row.cost_nanos == expected and expected > 38_700_000
    assert (row.kind, row.stream, row.agent, row.user) == ("model", stream, "illustrator", "ana")
    [response] = [m for m in messages if isinstance(m, ModelResponse)]
    assert response.usage.output_tokens == usage.output_tokens


def test_a_gemini_image_signature_goes_back_with_the_image_in_the_next_turn(
    fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(gem.image_reply(PICTURE, signed=True), gem.text_reply("It is a fox."))
    agent = gemini_agent(fake, ledger)
    first = agent.run_sync(PROMPT)
    assert first.output.data == PICTURE
    follow = Agent(agent.model, name="illustrator")
    follow.run_sync("What did you draw?", message_history=first.all_messages())
    model_turn = fake.requests[1].json["contents"][1]
    assert model_turn["role"] == "model"
    [image] = [p for p in model_turn["parts"] if "inlineData" in p]
    assert image["thoughtSignature"] == gem.SIGNATURE
    assert image["inlineData"]["mimeType"] == "image/png"


# --------------------------------------------------------------------------- Responses


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_responses_image_generation_tool_answers_a_binary_image_priced_per_image(
    fake: FakeProvider, driver: Driver, ledger: Ledger, stream: bool
) -> None:
    build = rsp.image_generation_stream if stream else rsp.image_generation_reply
    fake.add(build(PICTURE, size="1024x1024", quality="medium", usage=RSP_USAGE,
                   model="gpt-5-2025-08-07"))
    output, messages = run_agent(driver, responses_agent(fake, ledger), stream=stream)

    assert isinstance(output, BinaryImage)
    assert output.data == PICTURE and output.media_type == "image/png"
    sent = fake.requests[0].json
    assert {"type": "image_generation"} in sent["tools"]
    file = _image_response(messages)
    item = file.provider_details["tollway"]["openai_responses"]["item"]  # type: ignore[index]
    assert item["type"] == "image_generation_call" and "result" not in item

    [row] = records(ledger)
    assert row.usage.units == {"image_generation:gpt-image-1:1024x1024:medium": 1}
    tokens = genai_cost("gpt-5", "openai", input_tokens=1_889, output_tokens=1_434)
    # OpenAI bills the tool's image as gpt-image-1 output: 1,056 tokens for a medium
    # 1024x1024 image at $40/M, $0.04224.
    image = genai_cost("gpt-image-1", "openai", output_tokens=1_056)
    assert image == 42_240_000
    assert row.cost_nanos == tokens + image
    assert (row.agent, row.user, row.stream) == ("illustrator", "ana", stream)
    [response] = [m for m in messages if isinstance(m, ModelResponse)]
    assert response.usage.details == {"image_generation:gpt-image-1:1024x1024:medium": 1}


def test_a_responses_image_of_an_unlisted_image_model_is_cost_unknown_until_configured(
    fake: FakeProvider, ledger: Ledger
) -> None:
    reply = rsp.image_generation_reply(PICTURE, size="1536x1024", quality="high",
                                       image_model="gpt-image-1.5", usage=RSP_USAGE)
    fake.add(reply)
    with pytest.warns(UnpricedModelWarning, match="image tool"):
        responses_agent(fake, ledger).run_sync(PROMPT)
    fake.add(reply)
    prices = PriceBook({"openai/gpt-image-1.5": {"images": {"1536x1024": {"high": 0.2}}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnpricedModelWarning)
        responses_agent(fake, ledger, prices=prices).run_sync(PROMPT)
    unknown, priced = records(ledger)
    assert unknown.cost_nanos is None  # never $0 for an image nobody priced
    tokens = genai_cost("gpt-5", "openai", input_tokens=1_889, output_tokens=1_434)
    assert priced.cost_nanos == tokens + 200_000_000
    assert Decimal(priced.cost_nanos) / 10**9 > Decimal("0.2")


def test_a_responses_image_goes_back_as_its_image_generation_call_item(
    fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(rsp.image_generation_reply(PICTURE, usage=RSP_USAGE), rsp.text_reply("A fox."))
    agent = responses_agent(fake, ledger)
    first = agent.run_sync(PROMPT)
    Agent(agent.model).run_sync("What is it?", message_history=first.all_messages())
    items = fake.requests[1].json["input"]
    [call] = [i for i in items if i.get("type") == "image_generation_call"]
    assert call["id"].startswith("ig_") and call["status"] == "completed"
    assert call["result"] == base64.b64encode(PICTURE).decode()


def test_a_chat_completions_deployment_refuses_image_output_before_sending(
    fake: FakeProvider, ledger: Ledger
) -> None:
    model = TollwayModel("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=ledger)
    with pytest.raises(ModelRequestRejectedError, match="does not generate images") as raised:
        Agent(model, output_type=BinaryImage).run_sync(PROMPT)
    assert isinstance(raised.value.__cause__, BadRequestError)
    assert fake.requests == []


# --------------------------------------------------------------------------- budgets


def test_a_budget_holds_the_image_rate_and_denies_before_gemini_is_called(
    fake: FakeProvider, ledger: Ledger
) -> None:
    # 2,000 output tokens: $0.005 as text, $0.06 as Gemini image tokens ($30/M).
    budget = Budgets([{"scope": {"user": "ana"}, "limit": 0.03, "period": "day"}])
    model = TollwayModel(f"gemini/{gem.IMAGE_MODEL}", api_key=KEY, api_base=fake.url,
                         ledger=ledger, user="ana", guards=[budget])
    settings: ModelSettings = {"max_tokens": 2_000}
    fake.add(gem.text_reply("A fox, in words."))
    assert Agent(model, model_settings=settings).run_sync(PROMPT).output == "A fox, in words."
    with pytest.raises(BudgetExceededError):
        Agent(model, output_type=BinaryImage, model_settings=settings).run_sync(PROMPT)
    assert len(fake.requests) == 1


def test_a_budget_holds_the_responses_tool_image_and_denies_before_openai_is_called(
    fake: FakeProvider, ledger: Ledger
) -> None:
    # 1,000 output tokens of gpt-5: about $0.01; its dearest gpt-image-1 image: $0.2496.
    budget = Budgets([{"scope": {"user": "ana"}, "limit": 0.1, "period": "day"}])
    client = tollway.Model("openai/gpt-5", api="responses", api_key=KEY, api_base=fake.url,
                           ledger=ledger, guards=[budget])
    model = TollwayModel(client=client, user="ana")
    settings: ModelSettings = {"max_tokens": 1_000}
    fake.add(rsp.text_reply("A fox, in words.", usage=Usage(input_tokens=20, output_tokens=8)))
    assert Agent(model, model_settings=settings).run_sync(PROMPT).output == "A fox, in words."
    with pytest.raises(BudgetExceededError):
        Agent(model, output_type=BinaryImage, model_settings=settings).run_sync(PROMPT)
    assert len(fake.requests) == 1
