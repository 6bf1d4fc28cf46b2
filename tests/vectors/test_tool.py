"""Retrieval as a tool in the core tool loop (``run_tools`` / ``arun_tools``): the
model asks ``file_search``, the store answers with the right document, and the model's
calls, the tool call and the search are ledger rows under one trace id."""

from __future__ import annotations

from typing import Any

import tollway
from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.vectors.conftest import KEY
from tollway.core.cost.ledger import Ledger


def test_the_model_answers_from_the_store_through_file_search(
        fake: FakeProvider, docs_store: Any, ledger: Ledger, driver: Driver) -> None:
    fake.add(oai.tool_call_reply([("file_search", {"query": "capital of Norway"})]),
             oai.text_reply("Oslo (oslo.txt)."))
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=ledger)
    before = len(ledger.records())  # type: ignore[attr-defined]
    result = driver.run_tools(model, "What is the capital of Norway?",
                              tools=[docs_store.as_tool(k=2)])
    assert result.text == "Oslo (oslo.txt)."
    sent = fake.requests[1].json["messages"][-1]
    assert sent["role"] == "tool"
    first = sent["content"].split("\n\n")[0]
    assert "source oslo.txt" in first and "capital of Norway" in first
    assert sent["content"].count("[") == 2  # k=2 passages
    tools = fake.requests[0].json["tools"]
    assert tools[0]["function"]["name"] == "file_search"
    assert "handbook" in tools[0]["function"]["description"]
    rows = ledger.records()[before:]  # type: ignore[attr-defined]
    assert sorted(r.kind for r in rows) == ["model", "model", "retrieval", "tool"]
    assert len({r.trace_id for r in rows}) == 1
    retrieval = next(r for r in rows if r.kind == "retrieval")
    assert retrieval.model == "handbook" and retrieval.cost_nanos


def test_a_bad_filter_from_the_model_goes_back_to_it_as_an_error(
        fake: FakeProvider, docs_store: Any, ledger: Ledger, driver: Driver) -> None:
    fake.add(oai.tool_call_reply([("file_search", {"query": "Norway",
                                                   "filters": {"year": {"$gt": "x"}}})]),
             oai.text_reply("I could not search."))
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=ledger)
    result = driver.run_tools(model, "Norway?", tools=[docs_store.as_tool()])
    assert result.text == "I could not search."
    sent = fake.requests[1].json["messages"][-1]
    assert "compares numbers" in sent["content"]
    assert not [r for r in ledger.records() if r.kind == "retrieval"]  # type: ignore[attr-defined]
