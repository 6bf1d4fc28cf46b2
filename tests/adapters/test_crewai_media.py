"""CrewAI's knowledge and memory embedding through tollway, and TollwayImageTool in a
real crew, against the loopback fake provider (OpenAI chat, /embeddings, /images).

A crew with string knowledge sources and ``embedder=TollwayEmbedder(...)`` embeds its
documents when it is built and the agent's rewritten query when the task runs; the
right passage (and only it) reaches the task prompt, and every embedding and model call
is a ledger row attributed to the agent (or the crew) and the user. CrewAI's memory
stores and recalls through TollwayEmbeddingFunction. The image tool runs inside
CrewAI's executor: the image is saved, described to the agent and metered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters._fake_dialects import fake_dialect
from tests.adapters._isolation import (  # noqa: F401 - fixtures
    crewai_env,
    import_crewai,
    no_network,
)
from tests.adapters._media_fakes import (
    EMBED_TARGET,
    IMAGE_TARGET,
    MediaScript,
    image_reply,
    text_vector,
    tiny_png,
)
from tests.fakes.server import FakeProvider

import_crewai()

from crewai import Agent, Crew, Task  # noqa: E402
from crewai.knowledge.knowledge_config import KnowledgeConfig  # noqa: E402
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource  # noqa: E402
from crewai.memory.storage.lancedb_storage import LanceDBStorage  # noqa: E402
from crewai.memory.unified_memory import Memory  # noqa: E402

import tollway  # noqa: E402
from tollway.adapters.crewai import (  # noqa: E402
    TollwayEmbedder,
    TollwayEmbeddingFunction,
    TollwayImageTool,
    TollwayLLM,
)
from tollway.core.cost.pricing import PriceBook  # noqa: E402
from tollway.core.stores.open import open_ledger  # noqa: E402

pytestmark = pytest.mark.usefixtures("crewai_env", "no_network")

KEY = "sk-test-crewai-media-0123456789"
DOCS = [
    "Oslo is the capital of Norway and sits on a fjord.",
    "The Eiffel Tower stands in Paris, France.",
    "Tollway prices every model call in nano-dollars.",
]


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    book = open_ledger(tmp_path / "ledger.db")
    yield book
    book.close()


def llm(fake: FakeProvider, ledger: Any) -> TollwayLLM:
    return TollwayLLM(fake_dialect("openai").target, api_base=fake.url, api_key=KEY,
                      ledger=ledger, prices=PriceBook())


def rows_of(ledger: Any) -> list[Any]:
    return sorted(ledger.records(), key=lambda r: r.time)


def test_a_crew_with_knowledge_embedded_through_tollway_finds_the_right_passage(
    fake: FakeProvider, ledger: Any
) -> None:
    media = MediaScript(fake)
    openai = fake_dialect("openai")
    media.add(openai.text("capital of Norway"),  # CrewAI's knowledge query rewrite
              openai.text("The capital of Norway is Oslo."))
    researcher = Agent(role="Researcher", goal="Answer from the knowledge base",
                       backstory="A careful librarian.", llm=llm(fake, ledger), max_retry_limit=0,
                       knowledge_config=KnowledgeConfig(results_limit=1, score_threshold=0.6))
    task = Task(name="capital", description="What is the capital of Norway?",
                expected_output="The city.", agent=researcher)

    with tollway.attribute(user="alice"):
        crew = Crew(
            name="library", agents=[researcher], tasks=[task],
            knowledge_sources=[StringKnowledgeSource(content=d) for d in DOCS],
            embedder=TollwayEmbedder(model=EMBED_TARGET, api_key=KEY, api_base=fake.url,
                                     ledger=ledger, project="kb"),
        )
        output = crew.kickoff()

    assert output.raw == "The capital of Norway is Oslo."
    # CrewAI embeds crew knowledge more than once per build and kickoff (each source,
    # each time its validators run): every one of those calls is paid, so each is a row
    document_batches = media.embedded[:-1]
    assert {t for batch in document_batches for t in batch} == set(DOCS)
    assert media.embedded[-1] == ["capital of Norway"]  # the rewritten query, as a query
    task_prompt = json.dumps(fake.requests[-1].json)
    assert "fjord" in task_prompt  # the passage the query is closest to...
    assert "Eiffel" not in task_prompt and "nano-dollars" not in task_prompt  # ...and only it
    rows = rows_of(ledger)
    kinds = [(r.kind, r.agent, r.user) for r in rows]
    documents = [r for r in rows if r.kind == "embedding"][:-1]
    assert len(documents) == len(document_batches)
    assert all((r.agent, r.user, r.project) == (None, "alice", "kb") for r in documents)
    assert all(r.attribution.get("crew") == "library" for r in documents)
    assert kinds[len(documents):] == [
        ("model", "Researcher", "alice"),      # the query rewrite
        ("embedding", "Researcher", "alice"),  # the query
        ("model", "Researcher", "alice"),      # the task
    ]
    query_row = rows[-2]
    assert query_row.attribution.get("task") == "capital" and query_row.framework == "crewai"
    assert query_row.cost_nanos and all(r.cost_nanos for r in documents)


def test_the_custom_provider_dictionary_form_builds_the_same_embedder(
    fake: FakeProvider, ledger: Any
) -> None:
    from crewai.rag.embeddings.factory import build_embedder

    MediaScript(fake)
    function = build_embedder({"provider": "custom", "config": {
        "embedding_callable": TollwayEmbeddingFunction, "model": EMBED_TARGET,
        "api_key": KEY, "api_base": fake.url, "ledger": ledger, "user": "carol"}})
    assert isinstance(function, TollwayEmbeddingFunction)
    [vector] = function(["a fjord"])
    assert list(vector) == pytest.approx(text_vector("a fjord"))
    [row] = rows_of(ledger)
    assert (row.kind, row.user) == ("embedding", "carol")


def test_an_embedder_reads_no_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("MODEL", "openai/not-this-one")
    embedder = TollwayEmbedder(model=EMBED_TARGET, api_key=KEY)
    assert embedder.user is None and embedder.model == EMBED_TARGET


def test_crewai_memory_remembers_and_recalls_through_tollway(
    fake: FakeProvider, ledger: Any, tmp_path: Path
) -> None:
    media = MediaScript(fake)
    embed = TollwayEmbeddingFunction(EMBED_TARGET, api_key=KEY, api_base=fake.url,
                                     ledger=ledger, user="dave")
    memory = Memory(embedder=embed, llm=llm(fake, ledger),
                    storage=LanceDBStorage(path=str(tmp_path / "memory")))
    for text in DOCS[:2]:
        memory.remember(text, scope="/facts", categories=["geography"], importance=0.7)
    memory.drain_writes()
    matches = memory.recall("capital of Norway", scope="/facts", depth="shallow", limit=1)

    assert [m.record.content for m in matches] == [DOCS[0]]
    assert media.embedded[-1] == ["capital of Norway"]
    rows = rows_of(ledger)
    assert rows and all((r.kind, r.user) == ("embedding", "dave") for r in rows)
    assert not [r for r in fake.requests if not r.path.endswith("/embeddings")]  # no LLM


def test_the_image_tool_runs_in_a_crew_and_is_metered_for_the_agent(
    fake: FakeProvider, ledger: Any, tmp_path: Path
) -> None:
    openai = fake_dialect("openai")
    png = tiny_png((5, 5, 250))
    fake.add(openai.tool_calls(("generate_image", {"prompt": "a blue square"})),
             image_reply(png), openai.text("Drew a blue square."))
    draw = TollwayImageTool(IMAGE_TARGET, api_key=KEY, api_base=fake.url, ledger=ledger,
                            quality="low", output_dir=tmp_path / "images")
    designer = Agent(role="Designer", goal="Draw what is asked", backstory="An illustrator.",
                     llm=llm(fake, ledger), tools=[draw], max_retry_limit=0)
    task = Task(name="draw", description="Draw a blue square.", expected_output="A picture.",
                agent=designer)
    with tollway.attribute(user="erin"):
        output = Crew(agents=[designer], tasks=[task]).kickoff()

    assert output.raw == "Drew a blue square."
    assert [r.path for r in fake.requests] == [
        "/chat/completions", "/images/generations", "/chat/completions"]
    [saved] = list((tmp_path / "images").iterdir())
    assert saved.read_bytes() == png
    assert str(saved) in json.dumps(fake.requests[2].json)  # the agent read where it is
    [response] = draw.responses
    assert response.image.data == png
    rows = rows_of(ledger)
    assert [(r.kind, r.agent, r.user) for r in rows] == [
        ("model", "Designer", "erin"), ("image", "Designer", "erin"),
        ("model", "Designer", "erin")]
    assert rows[1].attribution.get("task") == "draw"
    assert rows[1].cost_nanos == response.cost_nanos and rows[1].cost_nanos


def test_a_refused_image_is_a_tool_failure_the_agent_sees(
    fake: FakeProvider, ledger: Any
) -> None:
    openai = fake_dialect("openai")
    fake.add(openai.tool_calls(("generate_image", {"prompt": "forbidden"})),
             openai.replies.error_reply(400, "Your request was rejected by the safety system."),
             openai.text("I cannot draw that."))
    draw = TollwayImageTool(IMAGE_TARGET, api_key=KEY, api_base=fake.url, ledger=ledger)
    designer = Agent(role="Designer", goal="Draw", backstory="An illustrator.",
                     llm=llm(fake, ledger), tools=[draw], max_retry_limit=0)
    task = Task(description="Draw it.", expected_output="A picture.", agent=designer)
    output = Crew(agents=[designer], tasks=[task]).kickoff()

    assert output.raw == "I cannot draw that."
    assert "the image could not be generated" in json.dumps(fake.requests[2].json)
    assert draw.responses == []
