"""Recorded image output in a chat answer, replayed through tollway's whole call path.

Corpus A holds one such interaction: gpt-5 on the Responses API drawing with the
built-in ``image_generation`` tool (``074_...``, a 1536x1024 high-quality JPEG). It is
served by the loopback fake provider to ``Model.complete`` (both drivers): the image
comes back as an Image with the recorded bytes, and the ledger row costs genai-prices'
price of the gpt-5 tokens plus the image at gpt-image-1's output rate x the 6,208 tokens
OpenAI publishes for that size and quality. Corpus A has no Gemini image output (every
recorded ``responseModalities`` is TEXT) and no Imagen ``:predict``: those paths are
tested against hand-written fakes (tests/adapters/test_pydantic_ai_image_output.py,
tests/core/test_media_calls.py). Skips cleanly when the corpus is absent.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

import tollway
from tests.conftest import Driver, corpus_dir
from tests.fakes.server import FakeProvider, Reply
from tollway.core.stores.open import open_ledger

RECORD = corpus_dir() / "074_openai_responses_nonstream_reasoning_item-server_tool.json"
KEY = "sk-test-replay-0123456789"

pytestmark = pytest.mark.skipif(not RECORD.is_file(), reason=f"no corpus at {RECORD}")


def genai_cost(model: str, **usage: int) -> int:
    from genai_prices import calc_price
    from genai_prices.types import Usage as GenaiUsage

    price = calc_price(GenaiUsage(**usage), model_ref=model, provider_id="openai")
    return int((price.total_price * 1_000_000_000).to_integral_value())


def _record() -> dict[str, Any]:
    return json.loads(Path(RECORD).read_text())


def test_recorded_image_generation_call_is_an_image_priced_with_its_image(
    fake: FakeProvider, driver: Driver
) -> None:
    record = _record()
    body = json.loads(record["response_body"])
    fake.add(Reply(200, body))
    ledger = open_ledger("memory")
    model = tollway.Model("openai/gpt-5", api="responses", api_key=KEY, api_base=fake.url,
                          ledger=ledger)
    response = driver.complete(model, record["request"]["input"][0]["content"],
                               output_modalities=["text", "image"])

    [call] = [i for i in body["output"] if i["type"] == "image_generation_call"]
    [image] = response.images
    assert image.data == base64.b64decode(call["result"])
    assert image.data[:3] == b"\xff\xd8\xff" and image.media_type == "image/jpeg"
    # Asking for images added the built-in tool the recorded request carried.
    assert {"type": "image_generation"} in fake.requests[0].json["tools"]

    usage = body["usage"]
    assert response.usage.units == {"image_generation:gpt-image-1:1536x1024:high": 1}
    tokens = genai_cost("gpt-5", input_tokens=usage["input_tokens"],
                        output_tokens=usage["output_tokens"])
    picture = genai_cost("gpt-image-1", output_tokens=6_208)
    assert picture == 248_320_000  # $0.25 a high-quality landscape image, as OpenAI lists it
    assert response.cost_nanos == tokens + picture
    [row] = ledger.records()  # type: ignore[attr-defined]
    assert row.cost_nanos == tokens + picture and row.kind == "model"
