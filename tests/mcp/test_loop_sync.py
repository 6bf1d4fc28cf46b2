"""The tool loop with a SyncMCPClient (its sessions on a private loop thread), on both
drivers; the sync loop's refusal inside an event loop."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import Dialect, results, toolbox
from tollway.core.errors import BadRequestError
from tollway.core.stores.open import open_ledger
from tollway.mcp import MCPClient, arun_tools, run_tools

OPENAI = Dialect("openai", "openai/gpt-4o-mini", oai)


def test_run_tools_with_a_sync_client(fake: FakeProvider, driver: Driver) -> None:
    fake.add(
        oai.tool_call_reply([("box__count", {}), ("box__count", {})]),
        oai.tool_call_reply([("box__count", {})]),
        oai.text_reply("three"),
    )
    ledger = open_ledger("memory")
    model = OPENAI.model(fake, ledger=ledger)
    with MCPClient([toolbox("box", price_per_call="0.01")]).sync() as client:
        decisions: list[str] = []
        result = driver.run_tools(
            model, "Count.", mcp=client, on_tool_call=lambda req: decisions.append(req.name) or True
        )
    assert sorted(int(r.text) for r in results(result.messages)) == [1, 2, 3]
    assert decisions == ["box__count"] * 3
    assert result.tool_cost_nanos == 30_000_000
    assert result.cost_nanos == result.model_cost_nanos + 30_000_000  # type: ignore[operator]
    rows = ledger.records()  # type: ignore[attr-defined]
    assert len(rows) == 6 and {r.trace_id for r in rows} == {result.trace_id}
    assert [r.cost_nanos for r in rows if r.kind == "tool"] == [10_000_000] * 3


def test_sync_run_tools_refuses_to_run_inside_an_event_loop(fake: FakeProvider) -> None:
    def local(x: int) -> int:
        return x

    fake.add(oai.tool_call_reply([("local", {"x": 1})]))
    model = OPENAI.model(fake)

    async def inside() -> None:
        run_tools(model, "Go.", tools=[local])

    with pytest.raises(BadRequestError, match="arun_tools"):
        asyncio.run(inside())


def test_async_loop_with_a_sync_client_hops_to_the_clients_thread(fake: FakeProvider) -> None:
    fake.add(oai.tool_call_reply([("box__echo", {"text": "hop"})]), oai.text_reply("ok"))
    model = OPENAI.model(fake)
    with MCPClient([toolbox("box")]).sync() as client:
        result = asyncio.run(arun_tools(model, "Echo.", mcp=client))
    assert [r.text for r in results(result.messages)] == ["[box] hop"]
