"""The MCP tools as a Pydantic AI toolset, driven by a real ``pydantic_ai.Agent`` on the
tollway Pydantic AI model against the loopback fake provider."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")
pytest.importorskip("tollway.adapters.pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.messages import ModelRequest, ToolReturnPart

import tollway
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import KEY, toolbox
from tollway.adapters.pydantic_ai import TollwayModel
from tollway.adapters.pydantic_ai.tools import MCPToolset
from tollway.core.stores.open import open_ledger
from tollway.core.transport import default_transport
from tollway.mcp import MCPClient


def returns(result: object) -> list[ToolReturnPart]:
    return [
        part
        for message in result.all_messages()  # type: ignore[attr-defined]
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


async def test_agent_runs_mcp_tools_from_the_toolset_over_one_session(fake: FakeProvider) -> None:
    ledger = open_ledger("memory")
    fake.add(
        oai.tool_call_reply([("box__count", {}), ("other__echo", {"text": "hi"})]),
        oai.tool_call_reply([("box__count", {}), ("box__fail", {"message": "denied by server"})]),
        oai.text_reply("Counted to 2."),
    )
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=False)
    try:
        async with MCPClient([toolbox("box"), toolbox("other", allow=["echo"])], ledger=ledger) as mcp:
            toolset = MCPToolset(mcp, ["box__count", "box__fail", "other__echo"])
            agent = Agent(TollwayModel(client=model), toolsets=[toolset])
            result = await agent.run("Count twice.")
            fake.add(oai.tool_call_reply([("box__count", {})]), oai.text_reply("3"))
            second_agent = Agent(TollwayModel(client=model), toolsets=[toolset])
            again = await second_agent.run("Count once more.")
    finally:
        await default_transport().aclose()
    assert result.output == "Counted to 2."
    parts = returns(result)
    by_name = [(p.tool_name, p.content) for p in parts if p.tool_name != "box__fail"]
    assert by_name == [("box__count", "1"), ("other__echo", "[other] hi"), ("box__count", "2")]
    failed = next(p for p in parts if p.tool_name == "box__fail")
    assert "denied by server" in str(failed.content)
    assert "denied by server" in fake.requests[2].body.decode()
    offered = {t["function"]["name"] for t in fake.requests[0].json["tools"]}
    assert offered == {"box__count", "box__fail", "other__echo"}
    assert [p.content for p in returns(again)] == ["3"]  # another agent, the same session
    rows = ledger.records()  # type: ignore[attr-defined]
    assert sorted((r.tool_server, r.tool_name, r.status) for r in rows) == [
        ("box", "count", "ok"), ("box", "count", "ok"), ("box", "count", "ok"),
        ("box", "fail", "tool_error"), ("other", "echo", "ok"),
    ]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tool_rows_carry_the_agent_and_the_run_trace_of_its_requests(
    fake: FakeProvider, default_ledger: Any, mode: str
) -> None:
    """No ledger named anywhere: the agent's requests and its MCP tool call are rows of
    the default ledger, all named for the agent and under the run's trace id."""
    fake.add(oai.tool_call_reply([("box__count", {})]), oai.text_reply("Counted."))
    model = TollwayModel(client=tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url))
    if mode == "sync":
        with MCPClient([toolbox("box")]).sync() as sync_mcp:
            agent = Agent(model, name="counter", toolsets=[MCPToolset(sync_mcp, ["box__count"])])
            result = agent.run_sync("Count.")
    else:
        async def run() -> Any:
            try:
                async with MCPClient([toolbox("box")]) as mcp:
                    agent = Agent(model, name="counter", toolsets=[MCPToolset(mcp, ["box__count"])])
                    return await agent.run("Count.")
            finally:
                await default_transport().aclose()

        result = asyncio.run(run())
    assert result.output == "Counted."
    rows = default_ledger()
    tool_rows = [r for r in rows if r.kind == "tool"]
    model_rows = [r for r in rows if r.kind == "model"]
    assert [(r.tool_server, r.tool_name, r.status) for r in tool_rows] == [("box", "count", "ok")]
    assert len(model_rows) == 2
    assert {(r.framework, r.agent) for r in rows} == {("pydantic_ai", "counter")}
    assert len({r.trace_id for r in rows}) == 1
    assert {r.attribution.get("run_id") for r in rows} == {result.run_id}
