"""The tool loop end to end: a model on the loopback fake provider (OpenAI, Anthropic and
Gemini dialects) calls tools that real MCP servers execute.

The fake provider plays scripted rounds; each test checks what reached the provider in
the next round (the real tool result, in that dialect's wire format) and what the loop
returns.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import tollway
from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.mcp.conftest import KEY, Dialect, RunningServer, results, time_server, toolbox
from tollway.core.cost.attribution import attribute
from tollway.core.errors import BudgetExceededError, ToolLoopError
from tollway.core.stores.open import open_ledger
from tollway.core.types import StreamEnd, TextDelta, ToolCallDelta, Usage
from tollway.mcp import (
    MCPClient,
    MCPConnectionError,
    MCPTimeoutError,
    RoundEnd,
    ToolCallFinished,
    ToolCallRequest,
    ToolCallStarted,
    ToolLoopEnd,
    astream_tools,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcp(http_toolbox: RunningServer) -> AsyncIterator[MCPClient]:
    servers = [
        toolbox("toolbox"), toolbox("other", allow=["echo"]), http_toolbox.config(),
        toolbox("box", allow=["count", "crash"]),  # crashed on purpose by one test
    ]
    async with MCPClient(servers) as client:
        yield client


def sent(fake: FakeProvider, index: int) -> str:
    """The body of the index-th request the provider received, as text."""
    return fake.requests[index].body.decode()


# --------------------------------------------------------------------------- the basics


async def test_model_asks_for_a_tool_the_server_runs_it_and_the_answer_comes_back(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    fake.add(
        dialect.replies.tool_call_reply([("web__echo", {"text": "ping over http"})]),
        dialect.replies.text_reply("The server said: ping over http."),
    )
    result = await driver.arun_tools(dialect.model(fake), "Echo 'ping over http'.", mcp=mcp)
    assert result.text == "The server said: ping over http."
    assert "web__echo" in sent(fake, 0) and "toolbox__describe" in sent(fake, 0)
    assert "[web] ping over http" in sent(fake, 1)  # the real tool output reached the model
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    (tool_result,) = results(result.messages)
    assert tool_result.text == "[web] ping over http" and not tool_result.is_error
    assert result.rounds == 2 and len(result.tool_runs) == 1
    run = result.tool_runs[0]
    assert (run.server, run.tool, run.round) == ("web", "echo", 1)


async def test_two_servers_exposing_the_same_tool_name_both_run_in_one_round(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    fake.add(
        dialect.replies.tool_call_reply(
            [("toolbox__echo", {"text": "a"}), ("other__echo", {"text": "b"})]
        ),
        dialect.replies.text_reply("both answered"),
    )
    result = await driver.arun_tools(dialect.model(fake), "Echo on both servers.", mcp=mcp)
    assert [r.text for r in results(result.messages)] == ["[toolbox] a", "[other] b"]
    body = sent(fake, 1)
    assert "[toolbox] a" in body and "[other] b" in body
    assert result.messages[2].role == "tool" and len(result.messages[2].parts) == 2


async def test_a_stateful_tool_keeps_its_state_across_rounds(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    fake.add(
        dialect.replies.tool_call_reply([("toolbox__count", {})]),
        dialect.replies.tool_call_reply([("toolbox__count", {})]),
        dialect.replies.text_reply("counted twice"),
    )
    result = await driver.arun_tools(dialect.model(fake), "Count twice.", mcp=mcp)
    first, second = (int(r.text) for r in results(result.messages))
    assert second == first + 1
    assert mcp.connections()["toolbox"] == 1


async def test_a_hanging_tool_times_out_and_the_model_is_told(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    fake.add(
        dialect.replies.tool_call_reply([("toolbox__hang", {"seconds": 30})]),
        dialect.replies.text_reply("The tool timed out."),
    )
    result = await driver.arun_tools(dialect.model(fake), "Wait.", mcp=mcp, tool_timeout=0.3)
    (tool_result,) = results(result.messages)
    assert tool_result.is_error and "timed out after 0.3 s" in tool_result.text
    assert "timed out after 0.3 s" in sent(fake, 1)
    assert isinstance(result.tool_runs[0].output.error, MCPTimeoutError)
    assert result.text == "The tool timed out."


async def test_a_tool_that_raises_returns_an_error_result_to_the_model(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    fake.add(
        dialect.replies.tool_call_reply([("toolbox__fail", {"message": "quota exhausted"})]),
        dialect.replies.text_reply("The tool failed."),
    )
    result = await driver.arun_tools(dialect.model(fake), "Try it.", mcp=mcp)
    (tool_result,) = results(result.messages)
    assert tool_result.is_error and "quota exhausted" in tool_result.text
    assert "quota exhausted" in sent(fake, 1)
    assert result.tool_runs[0].output.status == "tool_error"


async def test_a_server_that_dies_mid_run_is_reported_and_reconnected(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    fake.add(
        dialect.replies.tool_call_reply([("box__count", {})]),
        dialect.replies.tool_call_reply([("box__crash", {})]),
        dialect.replies.tool_call_reply([("box__count", {})]),
        dialect.replies.text_reply("recovered"),
    )
    disconnects, sessions = len(mcp.disconnects), mcp.connections()["box"]
    result = await driver.arun_tools(dialect.model(fake), "Go.", mcp=mcp)
    assert [d.server for d in mcp.disconnects[disconnects:]] == ["box"]
    assert mcp.connections()["box"] == sessions + 1
    before, crashed, after = results(result.messages)
    assert not before.is_error
    assert crashed.is_error and "disconnected during the call to 'crash'" in crashed.text
    assert isinstance(result.tool_runs[1].output.error, MCPConnectionError)
    assert "disconnected during the call" in sent(fake, 2)
    assert after.text == "1" and not after.is_error  # a fresh process: fresh state
    assert result.text == "recovered"


async def test_ledger_records_every_round_and_every_tool_call_under_one_trace(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    ledger = open_ledger("memory")
    fake.add(
        dialect.replies.tool_call_reply([("toolbox__add", {"a": 1, "b": 2})]),
        dialect.replies.tool_call_reply(
            [("toolbox__echo", {"text": "x"}), ("toolbox__fail", {})]
        ),
        dialect.replies.text_reply("done"),
    )
    result = await driver.arun_tools(dialect.model(fake, ledger=ledger), "Go.", mcp=mcp)
    rows = ledger.records()  # type: ignore[attr-defined]
    model_rows = [r for r in rows if r.kind == "model"]
    tool_rows = [r for r in rows if r.kind == "tool"]
    assert len(model_rows) == 3 and result.rounds == 3
    assert sorted((r.tool_server, r.tool_name, r.status) for r in tool_rows) == [
        ("toolbox", "add", "ok"), ("toolbox", "echo", "ok"), ("toolbox", "fail", "tool_error"),
    ]
    assert {r.trace_id for r in rows} == {result.trace_id}
    assert all(r.usage.requests == 0 and r.usage.total_tokens == 0 for r in tool_rows)
    assert [r.cost_nanos for r in model_rows] == [r.cost_nanos for r in result.responses]
    assert result.model_cost_nanos == sum(r.cost_nanos or 0 for r in model_rows)
    assert result.usage.requests == 3
    assert result.usage.input_tokens == sum(r.usage.input_tokens for r in model_rows)


async def test_tool_rows_go_to_the_clients_ledger_when_the_model_records_none(
    fake: FakeProvider, driver: Driver, default_ledger: Any
) -> None:
    """A Model with ``ledger=False`` beside a client given no ledger: the tool calls are
    still rows (the default ledger), under the loop's trace id; a client built with
    ``ledger=False`` records none, even when the model has a ledger."""
    fake.add(oai.tool_call_reply([("box__count", {})]), oai.text_reply("1"))
    quiet_model = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=False)
    async with MCPClient([toolbox("box")]) as own:
        result = await driver.arun_tools(quiet_model, "Count.", mcp=own)
    (row,) = default_ledger()
    assert (row.kind, row.tool_name, row.trace_id) == ("tool", "count", result.trace_id)

    ledger = open_ledger("memory")
    fake.add(oai.tool_call_reply([("box__count", {})]), oai.text_reply("1"))
    recorded = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=ledger)
    async with MCPClient([toolbox("box")], ledger=False) as quiet:
        await driver.arun_tools(recorded, "Count.", mcp=quiet)
    assert [r.kind for r in ledger.records()] == ["model", "model"]  # type: ignore[attr-defined]
    assert len(default_ledger()) == 1


# --------------------------------------------------------------------------- hooks and policy


async def test_the_approval_hook_can_deny_edit_and_approve_calls(
    mcp: MCPClient, fake: FakeProvider, driver: Driver
) -> None:
    seen: list[ToolCallRequest] = []

    async def approve(request: ToolCallRequest) -> Any:
        seen.append(request)
        if request.tool == "fail":
            return "Refused by the operator."
        if request.tool == "echo" and request.server == "toolbox":
            return {"text": "edited"}
        return True

    fake.add(
        oai.tool_call_reply([
            ("toolbox__fail", {}), ("toolbox__echo", {"text": "original"}), ("other__echo", {"text": "ok"}),
        ]),
        oai.text_reply("done"),
    )
    ledger = open_ledger("memory")
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake, ledger=ledger)
    result = await driver.arun_tools(model, "Go.", mcp=mcp, on_tool_call=approve)
    assert [(r.server, r.tool, r.arguments) for r in seen] == [
        ("toolbox", "fail", {}), ("toolbox", "echo", {"text": "original"}), ("other", "echo", {"text": "ok"}),
    ]
    denied, edited, approved = results(result.messages)
    assert denied.is_error and denied.text == "Refused by the operator."
    assert edited.text == "[toolbox] edited" and approved.text == "[other] ok"
    assert not result.tool_runs[0].approved and result.tool_runs[0].output.status == "denied"
    tool_rows = [r for r in ledger.records() if r.kind == "tool"]  # type: ignore[attr-defined]
    assert sorted(r.tool_name for r in tool_rows) == ["echo", "echo"]  # the denied call never ran


async def test_invalid_arguments_and_unknown_tools_go_back_to_the_model(
    mcp: MCPClient, fake: FakeProvider, driver: Driver
) -> None:
    broken = oai.tool_call_reply([("toolbox__echo", {}), ("toolbox__teleport", {"to": "mars"})])
    assert isinstance(broken.body, dict)
    broken.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"text": oops'
    fake.add(broken, oai.tool_call_reply([("toolbox__echo", {"text": "fixed"})]), oai.text_reply("ok"))
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake)
    result = await driver.arun_tools(model, "Go.", mcp=mcp)
    bad_args, unknown, fixed = results(result.messages)
    assert bad_args.is_error and "not valid" in bad_args.text and "JSON object" in bad_args.text
    assert unknown.is_error and "no tool named 'toolbox__teleport'" in unknown.text
    assert "toolbox__echo" in unknown.text  # the model is told what exists
    assert fixed.text == "[toolbox] fixed"
    # The history sends the broken call back with empty arguments (no dialect sends
    # arguments that are not a JSON object); the error result quotes what was written.
    history = json.loads(sent(fake, 1))["messages"]
    assert history[1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert history[2]["role"] == "tool" and '{"text": oops' in history[2]["content"]


async def test_max_rounds_stops_the_loop_with_the_transcript(
    mcp: MCPClient, fake: FakeProvider, driver: Driver
) -> None:
    fake.default = oai.tool_call_reply([("toolbox__echo", {"text": "again"})])
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake)
    with pytest.raises(ToolLoopError, match="max_rounds=3") as info:
        await driver.arun_tools(model, "Loop forever.", mcp=mcp, max_rounds=3)
    assert len(fake.requests) == 3
    transcript = info.value.transcript
    assert [m.role for m in transcript] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]


async def test_on_tool_error_raise_stops_at_the_first_failed_call(
    mcp: MCPClient, fake: FakeProvider, driver: Driver
) -> None:
    fake.add(oai.tool_call_reply([("toolbox__fail", {"message": "broken"})]), oai.text_reply("unused"))
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake)
    with pytest.raises(ToolLoopError, match="broken") as info:
        await driver.arun_tools(model, "Go.", mcp=mcp, on_tool_error="raise")
    assert len(fake.requests) == 1
    assert info.value.transcript[-1].role == "tool"


async def test_a_forced_tool_choice_applies_to_the_first_round_only(
    mcp: MCPClient, fake: FakeProvider, driver: Driver
) -> None:
    fake.add(oai.tool_call_reply([("toolbox__echo", {"text": "x"})]), oai.text_reply("done"))
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake)
    await driver.arun_tools(model, "Go.", mcp=mcp, tool_choice="required", temperature=0)
    first, second = (r.json for r in fake.requests)
    assert first["tool_choice"] == "required" and "tool_choice" not in second
    assert first["temperature"] == 0 == second["temperature"]


async def test_local_python_tools_run_beside_mcp_tools(
    mcp: MCPClient, fake: FakeProvider, driver: Driver
) -> None:
    def local_weather(city: str) -> dict[str, Any]:
        """Weather for a city."""
        return {"city": city, "sky": "clear"}

    fake.add(
        oai.tool_call_reply([("local_weather", {"city": "Oslo"}), ("toolbox__echo", {"text": "y"})]),
        oai.text_reply("clear in Oslo"),
    )
    ledger = open_ledger("memory")
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(
        fake, ledger=ledger, attribution={"project": "forecasts", "org": "acme"}
    )
    with attribute(org="override"):
        result = await driver.arun_tools(model, "Weather?", mcp=mcp, tools=[local_weather])
    tools_sent = {t["function"]["name"] for t in fake.requests[0].json["tools"]}
    assert {"local_weather", "toolbox__echo"} <= tools_sent
    weather, echo = results(result.messages)
    assert json.loads(weather.text) == {"city": "Oslo", "sky": "clear"} and echo.text == "[toolbox] y"
    rows = ledger.records()  # type: ignore[attr-defined]
    tool_rows = [r for r in rows if r.kind == "tool"]
    assert sorted((r.provider, r.tool_name) for r in tool_rows) == [
        ("local", "local_weather"), ("mcp", "echo"),
    ]
    # tool rows are attributed like the model's rows: its defaults, the caller's scope on top
    assert {(r.kind, r.org, r.project) for r in rows} == {
        ("model", "override", "forecasts"), ("tool", "override", "forecasts"),
    }


class CountingGuard:
    """A Guard (the budgets seam) that admits ``allow`` reservations, then denies."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.reserved = 0

    def _take(self) -> Any:
        self.reserved += 1
        if self.reserved > self.allow:
            raise BudgetExceededError("project:demo", 1.0, 1.0, 0.0)
        return self

    def reserve(self, ctx: Any, deployment: Any) -> Any:
        return self._take()

    async def areserve(self, ctx: Any, deployment: Any) -> Any:
        return self._take()

    def settle(self, usage: Usage, cost_nanos: int | None) -> None: ...
    def release(self) -> None: ...
    async def asettle(self, usage: Usage, cost_nanos: int | None) -> None: ...
    async def arelease(self) -> None: ...


async def test_budgets_are_checked_on_every_round(
    mcp: MCPClient, fake: FakeProvider, driver: Driver
) -> None:
    fake.default = oai.tool_call_reply([("toolbox__echo", {"text": "again"})])
    guard = CountingGuard(allow=2)
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake, guards=[guard])
    with pytest.raises(BudgetExceededError):
        await driver.arun_tools(model, "Go.", mcp=mcp)
    assert guard.reserved == 3 and len(fake.requests) == 2


async def test_mcp_server_time_answers_through_the_loop(fake: FakeProvider, driver: Driver) -> None:
    fake.add(
        oai.tool_call_reply([("time__get_current_time", {"timezone": "Asia/Tokyo"})]),
        oai.text_reply("It is evening in Tokyo."),
    )
    model = Dialect("openai", "openai/gpt-4o-mini", oai).model(fake)
    async with MCPClient([time_server()]) as client:
        result = await driver.arun_tools(model, "Time in Tokyo?", mcp=client)
    (tool_result,) = results(result.messages)
    assert json.loads(tool_result.text)["timezone"] == "Asia/Tokyo"
    assert "Asia/Tokyo" in fake.requests[1].json["messages"][2]["content"]


# --------------------------------------------------------------------------- streaming


async def test_streamed_loop_yields_text_tool_events_and_the_result(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect
) -> None:
    fake.add(
        dialect.replies.tool_call_stream([("toolbox__add", {"a": 20, "b": 22})]),
        dialect.replies.text_stream(["The answer ", "is 42."]),
    )
    events = [
        e async for e in astream_tools(dialect.model(fake), "Add 20 and 22.", mcp=mcp)
    ]
    kinds = [type(e).__name__ for e in events]
    assert "StreamEnd" not in kinds
    assert any(isinstance(e, ToolCallDelta) for e in events)
    assert [e.round for e in events if isinstance(e, RoundEnd)] == [1, 2]
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(e.server, e.tool) for e in started] == [("toolbox", "add")]
    assert finished[0].run.result.text == "42"
    assert kinds.index("ToolCallStarted") < kinds.index("ToolCallFinished") < kinds.index("TextDelta")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The answer is 42."
    end = events[-1]
    assert isinstance(end, ToolLoopEnd) and end.result.text == "The answer is 42."
    assert fake.requests[1].json is not None and "42" in sent(fake, 1)
    assert not any(isinstance(e, StreamEnd) for e in events)


async def test_an_image_result_reaches_the_model_as_an_image(
    mcp: MCPClient, fake: FakeProvider, dialect: Dialect, driver: Driver
) -> None:
    fake.add(
        dialect.replies.tool_call_reply([("toolbox__picture", {})]),
        dialect.replies.text_reply("A transparent pixel."),
    )
    result = await driver.arun_tools(dialect.model(fake), "Show me the picture.", mcp=mcp)
    (tool_result,) = results(result.messages)
    assert isinstance(tool_result.content, list)
    assert "iVBORw0KGgo" in sent(fake, 1)  # the PNG, base64, in the dialect's image form
