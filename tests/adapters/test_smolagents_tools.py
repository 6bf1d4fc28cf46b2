"""The MCP tools as smolagents tools, driven by a real ``ToolCallingAgent`` on the
tollway smolagents model against the loopback fake provider."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("smolagents")
pytest.importorskip("tollway.adapters.smolagents")

from smolagents import ToolCallingAgent

import tollway
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import KEY, toolbox
from tollway.adapters.smolagents import TollwayModel
from tollway.adapters.smolagents.tools import smolagents_inputs, to_smolagents_tools
from tollway.core.stores.open import open_ledger
from tollway.mcp import MCPClient


def test_tool_calling_agent_runs_mcp_tools_over_one_session(fake: FakeProvider) -> None:
    ledger = open_ledger("memory")
    fake.add(
        oai.tool_call_reply([("box__count", {})]),
        oai.tool_call_reply([("box__fail", {"message": "read-only volume"})]),
        oai.tool_call_reply([("box__count", {})]),
        oai.tool_call_reply([("final_answer", {"answer": "counted to 2"})]),
    )
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=False)
    with MCPClient([toolbox("box")], ledger=ledger).sync() as mcp:
        tools = to_smolagents_tools(mcp, ["box__count", "box__fail", "box__hang"])
        agent = ToolCallingAgent(tools=tools, model=TollwayModel(model), max_steps=6)
        answer = agent.run("Count twice.")
    assert answer == "counted to 2"
    bodies = [r.body.decode() for r in fake.requests]
    offered = {t["function"]["name"] for t in fake.requests[0].json["tools"]}
    assert {"box__count", "box__fail", "box__hang", "final_answer"} <= offered
    assert "read-only volume" in bodies[2]  # the failure reached the model
    rows = ledger.records()  # type: ignore[attr-defined]
    assert [(r.tool_name, r.status) for r in rows] == [
        ("count", "ok"), ("fail", "tool_error"), ("count", "ok"),
    ]
    counts = [step.observations for step in agent.memory.steps if getattr(step, "tool_calls", None)
              and step.tool_calls[0].name == "box__count"]
    assert counts == ["1", "2"]  # the session (and its state) was shared by every call


def test_optional_arguments_are_nullable_inputs() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "days": {"type": "integer", "default": 3},
            "units": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["city"],
    }
    assert smolagents_inputs(schema) == {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "description": "days", "nullable": True},
        "units": {"type": "string", "description": "units", "nullable": True},
    }


def test_tool_rows_carry_the_agent_and_its_runs_trace(
    fake: FakeProvider, default_ledger: Any
) -> None:
    """No ledger named anywhere: the agent's model calls and its MCP tool calls (two at
    once: smolagents runs them on worker threads) are rows of the default ledger, named
    for the agent, one trace id per ``run``."""
    fake.add(
        oai.tool_call_reply([("box__count", {}), ("box__echo", {"text": "x"})]),
        oai.tool_call_reply([("final_answer", {"answer": "done"})]),
        oai.tool_call_reply([("box__count", {})]),
        oai.tool_call_reply([("final_answer", {"answer": "again"})]),
    )
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url)
    with MCPClient([toolbox("box")]).sync() as mcp:
        agent = ToolCallingAgent(tools=to_smolagents_tools(mcp, ["box__count", "box__echo"]),
                                 model=TollwayModel(model), name="tally", max_steps=4)
        assert agent.run("Count and echo.") == "done"
        assert agent.run("Count again.") == "again"
    rows = default_ledger()
    tool_rows = [r for r in rows if r.kind == "tool"]
    assert sorted((r.tool_name, r.status) for r in tool_rows) == [
        ("count", "ok"), ("count", "ok"), ("echo", "ok"),
    ]
    assert len(rows) == 7
    assert {(r.framework, r.agent) for r in rows} == {("smolagents", "tally")}
    first, second = rows[:4], rows[4:]
    assert sorted(r.kind for r in first) == ["model", "model", "tool", "tool"]
    assert len({r.trace_id for r in first}) == 1 and len({r.trace_id for r in second}) == 1
    assert first[0].trace_id != second[0].trace_id
