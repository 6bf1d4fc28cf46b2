"""LangGraph's and LangChain's real agent loops over TollwayChatModel, against the
loopback fake provider in the OpenAI, Anthropic and Gemini dialects: tool loops,
streaming (stream_mode="messages", astream_events), structured output by both
strategies, per-node attribution in a two-alias graph, and budget denials."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain.agents import create_agent
from langchain.agents.structured_output import ToolStrategy
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from tests.adapters._lg_pai_fakes import (
    KEY,
    USAGE_A,
    USAGE_B,
    Script,
    records,
    script,
    totals,
)
from tests.fakes.server import FakeProvider
from tollway.adapters.langgraph import TollwayChatModel
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.errors import BudgetExceededError
from tollway.core.reports import spend
from tollway.core.stores.open import open_ledger
from tollway.core.transport import default_transport


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def dialect(request: pytest.FixtureRequest) -> Script:
    return script(request.param)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


@pytest.fixture
def fake2() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


def chat(d: Script, fake: FakeProvider, ledger: Ledger | bool, **kw: Any) -> TollwayChatModel:
    return TollwayChatModel(model=d.target, api_key=KEY, api_base=fake.url, ledger=ledger, **kw)


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny and 21C in {city}"


class Weather(BaseModel):
    """The weather report."""

    city: str
    temperature_c: int


def usage_sum(messages: list[BaseMessage]) -> tuple[int, int]:
    ai = [m for m in messages if isinstance(m, AIMessage) and m.usage_metadata]
    return (sum(m.usage_metadata["input_tokens"] for m in ai),  # type: ignore[index]
            sum(m.usage_metadata["output_tokens"] for m in ai))  # type: ignore[index]


# --------------------------------------------------------------------------- tool loops


def test_create_agent_runs_the_tool_and_returns_the_final_answer(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(dialect.calls(("get_weather", {"city": "Oslo"}), usage=USAGE_A),
             dialect.text("It is sunny and 21C in Oslo.", usage=USAGE_B))
    agent = create_agent(chat(dialect, fake, ledger), tools=[get_weather])
    out = agent.invoke({"messages": [("user", "Weather in Oslo?")]})

    messages = out["messages"]
    tool_result = next(m for m in messages if isinstance(m, ToolMessage))
    assert tool_result.content == "sunny and 21C in Oslo"
    assert messages[-1].content == "It is sunny and 21C in Oslo."
    assert "sunny and 21C in Oslo" in json.dumps(fake.requests[1].json)
    # usage LangChain reports == what the ledger recorded, call for call
    assert usage_sum(messages) == (2700, 65)
    assert totals(ledger) == (2, 2700, 65)
    assert {(r.framework, r.node) for r in records(ledger)} == {("langgraph", "model")}


def test_prebuilt_create_react_agent_runs_the_tool_too(
    dialect: Script, fake: FakeProvider
) -> None:
    prebuilt = pytest.importorskip("langgraph.prebuilt")
    factory = getattr(prebuilt, "create_react_agent", None)
    if factory is None:
        pytest.skip("langgraph.prebuilt.create_react_agent was removed")
    fake.add(dialect.calls(("get_weather", {"city": "Rome"})), dialect.text("Sunny in Rome."))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        agent = factory(chat(dialect, fake, False), tools=[get_weather])
    out = agent.invoke({"messages": [("user", "Weather in Rome?")]})
    assert any(isinstance(m, ToolMessage) and "Rome" in str(m.content) for m in out["messages"])
    assert out["messages"][-1].content == "Sunny in Rome."


def test_graph_run_id_and_thread_id_reach_the_ledger_and_share_one_trace(
    fake: FakeProvider, ledger: Ledger
) -> None:
    d = script("openai")
    fake.add(d.calls(("get_weather", {"city": "Oslo"})), d.text("Sunny."))
    agent = create_agent(chat(d, fake, ledger, project="travel"), tools=[get_weather],
                         checkpointer=InMemorySaver())
    run_id = "0197a1b2-0000-7000-8000-00000000abcd"
    agent.invoke({"messages": [("user", "Weather?")]},
                 config={"run_id": run_id, "configurable": {"thread_id": "thread-7"}})
    rows = records(ledger)
    assert len(rows) == 2
    for row in rows:
        assert row.attribution == {"run_id": run_id, "thread_id": "thread-7"}
        assert row.project == "travel"
        assert row.trace_id == run_id.replace("-", "")


def test_a_denying_budget_stops_the_agent_with_budget_exceeded_error(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    budget = Budgets([{"scope": {"project": "travel"}, "limit": 0, "period": "month"}])
    model = chat(dialect, fake, ledger, project="travel", guards=[budget])
    agent = create_agent(model, tools=[get_weather])
    with pytest.raises(BudgetExceededError, match="project=travel"):
        agent.invoke({"messages": [("user", "Weather in Oslo?")]})
    assert fake.requests == []
    [row] = records(ledger)
    assert (row.status, row.node) == ("BudgetExceededError", "model")


# --------------------------------------------------------------------------- streaming


def test_stream_mode_messages_yields_tokens_and_tool_call_chunks(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(dialect.calls_stream(("get_weather", {"city": "Oslo"}), usage=USAGE_A),
             dialect.text_stream("Sunny ", "and ", "21C.", usage=USAGE_B))
    agent = create_agent(chat(dialect, fake, ledger), tools=[get_weather])
    chunks: list[AIMessageChunk] = []
    for message, meta in agent.stream({"messages": [("user", "Weather in Oslo?")]},
                                      stream_mode="messages"):
        if isinstance(message, AIMessageChunk):
            assert meta["langgraph_node"] == "model"
            chunks.append(message)

    call_chunks = [tc for c in chunks for tc in c.tool_call_chunks]
    assert call_chunks and call_chunks[0]["name"] == "get_weather"
    args = "".join(tc["args"] or "" for tc in call_chunks)
    assert json.loads(args) == {"city": "Oslo"}
    tokens = [c.content for c in chunks if isinstance(c.content, str) and c.content]
    assert "".join(tokens) == "Sunny and 21C."
    streamed_usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert sum(u["input_tokens"] for u in streamed_usage) == totals(ledger)[1] == 2700
    assert all(r.stream for r in records(ledger))


def test_astream_events_reports_chat_model_stream_events_from_the_async_path(
    fake: FakeProvider, ledger: Ledger
) -> None:
    d = script("anthropic")
    fake.add(d.calls_stream(("get_weather", {"city": "Paris"})), d.text_stream("Warm ", "today."))
    agent = create_agent(chat(d, fake, ledger), tools=[get_weather])

    async def run() -> list[dict[str, Any]]:
        events = [e async for e in agent.astream_events(
            {"messages": [("user", "Weather in Paris?")]}, version="v2")]
        await default_transport().aclose()
        return events

    events = asyncio.run(run())
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert any(c.tool_call_chunks for c in streamed)
    assert "".join(c.content for c in streamed if isinstance(c.content, str)) == "Warm today."
    ends = [e for e in events if e["event"] == "on_chat_model_end"]
    assert len(ends) == 2
    assert ends[-1]["data"]["output"].usage_metadata["total_tokens"] > 0
    assert totals(ledger)[0] == 2


# --------------------------------------------------------------------------- structured


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output_parses_a_pydantic_model_by_both_methods(
    dialect: Script, method: str, fake: FakeProvider
) -> None:
    answer = {"city": "Oslo", "temperature_c": 21}
    fake.add(dialect.text(json.dumps(answer)) if method == "json_schema"
             else dialect.calls(("Weather", answer)))
    runnable = chat(dialect, fake, False).with_structured_output(Weather, method=method)
    assert runnable.invoke("Weather in Oslo?") == Weather(city="Oslo", temperature_c=21)

    body = fake.requests[0].json
    if method == "function_calling":
        assert "Weather" in json.dumps(body.get("tools"))
    elif dialect.name == "openai":
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["name"] == "Weather"
    elif dialect.name == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"
    else:
        assert body["generationConfig"]["responseMimeType"] == "application/json"


def test_with_structured_output_json_mode_asks_for_any_json_object(fake: FakeProvider) -> None:
    d = script("openai")
    fake.add(d.text('{"city": "Oslo", "temperature_c": 21}'))
    runnable = chat(d, fake, False).with_structured_output(Weather, method="json_mode")
    assert runnable.invoke("Weather as JSON") == Weather(city="Oslo", temperature_c=21)
    assert fake.requests[0].json["response_format"] == {"type": "json_object"}


def test_with_structured_output_include_raw_returns_raw_parsed_and_parsing_error(
    fake: FakeProvider,
) -> None:
    class Pick(TypedDict):
        """A pick."""

        choice: str

    d = script("openai")
    fake.add(d.text('{"choice": "b"}'), d.text("not json"))
    runnable = chat(d, fake, False).with_structured_output(Pick, include_raw=True)
    good = runnable.invoke("pick")
    assert good["parsed"] == {"choice": "b"} and good["parsing_error"] is None
    assert isinstance(good["raw"], AIMessage) and good["raw"].usage_metadata
    bad = runnable.invoke("pick")
    assert bad["parsed"] is None and bad["parsing_error"] is not None


def test_create_agent_response_format_uses_provider_native_structured_output(
    dialect: Script, fake: FakeProvider
) -> None:
    """The model profile says structured_output, so create_agent picks ProviderStrategy
    and binds a response_format that each dialect sends natively."""
    tools = [] if dialect.name == "gemini" else [get_weather]  # Gemini 2.x: not both at once
    if tools:
        fake.add(dialect.calls(("get_weather", {"city": "Oslo"})))
    fake.add(dialect.text('{"city": "Oslo", "temperature_c": 21}'))
    agent = create_agent(chat(dialect, fake, False), tools=tools, response_format=Weather)
    out = agent.invoke({"messages": [("user", "Weather in Oslo?")]})
    assert out["structured_response"] == Weather(city="Oslo", temperature_c=21)
    last = fake.requests[-1].json
    if dialect.name == "openai":
        assert last["response_format"]["json_schema"]["name"] == "Weather"
    elif dialect.name == "anthropic":
        assert last["output_config"]["format"]["schema"]["properties"]["city"]
    else:
        assert last["generationConfig"]["responseSchema"]["properties"]["city"]


def test_create_agent_tool_strategy_forces_the_output_tool(
    dialect: Script, fake: FakeProvider
) -> None:
    fake.add(dialect.calls(("get_weather", {"city": "Oslo"})),
             dialect.calls(("Weather", {"city": "Oslo", "temperature_c": 21})))
    agent = create_agent(chat(dialect, fake, False), tools=[get_weather],
                         response_format=ToolStrategy(Weather))
    out = agent.invoke({"messages": [("user", "Weather in Oslo?")]})
    assert out["structured_response"] == Weather(city="Oslo", temperature_c=21)
    body = fake.requests[0].json
    forced = {"openai": ("tool_choice", "required"), "anthropic": ("tool_choice", {"type": "any"}),
              "gemini": ("toolConfig", {"functionCallingConfig": {"mode": "ANY"}})}[dialect.name]
    assert body[forced[0]] == forced[1]


# --------------------------------------------------------------------------- graphs


class Draft(TypedDict):
    topic: str
    plan: str
    text: str


def write_config(path: Path, planner_url: str, writer_url: str, ledger_path: Path) -> Path:
    path.write_text(
        "models:\n"
        "  planner:\n"
        "    - model: openai/gpt-4o-mini\n"
        f"      api_base: {planner_url}\n"
        "      api_key: env:TEST_PLANNER_KEY\n"
        "  writer:\n"
        "    - model: anthropic/claude-sonnet-4-5\n"
        f"      api_base: {writer_url}\n"
        "      api_key: env:TEST_WRITER_KEY\n"
        f"ledger: sqlite:///{ledger_path}\n"
    )
    return path


def test_two_node_graph_records_each_alias_under_its_node_name(
    fake: FakeProvider, fake2: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PLANNER_KEY", KEY)
    monkeypatch.setenv("TEST_WRITER_KEY", KEY)
    ledger_path = tmp_path / "graph-ledger.db"
    config = write_config(tmp_path / "tollway.yaml", fake.url, fake2.url, ledger_path)
    planner = TollwayChatModel(model="planner", org="acme", client_options={"config": config})
    writer = TollwayChatModel(model="writer", org="acme", client_options={"config": config})
    fake.add(script("openai").text("1. intro 2. body", usage=USAGE_A))
    fake2.add(script("anthropic").text("A short essay.", usage=USAGE_B))

    def plan(state: Draft) -> dict[str, str]:
        return {"plan": str(planner.invoke(f"Plan an essay on {state['topic']}").content)}

    def write(state: Draft) -> dict[str, str]:
        return {"text": str(writer.invoke(f"Write: {state['plan']}").content)}

    graph = StateGraph(Draft)
    graph.add_node("planner", plan)
    graph.add_node("writer", write)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "writer")
    graph.add_edge("writer", END)
    out = graph.compile().invoke({"topic": "tolls", "plan": "", "text": ""})
    assert out["text"] == "A short essay."

    store = open_ledger(ledger_path)
    try:
        rows = {r.group["node"]: r for r in spend(store, group_by=["node", "alias", "model"])}
    finally:
        store.close()
    assert set(rows) == {"planner", "writer"}
    assert (rows["planner"].group["alias"], rows["planner"].group["model"]) == (
        "planner", "gpt-4o-mini")
    assert (rows["writer"].group["alias"], rows["writer"].group["model"]) == (
        "writer", "claude-sonnet-4-5")
    assert rows["planner"].input_tokens == 1200 and rows["writer"].input_tokens == 1500
    assert rows["planner"].cost_nanos > 0 and rows["writer"].cost_nanos > 0
