"""The MCP tool loop on a Responses deployment: two tool rounds run by a real MCP server
(the stdio toolbox), each model turn answered with a reasoning item whose encrypted
content must reach the provider again on every later round. Sync loop, async loop and
the streamed async loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tollway
from tests.fakes import replies_openai_responses as rsp
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import KEY, results, toolbox
from tollway.core.types import Response, StreamEnd
from tollway.mcp import MCPClient, ToolLoopEnd, arun_tools, astream_tools, run_tools


def model(fake: FakeProvider) -> tollway.Model:
    return tollway.Model("openai/gpt-5-mini", api="responses", api_key=KEY, api_base=fake.url,
                         ledger=False, config=False)


def script(fake: FakeProvider, streamed: bool) -> list[str]:
    blobs = []
    for text in ("first", "second"):
        calls = [("box__echo", {"text": text})]
        build = rsp.tool_call_stream if streamed else rsp.tool_call_reply
        fake.add(build(calls, reasoning=f"Echo the {text} word."))
        blobs.append(rsp.encrypted("calls:" + repr(calls)))
    fake.add(rsp.text_stream(["Echoed ", "both."]) if streamed else rsp.text_reply("Echoed both."))
    return blobs


def assert_rounds(fake: FakeProvider, blobs: list[str], result: Any) -> None:
    assert [r.text for r in results(result.messages)] == ["[box] first", "[box] second"]
    assert len(fake.requests) == 3 and all(r.path == "/responses" for r in fake.requests)
    for body, expected in ((fake.requests[1].json, blobs[:1]), (fake.requests[2].json, blobs)):
        items = body["input"]
        assert [i["encrypted_content"] for i in items if i.get("type") == "reasoning"] == expected
        kinds = [i.get("type", i.get("role")) for i in items]
        assert kinds[:4] == ["user", "reasoning", "function_call", "function_call_output"]
        outputs = [i["output"] for i in items if i.get("type") == "function_call_output"]
        assert outputs == ["[box] first", "[box] second"][: len(expected)]


def test_sync_tool_loop_sends_reasoning_back(fake: FakeProvider) -> None:
    blobs = script(fake, streamed=False)
    with MCPClient([toolbox("box", allow=["echo"])]).sync() as client:
        result = run_tools(model(fake), "Echo first, then second.", mcp=client)
    assert result.text == "Echoed both." and result.rounds == 3
    assert_rounds(fake, blobs, result)


@pytest.mark.parametrize("streamed", [False, True], ids=["arun_tools", "astream_tools"])
def test_async_tool_loop_sends_reasoning_back(streamed: bool, fake: FakeProvider) -> None:
    blobs = script(fake, streamed)

    async def go() -> Any:
        async with MCPClient([toolbox("box", allow=["echo"])]) as client:
            if not streamed:
                return await arun_tools(model(fake), "Echo first, then second.", mcp=client)
            end = None
            async for event in astream_tools(model(fake), "Echo first, then second.",
                                             mcp=client):
                if isinstance(event, ToolLoopEnd):
                    end = event.result
                assert not isinstance(event, StreamEnd) or isinstance(event.response, Response)
            return end

    result = asyncio.run(go())
    assert result is not None and result.text == "Echoed both."
    assert_rounds(fake, blobs, result)
