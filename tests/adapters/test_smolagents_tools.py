"""The MCP tools as smolagents tools, driven by a real ``ToolCallingAgent`` on the
tollway smolagents model against the loopback fake provider."""

from __future__ import annotations

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
