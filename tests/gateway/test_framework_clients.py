"""Frameworks that only speak HTTP, pointed at the gateway: LangChain's ChatOpenAI and a
CrewAI crew on CrewAI's own OpenAI LLM (not tollway's adapter), sync and async."""

from __future__ import annotations

import asyncio

import pytest

from tests.adapters._isolation import crewai_env, import_crewai  # noqa: F401 - fixtures
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.clients import DRIVERS


@pytest.mark.parametrize("driver", DRIVERS)
def test_langchain_chat_openai_through_the_gateway(driver: str, gateway_server, fake: FakeProvider) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    gw = gateway_server()
    secret, key = gw.create_key(project="lc")
    fake.add(oai.text_reply("LangChain says hi"),
             oai.tool_call_reply([("multiply", {"a": 6, "b": 7})]),
             oai.text_stream(["str", "eamed"]))
    llm = ChatOpenAI(model="fast", base_url=gw.url + "/v1", api_key=secret, max_retries=0)  # type: ignore[arg-type]

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    tooled = llm.bind_tools([multiply])
    if driver == "sync":
        answer = llm.invoke([HumanMessage("hi")])
        called = tooled.invoke("6 times 7?")
        streamed = "".join(str(chunk.content) for chunk in llm.stream("go"))
    else:
        async def run() -> tuple[object, object, str]:
            answer = await llm.ainvoke([HumanMessage("hi")])
            called = await tooled.ainvoke("6 times 7?")
            streamed = "".join([str(chunk.content) async for chunk in llm.astream("go")])
            return answer, called, streamed

        answer, called, streamed = asyncio.run(run())
    assert answer.content == "LangChain says hi"  # type: ignore[attr-defined]
    assert called.tool_calls[0]["name"] == "multiply"  # type: ignore[attr-defined]
    assert called.tool_calls[0]["args"] == {"a": 6, "b": 7}  # type: ignore[attr-defined]
    assert streamed == "streamed"
    rows = gw.ledger_rows()
    assert [(r["key"], r["project"], r["status"]) for r in rows] == [(key.id, "lc", "ok")] * 3


@pytest.mark.usefixtures("crewai_env")
@pytest.mark.parametrize("driver", DRIVERS)
def test_crewai_crew_on_its_own_openai_llm_through_the_gateway(driver: str, gateway_server, fake: FakeProvider) -> None:
    import_crewai()
    from crewai import LLM, Agent, Crew, Task

    gw = gateway_server()
    secret, key = gw.create_key(project="crew", models=["fast"])
    fake.default = oai.text_reply("Thought: I know it.\nFinal Answer: 5555")
    llm = LLM(model="openai/fast", base_url=gw.url + "/v1", api_key=secret, max_retries=0)
    agent = Agent(role="Adder", goal="Add numbers", backstory="Careful with sums.", llm=llm,
                  verbose=False)
    task = Task(description="What is 1234 + 4321?", expected_output="the sum", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], verbose=False)
    result = crew.kickoff() if driver == "sync" else asyncio.run(crew.kickoff_async())
    assert "5555" in str(result)
    sent = fake.requests[-1].json
    assert sent["model"] == "gpt-4o-mini"
    assert "1234 + 4321" in str(sent["messages"])
    rows = gw.ledger_rows()
    assert rows and {(r["key"], r["project"]) for r in rows} == {(key.id, "crew")}
