"""The loop's ``allow_tool`` (which catalog tools one loop may offer and run: the
gateway's per-key grants) and ``external_tools`` (the caller's own tools, offered but
never run: an answer calling one ends the loop), on both drivers and streamed."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import Dialect, results, toolbox
from tollway.core.errors import BadRequestError
from tollway.core.types import Tool
from tollway.mcp import MCPClient, astream_tools
from tollway.mcp.loop import ToolLoopEnd

OPENAI = Dialect("openai", "openai/gpt-4o-mini", oai)
LOOKUP = Tool("lookup", "the caller's own tool", {"type": "object", "properties": {}})


def test_allow_tool_hides_and_refuses_the_rest(fake: FakeProvider, driver: Driver) -> None:
    fake.add(oai.tool_call_reply([("box__add", {"a": 1, "b": 2}), ("box__echo", {"text": "x"})]),
             oai.text_reply("done"))
    with MCPClient([toolbox("box")]).sync() as client:
        result = driver.run_tools(OPENAI.model(fake), "Go.", mcp=client,
                                  allow_tool=lambda tool: tool.name == "echo")
    assert [t["function"]["name"] for t in fake.requests[0].json["tools"]] == ["box__echo"]
    add, echo = results(result.messages)
    assert add.is_error and "no tool named 'box__add'" in str(add.content)
    assert echo.content == "[box] x"
    assert [run.output.status for run in result.tool_runs if run.server] == ["ok"]


def test_an_answer_calling_an_external_tool_ends_the_loop(fake: FakeProvider, driver: Driver) -> None:
    fake.add(oai.tool_call_reply([("box__echo", {"text": "a"})]),
             oai.tool_call_reply([("lookup", {})]))
    with MCPClient([toolbox("box")]).sync() as client:
        result = driver.run_tools(OPENAI.model(fake), "Go.", mcp=client, external_tools=[LOOKUP])
    assert result.rounds == 2 and len(fake.requests) == 2
    assert [c.name for c in result.response.tool_calls] == ["lookup"]
    assert sorted(t["function"]["name"] for t in fake.requests[0].json["tools"])[-1] == "lookup"
    assert [run.tool for run in result.tool_runs] == ["echo"]  # lookup was never run here


def test_external_tool_named_like_a_loop_tool_is_refused(fake: FakeProvider, driver: Driver) -> None:
    with MCPClient([toolbox("box")]).sync() as client, pytest.raises(BadRequestError, match="rename"):
        driver.run_tools(OPENAI.model(fake), "Go.", mcp=client,
                         external_tools=[Tool("box__echo", "", {"type": "object"})])
    assert not fake.requests


def test_streamed_loop_ends_on_an_external_call(fake: FakeProvider) -> None:
    fake.add(oai.tool_call_stream([("lookup", {})]))

    async def run() -> list[object]:
        async with MCPClient([toolbox("box")]) as client:
            return [e async for e in astream_tools(OPENAI.model(fake), "Go.", mcp=client,
                                                   external_tools=[LOOKUP])]

    events = asyncio.run(run())
    end = events[-1]
    assert isinstance(end, ToolLoopEnd) and end.result.rounds == 1
    assert [c.name for c in end.result.response.tool_calls] == ["lookup"]
