"""The MCP tools as CrewAI tools, driven by a real Crew on TollwayLLM against the
loopback fake provider. CrewAI is imported with telemetry, tracing and OTEL off and HOME
in a temporary directory (tests.adapters._isolation), and the test may not reach any
host but loopback."""

from __future__ import annotations

import asyncio
import json
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
from tests.mcp.conftest import KEY, toolbox  # noqa: E402
from tollway.adapters.crewai import TollwayLLM  # noqa: E402
from tollway.adapters.crewai.tools import to_crewai_tools  # noqa: E402
from tollway.core.stores.open import open_ledger  # noqa: E402
from tollway.core.transport import default_transport  # noqa: E402
from tollway.mcp import MCPClient  # noqa: E402
from tollway.mcp.bridge import schema_to_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("crewai_env", "no_network")


def test_crew_agent_calls_mcp_tools_over_one_shared_session(fake: FakeProvider) -> None:
    ledger = open_ledger("memory")
    fake.add(  # CrewAI shows the model box_count for box__count
        oai.tool_call_reply([("box_count", {})]),
        oai.tool_call_reply([("box_describe", {"person": {"name": "Ada", "home": {"city": "London"}}})]),
        oai.tool_call_reply([("box_fail", {"message": "quota"})]),
        oai.tool_call_reply([("box_count", {})]),
        oai.text_reply("Final count: 2"),
    )
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=False)
    with MCPClient([toolbox("box")], ledger=ledger).sync() as mcp:
        tools = to_crewai_tools(mcp, ["box__count", "box__describe", "box__fail"])
        counter = Agent(role="Counter", goal="Count with the tools", backstory="Precise.",
                        llm=TollwayLLM(model), tools=tools, max_retry_limit=0)
        task = Task(description="Count twice with box__count.", expected_output="The count.",
                    agent=counter)
        output = Crew(agents=[counter], tasks=[task]).kickoff()
    assert output.raw == "Final count: 2"
    offered = {t["function"]["name"] for t in fake.requests[0].json["tools"]}
    assert offered == {"box_count", "box_describe", "box_fail"}
    bodies = [r.body.decode() for r in fake.requests]
    assert "Ada lives in London and works in nowhere" in bodies[2]
    assert "quota" in bodies[3]  # the isError result reached the model as a failure
    rows = ledger.records()  # type: ignore[attr-defined]
    assert [(r.tool_name, r.status) for r in rows] == [
        ("count", "ok"), ("describe", "ok"), ("fail", "tool_error"), ("count", "ok"),
    ]
    results = [json.loads(m["content"]) if m["content"].isdigit() else m["content"]
               for m in fake.requests[4].json["messages"] if m["role"] == "tool"]
    assert results[0] == 1 and results[-1] == 2  # the session kept its counter


def test_schema_to_model_validates_like_the_json_schema() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City"},
            "days": {"type": "integer", "default": 3},
            "unit": {"enum": ["C", "F"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "home": {"type": "object", "properties": {"zip": {"type": "string"}}, "required": ["zip"]},
            "user-id": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["city"],
    }
    model = schema_to_model("forecast_args", schema)
    value = model.model_validate({"city": "Oslo", "unit": "C", "tags": ["a"], "home": {"zip": "0150"},
                                  "user-id": 7})
    assert value.model_dump(by_alias=True) == {
        "city": "Oslo", "days": 3, "unit": "C", "tags": ["a"], "home": {"zip": "0150"}, "user-id": 7,
    }
    assert model.model_fields["city"].description == "City"
    with pytest.raises(ValueError):
        model.model_validate({"city": "Oslo", "unit": "K"})
    with pytest.raises(ValueError):
        model.model_validate({"days": 2})


def test_names_that_crewai_would_merge_stay_distinct() -> None:
    with MCPClient([toolbox("box"), toolbox("Box", prefix="box_")]).sync() as mcp:
        tools = to_crewai_tools(mcp, ["box__echo", "box___echo"])
    names = [t.name for t in tools]
    assert len(set(names)) == 2 and all(n.startswith("box_echo_") for n in names)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tool_rows_carry_the_agent_task_and_the_crew_runs_trace(
    fake: FakeProvider, default_ledger: Any, mode: str
) -> None:
    """No ledger named anywhere: the crew's model calls and its MCP tool call are rows of
    the default ledger, named for the agent, task and crew, under one trace id per run
    (``kickoff`` / ``akickoff``); a second run gets a trace of its own."""
    def crew(mcp: Any) -> Crew:
        model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url)
        counter = Agent(role="Counter", goal="Count with the tools", backstory="Precise.",
                        llm=TollwayLLM(model), tools=to_crewai_tools(mcp, ["box__count"]),
                        max_retry_limit=0)
        task = Task(name="count", description="Count once.", expected_output="The count.",
                    agent=counter)
        return Crew(name="tally", agents=[counter], tasks=[task])

    for _ in range(2):
        fake.add(oai.tool_call_reply([("box_count", {})]), oai.text_reply("Final count: 1"))
    with MCPClient([toolbox("box")]).sync() as mcp:
        if mode == "sync":
            outputs = [crew(mcp).kickoff(), crew(mcp).kickoff()]
        else:
            async def run() -> list[Any]:
                try:
                    return [await crew(mcp).akickoff(), await crew(mcp).akickoff()]
                finally:
                    await default_transport().aclose()

            outputs = asyncio.run(run())
    assert [o.raw for o in outputs] == ["Final count: 1"] * 2
    rows = default_ledger()
    tool_rows = [r for r in rows if r.kind == "tool"]
    assert [(r.tool_server, r.tool_name, r.status) for r in tool_rows] == [("box", "count", "ok")] * 2
    assert len(rows) == 6
    assert {(r.framework, r.agent) for r in rows} == {("crewai", "Counter")}
    assert {(r.attribution.get("task"), r.attribution.get("crew")) for r in rows} == {
        ("count", "tally")
    }
    first, second = rows[:3], rows[3:]
    assert [r.kind for r in first] == ["model", "tool", "model"]
    assert len({r.trace_id for r in first}) == 1 and len({r.trace_id for r in second}) == 1
    assert first[0].trace_id != second[0].trace_id
