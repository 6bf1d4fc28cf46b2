"""An agent in LangGraph/LangChain, Pydantic AI and smolagents answers from a small
document set through the store's native retrieval tool, against the fake model (and the
fake embeddings): the right passage reaches the model, and the model calls and the
search are ledger rows under one trace id, attributed to the framework.
(CrewAI: test_crewai_retrieval.py, which imports CrewAI in isolation.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import tollway
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.vectors.conftest import KEY
from tollway.core.cost.ledger import Ledger
from tollway.core.transport import default_transport

QUESTION = "What is the capital of Norway?"


def chat(fake: FakeProvider, ledger: Ledger) -> tollway.Model:
    return tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=ledger)


def tool_result_sent(fake: FakeProvider) -> str:
    messages = fake.requests[1].json["messages"]
    return str(next(m for m in messages if m["role"] == "tool")["content"])


def rows_of_run(ledger: Ledger, before: int) -> list[Any]:
    return ledger.records()[before:]  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langgraph_agent_answers_through_the_retriever_tool(
        fake: FakeProvider, docs_store: Any, ledger: Ledger, mode: str) -> None:
    pytest.importorskip("langchain")
    from langchain.agents import create_agent

    from tollway.adapters.langgraph import TollwayChatModel
    from tollway.adapters.langgraph.retrieval import retriever_tool

    fake.add(oai.tool_call_reply([("file_search", {"query": "capital of Norway", "k": 1})]),
             oai.text_reply("Oslo."))
    agent = create_agent(TollwayChatModel(client=chat(fake, ledger)),
                         tools=[retriever_tool(docs_store)])
    before = len(ledger.records())  # type: ignore[attr-defined]
    run_id = uuid.uuid4()
    config = {"run_id": run_id}
    if mode == "sync":
        state = agent.invoke({"messages": [("user", QUESTION)]}, config=config)
    else:
        async def run() -> Any:
            try:
                return await agent.ainvoke({"messages": [("user", QUESTION)]}, config=config)
            finally:
                await default_transport().aclose()
        state = asyncio.run(run())
    assert state["messages"][-1].content == "Oslo."
    assert "source oslo.txt" in tool_result_sent(fake)
    assert "Oslo is the capital of Norway" in tool_result_sent(fake)
    rows = rows_of_run(ledger, before)
    assert sorted(r.kind for r in rows) == ["model", "model", "retrieval"]
    assert {r.trace_id for r in rows} == {run_id.hex}
    retrieval = next(r for r in rows if r.kind == "retrieval")
    assert retrieval.framework == "langgraph" and retrieval.node == "tools"
    assert retrieval.attribution["hits"] == 1


def test_langchain_retriever_returns_documents_with_scores(docs_store: Any) -> None:
    pytest.importorskip("langchain_core")
    from tollway.adapters.langgraph.retrieval import TollwayRetriever

    retriever = TollwayRetriever(store=docs_store, k=2)
    docs = retriever.invoke("When does the Paris office open?")
    assert docs[0].metadata["source"] == "office.txt" and len(docs) == 2
    assert docs[0].metadata["score"] > docs[1].metadata["score"]
    again = asyncio.run(TollwayRetriever(store=docs_store, k=1,
                                         filters={"source": "policy.txt"})
                        .ainvoke("When does the Paris office open?"))
    assert [d.metadata["source"] for d in again] == ["policy.txt"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pydantic_ai_agent_answers_through_the_retrieval_toolset(
        fake: FakeProvider, docs_store: Any, ledger: Ledger, mode: str) -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent

    from tollway.adapters.pydantic_ai import TollwayModel
    from tollway.adapters.pydantic_ai.retrieval import retrieval_toolset

    fake.add(oai.tool_call_reply([("file_search", {"query": "capital of Norway"})]),
             oai.text_reply("Oslo."))
    agent = Agent(TollwayModel(client=chat(fake, ledger)), name="geo",
                  toolsets=[retrieval_toolset(docs_store, k=2)])
    before = len(ledger.records())  # type: ignore[attr-defined]
    if mode == "sync":
        result = agent.run_sync(QUESTION)
    else:
        async def run() -> Any:
            try:
                return await agent.run(QUESTION)
            finally:
                await default_transport().aclose()
        result = asyncio.run(run())
    assert result.output == "Oslo."
    assert tool_result_sent(fake).startswith("[1] (score")
    assert "source oslo.txt" in tool_result_sent(fake).split("\n\n")[0]
    rows = rows_of_run(ledger, before)
    assert sorted(r.kind for r in rows) == ["model", "model", "retrieval"]
    assert len({r.trace_id for r in rows}) == 1
    assert {(r.framework, r.agent) for r in rows} == {("pydantic_ai", "geo")}


def test_smolagents_agent_answers_through_the_retrieval_tool(
        fake: FakeProvider, docs_store: Any, ledger: Ledger) -> None:
    pytest.importorskip("smolagents")
    from smolagents import ToolCallingAgent

    from tollway.adapters.smolagents import TollwayModel
    from tollway.adapters.smolagents.retrieval import RetrievalSmolTool

    fake.add(oai.tool_call_reply([("file_search", {"query": "travel policy flights"})]),
             oai.tool_call_reply([("final_answer", {"answer": "Economy under six hours."})]))
    agent = ToolCallingAgent(tools=[RetrievalSmolTool(docs_store, k=1)],
                             model=TollwayModel(chat(fake, ledger)), name="travel", max_steps=3)
    before = len(ledger.records())  # type: ignore[attr-defined]
    assert agent.run("What is the travel policy for flights?") == "Economy under six hours."
    body = fake.requests[1].body.decode()
    assert "policy.txt" in body and "employees fly economy" in body
    rows = rows_of_run(ledger, before)
    assert sorted(r.kind for r in rows) == ["model", "model", "retrieval"]
    assert len({r.trace_id for r in rows}) == 1
    assert {(r.framework, r.agent) for r in rows} == {("smolagents", "travel")}
