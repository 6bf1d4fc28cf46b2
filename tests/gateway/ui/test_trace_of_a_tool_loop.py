"""A trace the real tool loop wrote (a model on the loopback fake provider, a FastMCP
server over stdio, the ledger in SQLite), opened on the dashboard: its rounds, tool
call, tokens and cost are the loop's own, on the sync and the async driver."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import Dialect, toolbox
from tollway.core.stores.open import open_ledger
from tollway.core.types import Usage
from tollway.mcp import MCPClient


async def test_a_tool_loop_opens_as_one_trace_with_its_rounds_tokens_and_cost(
    fake: FakeProvider, driver: Driver, dashboard_server, tmp_path: Path
) -> None:
    path = tmp_path / "loop.db"
    ledger = open_ledger(str(path))
    fake.add(oai.tool_call_reply([("toolbox__add", {"a": 2, "b": 3})], usage=Usage(1200, 30)),
             oai.text_reply("5", usage=Usage(1300, 5)))
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake, ledger=ledger)
    async with MCPClient([toolbox("toolbox")]) as mcp:
        result = await driver.arun_tools(model, "What is 2 + 3?", mcp=mcp)
    assert result.text == "5" and result.rounds == 2

    client = dashboard_server(path).client()
    calls = client.get("/ui/calls").text
    assert calls.count(f"id={result.trace_id}") == 3  # two rounds and the tool call
    page = client.get("/ui/trace", params={"id": result.trace_id}).text
    assert re.search(r"<dt>model rounds</dt><dd>2</dd><dt>tool calls</dt><dd>1</dd>", page)
    assert f"{result.usage.input_tokens:,} in / {result.usage.output_tokens:,} out" in page
    assert f'<dd data-nanos="{result.model_cost_nanos}">' in page and result.model_cost_nanos > 0
    assert "tool toolbox/add" in page
    kinds = re.findall(r'data-kind="(model|tool)"', page)
    assert kinds == ["model", "tool", "model"]  # in time order
