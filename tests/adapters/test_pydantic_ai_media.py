"""Pydantic AI's Embedder on TollwayEmbeddingModel, and its ImageGenerator and
ImageGeneration capability on TollwayImageGenerationModel, against the loopback fake
provider (OpenAI's /embeddings and /images): real agent runs whose tools embed or whose
model calls Pydantic AI's own generate_image tool, with every call a priced ledger row
attributed to the agent and the user. The sync driver uses Pydantic AI's sync entry
points (run_sync, embed_query_sync), the async one the coroutines."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent, Embedder, ImageGenerator
from pydantic_ai.capabilities import ImageGeneration
from pydantic_ai.exceptions import ModelHTTPError, UserError
from pydantic_ai.messages import BinaryImage, ToolReturnPart

import tollway
from tests.adapters._lg_pai_fakes import KEY, records, script
from tests.adapters._media_fakes import (
    EMBED_TARGET,
    IMAGE_TARGET,
    MediaScript,
    image_reply,
    text_vector,
    tiny_png,
    token_count,
)
from tests.conftest import Driver
from tests.fakes.server import FakeProvider
from tollway.adapters.pydantic_ai import (
    TollwayEmbeddingModel,
    TollwayImageGenerationModel,
    TollwayModel,
)
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.errors import BudgetExceededError
from tollway.core.stores.open import open_ledger
from tollway.core.transport import default_transport

DOCS = [
    "Oslo is the capital of Norway and sits on a fjord.",
    "The Eiffel Tower stands in Paris, France.",
]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


def run(coro: Any) -> Any:
    async def main() -> Any:
        try:
            return await coro
        finally:
            await default_transport().aclose()

    return asyncio.run(main())


def embedding_model(fake: FakeProvider, ledger: Any, **kw: Any) -> TollwayEmbeddingModel:
    return TollwayEmbeddingModel(EMBED_TARGET, api_key=KEY, api_base=fake.url, ledger=ledger,
                                 **kw)


def image_model(fake: FakeProvider, ledger: Any, **kw: Any) -> TollwayImageGenerationModel:
    return TollwayImageGenerationModel(IMAGE_TARGET, api_key=KEY, api_base=fake.url,
                                       ledger=ledger, **kw)


def cosine(a: Any, b: Any) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b))


# --------------------------------------------------------------------------- embeddings


def test_embedder_embeds_documents_and_queries_through_tollway(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    media = MediaScript(fake)
    embedder = Embedder(embedding_model(fake, ledger, user="alice", settings={"dimensions": 64}))
    if driver.is_async:
        docs = run(embedder.embed_documents(DOCS))
        query = run(embedder.embed_query("capital of Norway"))
    else:
        docs = embedder.embed_documents_sync(DOCS)
        query = embedder.embed_query_sync("capital of Norway")

    assert docs.embeddings == [text_vector(d) for d in DOCS]
    assert docs.input_type == "document" and query.input_type == "query"
    assert docs["The Eiffel Tower stands in Paris, France."] == text_vector(DOCS[1])
    best = max(range(len(DOCS)), key=lambda i: cosine(query.embeddings[0], docs.embeddings[i]))
    assert best == 0
    assert docs.usage.input_tokens == token_count(DOCS)
    assert media.embedded == [DOCS, ["capital of Norway"]]
    assert all(r.json["dimensions"] == 64 for r in fake.requests)
    rows = records(ledger)
    assert [(r.kind, r.user, r.framework) for r in rows] == [
        ("embedding", "alice", "pydantic_ai"), ("embedding", "alice", "pydantic_ai")]
    assert rows[0].cost_nanos == docs.provider_details["cost_nanos"] and rows[0].cost_nanos
    assert docs.cost().total_price == docs.provider_details["cost_usd"]  # genai-prices agrees


def test_an_agent_tool_that_embeds_is_attributed_to_the_agent(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    media = MediaScript(fake)
    openai = script("openai")
    media.add(openai.calls(("search", {"query": "capital of Norway"})),
              openai.text("Oslo is the capital."))
    embedder = Embedder(embedding_model(fake, ledger))
    index = [text_vector(d) for d in DOCS]
    agent = Agent(TollwayModel(openai.target, api_key=KEY, api_base=fake.url, ledger=ledger),
                  name="librarian")

    if driver.is_async:
        @agent.tool_plain
        async def search(query: str) -> str:
            """Find the passage that answers the query."""
            vector = (await embedder.embed_query(query)).embeddings[0]
            return max(DOCS, key=lambda d: cosine(vector, index[DOCS.index(d)]))

        with tollway.attribute(user="alice"):
            result = run(agent.run("What is the capital of Norway?"))
    else:
        @agent.tool_plain
        def search(query: str) -> str:
            """Find the passage that answers the query."""
            vector = embedder.embed_query_sync(query).embeddings[0]
            return max(DOCS, key=lambda d: cosine(vector, index[DOCS.index(d)]))

        with tollway.attribute(user="alice"):
            result = agent.run_sync("What is the capital of Norway?")

    assert result.output == "Oslo is the capital."
    assert "fjord" in json.dumps(fake.requests[-1].json)  # the tool's passage reached the model
    rows = records(ledger)
    assert [(r.kind, r.agent, r.user) for r in rows] == [
        ("model", "librarian", "alice"), ("embedding", "librarian", "alice"),
        ("model", "librarian", "alice")]
    assert len({r.trace_id for r in rows}) == 1  # one agent run, one trace


def test_embedding_failures_are_pydantic_ai_errors_and_denials_pass_through(
    fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(script("openai").error(400, "input is too long"))
    with pytest.raises(ModelHTTPError) as caught:
        run(Embedder(embedding_model(fake, ledger)).embed_query("x"))
    assert caught.value.status_code == 400
    budget = Budgets([{"scope": {"user": "bob"}, "limit": 0, "period": "day"}])
    denied = Embedder(embedding_model(fake, ledger, user="bob", guards=[budget]))
    with pytest.raises(BudgetExceededError):
        run(denied.embed_documents(DOCS))
    assert len(fake.requests) == 1


# --------------------------------------------------------------------------- images


def test_image_generator_on_tollway_returns_the_image_and_its_cost(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    png = tiny_png()
    fake.add(image_reply(png, revised_prompt="A lighthouse at dusk, oil painting"))
    generator = ImageGenerator(image_model(fake, ledger, quality="low", user="alice"))
    settings: Any = {"dimensions": (1024, 1536)}
    result = (run(generator.generate("a lighthouse", settings=settings)) if driver.is_async
              else generator.generate_sync("a lighthouse", settings=settings))

    assert result.image == BinaryImage(data=png, media_type="image/png")
    assert result.images[0].revised_prompt == "A lighthouse at dusk, oil painting"
    body = fake.requests[0].json
    assert (body["size"], body["quality"], body["prompt"]) == ("1024x1536", "low", "a lighthouse")
    [row] = records(ledger)
    assert (row.kind, row.user, row.status) == ("image", "alice", "ok")
    assert row.cost_nanos == result.provider_details["cost_nanos"] and row.cost_nanos


def test_image_generator_edits_when_given_reference_images(
    fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(image_reply())
    reference = BinaryImage(data=tiny_png((0, 0, 255)), media_type="image/png")
    run(ImageGenerator(image_model(fake, ledger)).generate("make it red", images=[reference]))
    [request] = fake.requests
    assert request.path == "/images/edits"
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert reference.data in request.body and b"make it red" in request.body


def test_an_aspect_ratio_is_refused_with_what_to_give_instead(
    fake: FakeProvider, ledger: Ledger
) -> None:
    with pytest.raises(UserError, match=r"dimensions=.*tollway_size"):
        run(ImageGenerator(image_model(fake, ledger)).generate(
            "x", settings={"aspect_ratio": "16:9"}))
    assert fake.requests == []


def test_the_image_generation_capability_gives_the_agent_a_metered_image_tool(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    openai = script("openai")
    png = tiny_png((1, 2, 3))
    fake.add(openai.calls(("generate_image", {"prompt": "a red square"})), image_reply(png),
             openai.text("Done: a red square."))
    agent = Agent(
        TollwayModel(openai.target, api_key=KEY, api_base=fake.url, ledger=ledger),
        name="designer",
        capabilities=[ImageGeneration(fallback_image_model=image_model(fake, ledger))],
    )
    with tollway.attribute(user="alice"):
        result = (run(agent.run("Draw a red square")) if driver.is_async
                  else agent.run_sync("Draw a red square"))

    assert result.output == "Done: a red square."
    assert [r.path for r in fake.requests] == [
        "/chat/completions", "/images/generations", "/chat/completions"]
    returns = [p for m in result.all_messages() for p in getattr(m, "parts", [])
               if isinstance(p, ToolReturnPart) and p.tool_name == "generate_image"]
    assert returns and BinaryImage(data=png, media_type="image/png") in returns[0].files
    rows = records(ledger)
    assert [(r.kind, r.agent, r.user) for r in rows] == [
        ("model", "designer", "alice"), ("image", "designer", "alice"),
        ("model", "designer", "alice")]
    assert rows[1].cost_nanos
