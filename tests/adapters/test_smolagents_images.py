"""TollwayImageTool under smolagents' real ToolCallingAgent loop against the loopback
fake provider: the model calls the tool, the tool calls OpenAI's /images/generations,
smolagents keeps the image in the agent's state, ``final_answer("image.png")`` returns
it, and the image call is a priced ledger row attributed to the agent (smolagents
tools are synchronous: the tool takes tollway's sync path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters._fake_dialects import fake_dialect
from tests.adapters._media_fakes import IMAGE_TARGET, image_reply, tiny_png
from tests.fakes.server import FakeProvider

pytest.importorskip("smolagents")

from smolagents import ToolCallingAgent
from smolagents.agent_types import AgentImage

import tollway
from tollway.adapters.smolagents import TollwayImageTool, TollwayModel
from tollway.core.stores.open import open_ledger

KEY = "sk-test-smol-images-0123456789"


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    book = open_ledger(tmp_path / "ledger.db")
    yield book
    book.close()


def designer(fake: FakeProvider, ledger: Any, draw: TollwayImageTool) -> ToolCallingAgent:
    model = TollwayModel(fake_dialect("openai").target, api_base=fake.url, api_key=KEY,
                         ledger=ledger)
    return ToolCallingAgent(tools=[draw], model=model, name="designer", max_steps=3)


def test_the_agent_draws_and_returns_the_image_with_the_call_metered(
    fake: FakeProvider, ledger: Any, tmp_path: Path
) -> None:
    openai = fake_dialect("openai")
    png = tiny_png((250, 250, 0))
    fake.add(openai.tool_calls(("generate_image", {"prompt": "a yellow square"})),
             image_reply(png), openai.tool_calls(("final_answer", {"answer": "image.png"})))
    draw = TollwayImageTool(IMAGE_TARGET, api_key=KEY, api_base=fake.url, ledger=ledger,
                            quality="low", output_dir=tmp_path / "out")
    with tollway.attribute(user="frank"):
        picture = designer(fake, ledger, draw).run("Draw a yellow square and return it")

    assert isinstance(picture, AgentImage)
    assert picture.to_raw().size == (2, 2)
    assert picture.to_raw().getpixel((0, 0)) == (250, 250, 0)
    assert [r.path for r in fake.requests] == [
        "/chat/completions", "/images/generations", "/chat/completions"]
    assert fake.requests[1].json["prompt"] == "a yellow square"
    assert "Stored 'image.png' in memory" in json.dumps(fake.requests[2].json)
    [saved] = list((tmp_path / "out").iterdir())
    assert saved.read_bytes() == png
    [response] = draw.responses
    rows = sorted(ledger.records(), key=lambda r: r.time)
    assert [(r.kind, r.agent, r.user, r.framework) for r in rows] == [
        ("model", "designer", "frank", "smolagents"),
        ("image", "designer", "frank", "smolagents"),
        ("model", "designer", "frank", "smolagents")]
    assert rows[1].cost_nanos == response.cost_nanos and rows[1].cost_nanos


def test_a_refused_image_is_reported_to_the_model_as_a_tool_error(
    fake: FakeProvider, ledger: Any
) -> None:
    openai = fake_dialect("openai")
    fake.add(openai.tool_calls(("generate_image", {"prompt": "forbidden"})),
             openai.replies.error_reply(400, "Your request was rejected by the safety system."),
             openai.tool_calls(("final_answer", {"answer": "I cannot draw that."})))
    draw = TollwayImageTool(IMAGE_TARGET, api_key=KEY, api_base=fake.url, ledger=ledger)
    answer = designer(fake, ledger, draw).run("Draw it")

    assert answer == "I cannot draw that."
    assert "rejected by the safety system" in json.dumps(fake.requests[2].json)
    assert draw.responses == []
    assert [r.kind for r in ledger.records()].count("image") == 1
