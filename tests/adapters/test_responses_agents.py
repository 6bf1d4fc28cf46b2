"""Each framework's real tool-calling agent on a Responses deployment of the fake server:
two tool rounds, each answered with a reasoning item whose ``encrypted_content`` must be
sent back verbatim on the following rounds (asserted on the requests the server got),
non-streamed and streamed. The framework carries tollway's parts through its own
message types between rounds, so this proves each adapter keeps the reasoning state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

import tollway
from tests.fakes import replies_openai_responses as rsp
from tests.fakes.server import FakeProvider
from tollway.core.transport import default_transport

KEY = "sk-test-adapter-key-0123456789"
CITIES = ("Oslo", "Bergen")
ANSWER = "Sunny in Oslo and Bergen."


def responses_model(fake: FakeProvider) -> tollway.Model:
    return tollway.Model("openai/gpt-5-mini", api="responses", api_key=KEY, api_base=fake.url,
                         ledger=False, config=False)


def script(fake: FakeProvider, tool: str, streamed: bool, arg: str = "city",
           final: str = ANSWER) -> list[str]:
    """Two rounds of one tool call each (with reasoning), then the final text; returns
    the encrypted blobs of the two reasoning items."""
    blobs = []
    for city in CITIES:
        calls = [(tool, {arg: city})]
        build = rsp.tool_call_stream if streamed else rsp.tool_call_reply
        fake.add(build(calls, reasoning=f"I need the weather in {city}."))
        blobs.append(rsp.encrypted("calls:" + repr(calls)))
    fake.add(rsp.text_stream([final[:6], final[6:]]) if streamed else rsp.text_reply(final))
    return blobs


def assert_reasoning_sent_back(fake: FakeProvider, blobs: list[str], streamed: bool) -> None:
    """Round 2 carries the first reasoning item; round 3 both, each before its call."""
    assert len(fake.requests) == 3
    assert [bool(r.json.get("stream")) for r in fake.requests] == [streamed] * 3
    assert all(r.path == "/responses" for r in fake.requests)
    first, second, third = (r.json for r in fake.requests)
    assert "reasoning.encrypted_content" in first["include"]
    assert not any(i.get("type") == "reasoning" for i in first["input"])
    for body, expected in ((second, blobs[:1]), (third, blobs)):
        items = body["input"]
        reasoning = [i for i in items if i.get("type") == "reasoning"]
        assert [i["encrypted_content"] for i in reasoning] == expected
        for item in reasoning:
            assert item["id"].startswith("rs_")
            assert item["summary"][0]["type"] == "summary_text"
            following = items[items.index(item) + 1]
            assert following["type"] == "function_call"  # its call follows it
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        assert len(outputs) == len(expected)
        assert all("Sunny" in json.dumps(o["output"]) for o in outputs)


def weather(city: str) -> str:
    return f"Sunny, 21C in {city}"


def run(coro: Any) -> Any:
    async def main() -> Any:
        try:
            return await coro
        finally:
            await default_transport().aclose()

    return asyncio.run(main())


STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])


# --------------------------------------------------------------------------- LangGraph


@STREAMED
def test_langgraph_agent_sends_reasoning_back_across_two_tool_rounds(
    streamed: bool, fake: FakeProvider
) -> None:
    pytest.importorskip("langgraph")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from tollway.adapters.langgraph import TollwayChatModel

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return weather(city)

    blobs = script(fake, "get_weather", streamed)
    chat = TollwayChatModel(client=responses_model(fake), streaming=streamed)
    agent = create_agent(chat, tools=[get_weather])
    if streamed:
        async def go() -> Any:
            return await agent.ainvoke({"messages": [("user", "Weather in Oslo and Bergen?")]})
        out = run(go())
    else:
        out = agent.invoke({"messages": [("user", "Weather in Oslo and Bergen?")]})
    assert out["messages"][-1].text == ANSWER
    assert_reasoning_sent_back(fake, blobs, streamed)


# --------------------------------------------------------------------------- Pydantic AI


@STREAMED
def test_pydantic_ai_agent_sends_reasoning_back_across_two_tool_rounds(
    streamed: bool, fake: FakeProvider
) -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent

    from tollway.adapters.pydantic_ai import TollwayModel

    blobs = script(fake, "get_weather", streamed)
    agent: Agent[None, str] = Agent(TollwayModel(client=responses_model(fake)), name="weather")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return weather(city)

    async def go() -> str:
        if not streamed:
            return (await agent.run("Weather in Oslo and Bergen?")).output
        async with agent.run_stream("Weather in Oslo and Bergen?") as result:
            return await result.get_output()

    assert run(go()) == ANSWER
    assert_reasoning_sent_back(fake, blobs, streamed)


# --------------------------------------------------------------------------- smolagents


@STREAMED
def test_smolagents_agent_sends_reasoning_back_across_two_tool_rounds(
    streamed: bool, fake: FakeProvider
) -> None:
    pytest.importorskip("smolagents")
    from smolagents import ToolCallingAgent, tool

    from tollway.adapters.smolagents import TollwayModel

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: The city.
        """
        return weather(city)

    blobs = []
    for city in CITIES:
        calls = [("get_weather", {"city": city})]
        build = rsp.tool_call_stream if streamed else rsp.tool_call_reply
        fake.add(build(calls, reasoning=f"I need the weather in {city}."))
        blobs.append(rsp.encrypted("calls:" + repr(calls)))
    final = [("final_answer", {"answer": ANSWER})]
    fake.add((rsp.tool_call_stream if streamed else rsp.tool_call_reply)(final))
    agent = ToolCallingAgent(tools=[get_weather], model=TollwayModel(responses_model(fake)),
                             stream_outputs=streamed, verbosity_level=0)
    assert agent.run("Weather in Oslo and Bergen?") == ANSWER
    assert_reasoning_sent_back(fake, blobs, streamed)


# --------------------------------------------------------------------------- CrewAI


@pytest.fixture
def crewai_ready(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CrewAI without telemetry, tracing or writes to the real home (see _isolation)."""
    pytest.importorskip("crewai")
    for key, value in {"CREWAI_DISABLE_TELEMETRY": "true", "CREWAI_TRACING_ENABLED": "false",
                       "OTEL_SDK_DISABLED": "true", "HOME": str(tmp_path),
                       "CREWAI_STORAGE_DIR": str(tmp_path / "crewai")}.items():
        monkeypatch.setenv(key, value)
    yield


@STREAMED
def test_crewai_agent_sends_reasoning_back_across_two_tool_rounds(
    streamed: bool, fake: FakeProvider, crewai_ready: None
) -> None:
    from crewai import Agent, Crew, Task
    from crewai.tools import tool

    from tollway.adapters.crewai import TollwayLLM

    @tool("get_weather")
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return weather(city)

    blobs = script(fake, "get_weather", streamed)
    forecaster = Agent(role="Forecaster", goal="Report the weather", backstory="A meteorologist.",
                       llm=TollwayLLM(responses_model(fake), stream=streamed),
                       tools=[get_weather], max_retry_limit=0)
    task = Task(description="Weather in Oslo, then in Bergen (one tool call each).",
                expected_output="The weather.", agent=forecaster)
    crew = Crew(agents=[forecaster], tasks=[task], stream=streamed)
    output = crew.kickoff()
    if streamed:
        list(output)
        output = output.result
    assert output.raw == ANSWER
    assert_reasoning_sent_back(fake, blobs, streamed)
