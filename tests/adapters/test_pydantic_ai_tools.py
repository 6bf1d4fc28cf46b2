"""The MCP tools as a Pydantic AI toolset, driven by a real ``pydantic_ai.Agent`` on the
tollway Pydantic AI model against the loopback fake provider."""

from __future__ import annotations

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
