"""The tool loop as OpenTelemetry spans: one ``invoke_agent`` span per loop, its model
rounds as ``chat`` spans and its tool calls as ``execute_tool`` spans, all in one trace
whose id is the loop's ledger trace id; the trace context reaches the MCP server in
``params._meta``. Real MCP servers (the FastMCP toolbox and a trace-echo server over
stdio), the loopback fake provider, the SDK's in-memory exporter; both drivers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.otel import Otel
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import KEY, toolbox
from tollway.core.stores.open import open_ledger
from tollway.core.types import TextDelta
from tollway.mcp import MCPClient, ToolLoopEnd, astream_tools
from tollway.mcp.bridge import bind_tools
from tollway.mcp.config import StdioServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRACE_ECHO = Path(__file__).resolve().parent / "servers" / "trace_echo.py"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcp() -> AsyncIterator[MCPClient]:
    servers = [toolbox("toolbox"),
               StdioServer(name="te", command=sys.executable, args=[str(TRACE_ECHO)])]
    async with MCPClient(servers) as client:
        yield client


def model(fake: FakeProvider, **kw: Any) -> Any:
    import tollway

    kw.setdefault("ledger", False)
    return tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, **kw)


def header(span: Any) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


async def test_a_tool_loop_is_one_trace_of_its_rounds_and_tool_calls(
    mcp: MCPClient, fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    fake.add(
        oai.tool_call_reply([("toolbox__echo", {"text": "ping"}), ("te__traceparent", {})]),
        oai.text_reply("done"),
    )
    ledger = open_ledger("memory")
    result = await driver.arun_tools(model(fake, ledger=ledger), "Echo and trace.", mcp=mcp)
    from opentelemetry.trace import SpanKind

    loop = otel.span("invoke_agent")
    chats = otel.spans("chat")
    tools = {s.attributes["gen_ai.tool.name"]: s for s in otel.spans("execute_tool")}
    assert loop.name == "invoke_agent tollway.tool_loop" and loop.parent is None
    assert loop.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert (loop.attributes["tollway.loop.rounds"], loop.attributes["tollway.loop.tool_calls"]) == (2, 2)
    assert len(chats) == 2 and set(tools) == {"echo", "traceparent"}
    for span in [*chats, *tools.values()]:
        assert span.parent is not None and span.parent.span_id == loop.context.span_id
        assert span.context.trace_id == loop.context.trace_id
    # one id everywhere: the OTel trace, the loop result, every ledger row
    trace_id = f"{loop.context.trace_id:032x}"
    assert result.trace_id == trace_id == loop.attributes["tollway.trace_id"]
    assert {r.trace_id for r in ledger.records()} == {trace_id}  # type: ignore[attr-defined]
    assert {s.attributes["tollway.trace_id"] for s in [*chats, *tools.values()]} == {trace_id}
    echo = tools["echo"]
    assert echo.name == "execute_tool echo" and echo.kind is SpanKind.CLIENT
    calls = {c.name: c.id for c in result.responses[0].tool_calls}
    assert echo.attributes["gen_ai.tool.call.id"] == calls["toolbox__echo"]
    assert echo.attributes["mcp.method.name"] == "tools/call"
    assert echo.attributes["tollway.tool.server"] == "toolbox"
    assert "gen_ai.tool.call.arguments" not in echo.attributes  # content capture is off
    assert "error.type" not in echo.attributes
    # the MCP server received the tool span's context in params._meta
    traced = next(r for r in result.tool_runs if r.tool == "traceparent")
    assert traced.result.text == header(tools["traceparent"])
    # the provider received each round's own chat span as parent
    assert [r.headers["traceparent"] for r in fake.requests] == [header(s) for s in chats]
    durations = {p.attributes["gen_ai.operation.name"]: p.count
                 for p in otel.points("gen_ai.client.operation.duration")}
    assert durations == {"chat": 2, "execute_tool": 2}


async def test_a_failing_tool_call_is_an_error_span_and_the_loop_goes_on(
    mcp: MCPClient, fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    fake.add(oai.tool_call_reply([("toolbox__fail", {"message": "disk full"})]),
             oai.text_reply("it failed"))
    result = await driver.arun_tools(model(fake), "Try it.", mcp=mcp)
    assert result.text == "it failed"
    span = otel.span("execute_tool")
    from opentelemetry.trace import StatusCode

    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "tool_error"
    assert otel.span("invoke_agent").status.status_code is StatusCode.UNSET


async def test_a_local_python_tool_is_an_internal_function_span(
    mcp: MCPClient, fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    def local_weather(city: str) -> dict[str, Any]:
        """Weather for a city."""
        return {"city": city, "sky": "clear"}

    fake.add(oai.tool_call_reply([("local_weather", {"city": "Oslo"})]), oai.text_reply("clear"))
    await driver.arun_tools(model(fake), "Weather?", mcp=mcp, tools=[local_weather])
    span = otel.span("execute_tool")
    from opentelemetry.trace import SpanKind

    assert span.name == "execute_tool local_weather" and span.kind is SpanKind.INTERNAL
    assert span.attributes["gen_ai.tool.type"] == "function"
    assert span.attributes["gen_ai.tool.description"] == "Weather for a city."
    assert span.parent is not None
    assert span.parent.span_id == otel.span("invoke_agent").context.span_id


async def test_tool_arguments_and_results_are_recorded_only_when_opted_in(
    mcp: MCPClient, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.otel import otel_session
    from tollway.mcp import arun_tools

    fake.add(oai.tool_call_reply([("toolbox__echo", {"text": "secret plan"})]), oai.text_reply("ok"))
    with otel_session(monkeypatch, capture_content=True) as otel:
        await arun_tools(model(fake), "Echo.", mcp=mcp)
    span = otel.span("execute_tool")
    assert span.attributes["gen_ai.tool.call.arguments"] == '{"text":"secret plan"}'
    assert "[toolbox] secret plan" in span.attributes["gen_ai.tool.call.result"]


async def test_a_streamed_loop_has_the_same_spans_and_keeps_its_context_off_the_consumer(
    mcp: MCPClient, fake: FakeProvider, otel: Otel
) -> None:
    from opentelemetry import trace

    fake.add(oai.tool_call_stream([("toolbox__add", {"a": 20, "b": 22})]),
             oai.text_stream(["The answer ", "is 42."]))
    seen_by_consumer = set()
    events = []
    async for event in astream_tools(model(fake), "Add 20 and 22.", mcp=mcp):
        seen_by_consumer.add(trace.get_current_span().get_span_context().span_id)
        events.append(event)
    assert isinstance(events[-1], ToolLoopEnd)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The answer is 42."
    loop = otel.span("invoke_agent")
    assert seen_by_consumer == {0}  # the consumer's code never ran inside the loop's span
    (tool,) = otel.spans("execute_tool")
    chats = otel.spans("chat")
    assert len(chats) == 2 and all(s.attributes["gen_ai.request.stream"] for s in chats)
    for span in [*chats, tool]:
        assert span.parent is not None and span.parent.span_id == loop.context.span_id
    assert events[-1].result.trace_id == f"{loop.context.trace_id:032x}"
    assert loop.end_time >= max(s.end_time for s in [*chats, tool])


async def test_a_framework_bridge_tool_call_is_an_execute_tool_span(
    mcp: MCPClient, otel: Otel
) -> None:
    (binding,) = bind_tools(mcp, ["toolbox__add"])
    output = await binding.acall({"a": 1, "b": 2})
    assert output.text == "3"
    span = otel.span("execute_tool")
    assert span.name == "execute_tool add"
    assert span.attributes["tollway.tool.server"] == "toolbox"
