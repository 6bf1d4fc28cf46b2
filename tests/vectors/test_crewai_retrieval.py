"""A CrewAI crew answers from a small document set through RetrievalCrewTool, against
the fake model and fake embeddings; CrewAI imported in isolation (tests.adapters._isolation)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters._isolation import (  # noqa: F401 - fixtures
    crewai_env,
    import_crewai,
    no_network,
)

import_crewai()
pytest.importorskip("tollway.adapters.crewai")

from crewai import Agent, Crew, Task  # noqa: E402

import tollway  # noqa: E402
from tests.fakes import replies_openai as oai  # noqa: E402
from tests.fakes.server import FakeProvider  # noqa: E402
from tests.vectors.conftest import KEY  # noqa: E402
from tollway.adapters.crewai import TollwayLLM  # noqa: E402
from tollway.adapters.crewai.retrieval import RetrievalCrewTool  # noqa: E402
from tollway.core.cost.ledger import Ledger  # noqa: E402

pytestmark = pytest.mark.usefixtures("crewai_env", "no_network")


def test_crew_agent_answers_through_the_retrieval_tool(
        fake: FakeProvider, docs_store: Any, ledger: Ledger) -> None:
    fake.add(oai.tool_call_reply([("file_search", {"query": "Paris office opening hours"})]),
             oai.tool_call_reply([("file_search", {"query": "x", "filters": {"$bad": 1}})]),
             oai.text_reply("Nine to six."))
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=ledger)
    clerk = Agent(role="Clerk", goal="Answer from the handbook", backstory="Careful.",
                  llm=TollwayLLM(model), tools=[RetrievalCrewTool.of(docs_store, k=1)],
                  max_retry_limit=0)
    task = Task(description="When does the Paris office open?", expected_output="Hours.",
                agent=clerk)
    before = len(ledger.records())  # type: ignore[attr-defined]
    output = Crew(agents=[clerk], tasks=[task]).kickoff()
    assert output.raw == "Nine to six."
    bodies = [r.body.decode() for r in fake.requests]
    assert "office.txt" in bodies[1] and "opens at nine" in bodies[1]
    assert "unknown operator" in bodies[2]  # the bad filter went back to the model
    rows = ledger.records()[before:]  # type: ignore[attr-defined]
    assert sorted(r.kind for r in rows) == ["model", "model", "model", "retrieval"]
    assert len({r.trace_id for r in rows}) == 1
    retrieval = next(r for r in rows if r.kind == "retrieval")
    assert retrieval.framework == "crewai" and retrieval.agent == "Clerk"
