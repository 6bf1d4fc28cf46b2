"""The MCP tools as LangChain tools, driven by LangChain's real agent loop
(``create_agent``) on TollwayChatModel against the loopback fake provider."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

pytest.importorskip("langchain")
pytest.importorskip("tollway.adapters.langgraph")

from langchain.agents import create_agent
from langchain_core.messages import ToolMessage

import tollway
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import KEY, toolbox
from tollway.adapters.langgraph import TollwayChatModel
from tollway.adapters.langgraph.tools import to_langchain_tools
from tollway.core.stores.open import open_ledger
from tollway.core.transport import default_transport
from tollway.mcp import MCPClient


def chat_model(fake: FakeProvider) -> TollwayChatModel:
    model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=False)
    return TollwayChatModel(client=model)


def tool_messages(state: dict) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


async def test_create_agent_calls_mcp_tools_over_one_shared_session(fake: FakeProvider) -> None:
    ledger = open_ledger("memory")
    fake.add(
        oai.tool_call_reply([("box__count", {}), ("box__fail", {"message": "no disk"})]),
        oai.tool_call_reply([("box__count", {}), ("box__describe", {
            "person": {"name": "Ada", "home": {"city": "London"}},
        })]),
        oai.text_reply("Counted to 2."),
    )
    try:
        async with MCPClient([toolbox("box")], ledger=ledger) as mcp:
            tools = to_langchain_tools(mcp, ["box__count", "box__fail", "box__describe"])
            agent = create_agent(chat_model(fake), tools=tools)
            state = await agent.ainvoke({"messages": [("user", "Count twice.")]})
    finally:
        await default_transport().aclose()
    first, failed, second, described = tool_messages(state)
    assert (first.content, second.content) == ("1", "2")  # one session: the state carried over
    assert failed.status == "error" and "no disk" in str(failed.content)
    assert described.content == "Ada lives in London and works in nowhere"
    offered = {t["function"]["name"] for t in fake.requests[0].json["tools"]}
    assert offered == {"box__count", "box__fail", "box__describe"}
    describe = next(t for t in fake.requests[0].json["tools"] if t["function"]["name"] == "box__describe")
    assert "$ref" not in json.dumps(describe["function"]["parameters"])
    assert "no disk" in fake.requests[1].body.decode()
    assert state["messages"][-1].content == "Counted to 2."
    rows = ledger.records()  # type: ignore[attr-defined]
    assert sorted((r.tool_name, r.status) for r in rows) == [
        ("count", "ok"), ("count", "ok"), ("describe", "ok"), ("fail", "tool_error"),
    ]


def test_sync_agent_uses_the_sync_client(fake: FakeProvider) -> None:
    fake.add(oai.tool_call_reply([("box__echo", {"text": "sync"})]), oai.text_reply("ok"))
    with MCPClient([toolbox("box")]).sync() as mcp:
        agent = create_agent(chat_model(fake), tools=to_langchain_tools(mcp, ["box__echo"]))
        state = agent.invoke({"messages": [("user", "Echo.")]})
    (message,) = tool_messages(state)
    assert message.content == "[box] sync"
    assert "[box] sync" in fake.requests[1].body.decode()


def test_images_become_langchain_image_blocks(fake: FakeProvider) -> None:
    with MCPClient([toolbox("box")]).sync() as mcp:
        (picture,) = to_langchain_tools(mcp, ["box__picture"])
        content = picture.invoke({})
    assert isinstance(content, list) and content[0]["type"] == "image"
    assert content[0]["mime_type"] == "image/png" and content[0]["base64"].startswith("iVBOR")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tool_rows_land_beside_the_model_rows_with_the_node_and_the_run_trace(
    fake: FakeProvider, default_ledger: Any, mode: str
) -> None:
    """No ledger named anywhere: the graph's model calls and its MCP tool call are rows
    of the default ledger, the tool row under the ``tools`` node, all under the run id."""
    fake.add(oai.tool_call_reply([("box__count", {})]), oai.text_reply("Counted."))
    model = TollwayChatModel(client=tollway.Model("openai/gpt-4o-mini", api_key=KEY,
                                                  api_base=fake.url))
    run_id = uuid.uuid4()
    config = {"run_id": run_id}
    if mode == "sync":
        with MCPClient([toolbox("box")]).sync() as sync_mcp:
            agent = create_agent(model, tools=to_langchain_tools(sync_mcp, ["box__count"]))
            agent.invoke({"messages": [("user", "Count.")]}, config=config)
    else:
        async def run() -> None:
            try:
                async with MCPClient([toolbox("box")]) as mcp:
                    agent = create_agent(model, tools=to_langchain_tools(mcp, ["box__count"]))
                    await agent.ainvoke({"messages": [("user", "Count.")]}, config=config)
            finally:
                await default_transport().aclose()

        asyncio.run(run())
    rows = default_ledger()
    tool_rows = [r for r in rows if r.kind == "tool"]
    model_rows = [r for r in rows if r.kind == "model"]
    assert [(r.tool_server, r.tool_name, r.status) for r in tool_rows] == [("box", "count", "ok")]
    assert len(model_rows) == 2
    (tool_row,) = tool_rows
    assert (tool_row.framework, tool_row.node) == ("langgraph", "tools")
    assert {r.framework for r in model_rows} == {"langgraph"}
    assert all(r.node and r.node != "tools" for r in model_rows)
    assert {r.trace_id for r in rows} == {run_id.hex}
    assert tool_row.attribution.get("run_id") == str(run_id)
