"""image_tool under LangChain's real agent loop (``create_agent``) against the loopback
fake provider: the model calls the tool, the tool calls OpenAI's /images/generations,
the image lands in ``output_dir`` and in the ToolMessage's artifact, and the ledger has
the image call (kind ``image``, priced) between the two chat calls, attributed to the
tools node and the user. A refused prompt goes back to the model as a tool error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain.agents import create_agent
from langchain_core.messages import ToolMessage

import tollway
from tests.adapters._lg_pai_fakes import KEY, records, script
from tests.adapters._media_fakes import IMAGE_TARGET, image_reply, tiny_png
from tests.conftest import Driver
from tests.fakes.server import FakeProvider
from tollway.adapters.langgraph import TollwayChatModel, image_tool
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.errors import BudgetExceededError
from tollway.core.media_types import ImageResponse
from tollway.core.stores.open import open_ledger

PROMPT = "a red square on white"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


def agent_with(fake: FakeProvider, ledger: Any, **tool_options: Any) -> Any:
    chat = TollwayChatModel(model=script("openai").target, api_key=KEY, api_base=fake.url,
                            ledger=ledger)
    draw = image_tool(IMAGE_TARGET, api_key=KEY, api_base=fake.url, ledger=ledger,
                      size="1024x1024", quality="low", **tool_options)
    return create_agent(chat, tools=[draw])


def run(agent: Any, driver: Driver, text: str) -> dict[str, Any]:
    state = {"messages": [("user", text)]}
    return asyncio.run(agent.ainvoke(state)) if driver.is_async else agent.invoke(state)


def test_the_agent_calls_the_image_tool_and_the_image_is_saved_and_metered(
    driver: Driver, fake: FakeProvider, ledger: Ledger, tmp_path: Path
) -> None:
    openai = script("openai")
    png = tiny_png((10, 200, 30))
    fake.add(openai.calls(("generate_image", {"prompt": PROMPT})),
             image_reply(png, revised_prompt="A red square centred on a white background"),
             openai.text("Here is your red square."))
    agent = agent_with(fake, ledger, output_dir=tmp_path / "out")

    with tollway.attribute(user="alice"):
        out = run(agent, driver, "Draw a red square")

    assert out["messages"][-1].content == "Here is your red square."
    assert [r.path for r in fake.requests] == [
        "/chat/completions", "/images/generations", "/chat/completions"]
    image_body = fake.requests[1].json
    assert image_body["prompt"] == PROMPT and image_body["model"] == "gpt-image-1"
    assert (image_body["size"], image_body["quality"], image_body.get("n", 1)) == (
        "1024x1024", "low", 1)  # fixed by the tool, not chosen by the model
    tool_message = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    response = tool_message.artifact
    assert isinstance(response, ImageResponse) and response.image.data == png
    [saved] = list((tmp_path / "out").iterdir())
    assert saved.read_bytes() == png
    assert str(saved) in tool_message.content
    assert "revised prompt: A red square centred" in tool_message.content
    # the model read where the image is, never its bytes
    second_call = json.dumps(fake.requests[2].json)
    assert str(saved) in second_call and response.image.base64 not in second_call
    rows = records(ledger)
    assert [(r.kind, r.node, r.user, r.status) for r in rows] == [
        ("model", "model", "alice", "ok"),
        ("image", "tools", "alice", "ok"),
        ("model", "model", "alice", "ok"),
    ]
    image_row = rows[1]
    assert image_row.model == "gpt-image-1" and image_row.framework == "langgraph"
    assert image_row.cost_nanos == response.cost_nanos and image_row.cost_nanos
    assert image_row.usage.output_tokens == response.usage.output_tokens > 0


def test_a_refused_prompt_goes_back_to_the_model_as_a_tool_error(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    openai = script("openai")
    refusal = openai.error(400, "Your request was rejected by the safety system.")
    fake.add(openai.calls(("generate_image", {"prompt": PROMPT})), refusal,
             openai.text("I could not draw that."))
    out = run(agent_with(fake, ledger), driver, "Draw it")

    tool_message = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert tool_message.status == "error"
    assert "the image could not be generated" in tool_message.content
    assert out["messages"][-1].content == "I could not draw that."
    assert "could not be generated" in json.dumps(fake.requests[2].json)
    assert [(r.kind, r.status) for r in records(ledger)] == [
        ("model", "ok"), ("image", "BadRequestError"), ("model", "ok")]


def test_an_image_budget_stops_the_run_before_the_images_endpoint(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    openai = script("openai")
    budget = Budgets([{"scope": {"model": "gpt-image-1"}, "limit": 0, "period": "day"}])
    fake.add(openai.calls(("generate_image", {"prompt": PROMPT})))
    agent = agent_with(fake, ledger, guards=[budget])
    with pytest.raises(BudgetExceededError):
        run(agent, driver, "Draw it")
    assert [r.path for r in fake.requests] == ["/chat/completions"]
    assert [(r.kind, r.status) for r in records(ledger)][-1] == ("image", "BudgetExceededError")
