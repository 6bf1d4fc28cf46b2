"""Pydantic AI's real agent loop over TollwayModel, against the loopback fake provider
in the OpenAI, Anthropic and Gemini dialects: tools plus a pydantic output type in tool
and native output modes (run and run_stream), FallbackModel, UsageLimits, usage equal
to the ledger's, the agent name in the ledger, and budget denials."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, PromptedOutput, ToolOutput, UsageLimits
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError, UsageLimitExceeded
from pydantic_ai.models.fallback import FallbackModel

from tests.adapters._lg_pai_fakes import KEY, USAGE_A, USAGE_B, Script, records, script, totals
from tests.fakes.server import FakeProvider
from tollway.adapters.pydantic_ai import TollwayModel
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.errors import BudgetExceededError, ServerError, TollwayError
from tollway.core.stores.open import open_ledger
from tollway.core.transport import default_transport


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def dialect(request: pytest.FixtureRequest) -> Script:
    return script(request.param)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


@pytest.fixture
def fake2() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


class Weather(BaseModel):
    city: str
    temperature_c: int


ANSWER = {"city": "Oslo", "temperature_c": 21}


def tollway_model(d: Script, fake: FakeProvider, ledger: Ledger | bool, **kw: Any) -> TollwayModel:
    return TollwayModel(d.target, api_key=KEY, api_base=fake.url, ledger=ledger, **kw)


def weather_agent(model: Any, output_type: Any = Weather, **kw: Any) -> Agent[None, Any]:
    agent: Agent[None, Any] = Agent(model, output_type=output_type, name="weather_bot",
                                    instructions="Answer with the tool's data.", **kw)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"sunny and 21C in {city}"

    return agent


def run(coro: Any) -> Any:
    async def main() -> Any:
        try:
            return await coro
        finally:
            await default_transport().aclose()

    return asyncio.run(main())


# --------------------------------------------------------------------------- runs


def test_agent_run_calls_the_tool_and_returns_the_output_tool_result(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(dialect.calls(("get_weather", {"city": "Oslo"}), usage=USAGE_A),
             dialect.calls(("final_result", ANSWER), usage=USAGE_B))
    agent = weather_agent(tollway_model(dialect, fake, ledger, org="acme"))
    result = run(agent.run("Weather in Oslo?"))

    assert result.output == Weather(city="Oslo", temperature_c=21)
    second = json.dumps(fake.requests[1].json)
    assert "sunny and 21C in Oslo" in second
    assert "Answer with the tool's data." in json.dumps(fake.requests[0].json)
    usage = result.usage
    assert (usage.requests, usage.tool_calls) == (2, 1)
    assert (usage.input_tokens, usage.output_tokens) == totals(ledger)[1:] == (2700, 65)
    assert usage.cache_read_tokens == 2024
    rows = records(ledger)
    assert usage.cost == Decimal(sum(r.cost_nanos for r in rows)) / 10**9  # exactly tollway's
    assert {(r.framework, r.agent, r.org) for r in rows} == {("pydantic_ai", "weather_bot", "acme")}
    run_id = rows[0].attribution["run_id"]
    assert all(r.attribution["run_id"] == run_id for r in rows)
    assert len({r.trace_id for r in rows}) == 1  # one agent run, one trace


def test_agent_run_with_native_output_sends_a_json_schema_response_format(
    dialect: Script, fake: FakeProvider
) -> None:
    fake.add(dialect.calls(("get_weather", {"city": "Oslo"})), dialect.text(json.dumps(ANSWER)))
    agent = weather_agent(tollway_model(dialect, fake, False), output_type=NativeOutput(Weather))
    result = run(agent.run("Weather in Oslo?"))
    assert result.output == Weather(**ANSWER)
    body = fake.requests[1].json
    if dialect.name == "openai":
        assert body["response_format"]["type"] == "json_schema"
        assert body["tool_choice"] == "auto"
    elif dialect.name == "anthropic":
        assert body["output_config"]["format"]["schema"]["properties"]["city"]
    else:
        assert body["generationConfig"]["responseMimeType"] == "application/json"


def test_prompted_output_puts_the_schema_in_the_instructions(fake: FakeProvider) -> None:
    d = script("openai")
    fake.add(d.text(json.dumps(ANSWER)))
    agent = Agent(tollway_model(d, fake, False), output_type=PromptedOutput(Weather))
    assert run(agent.run("Weather?")).output == Weather(**ANSWER)
    body = fake.requests[0].json
    assert "response_format" not in body and "tools" not in body
    assert "temperature_c" in body["messages"][0]["content"]


def test_output_tools_without_text_output_force_a_tool_call(
    dialect: Script, fake: FakeProvider
) -> None:
    fake.add(dialect.calls(("final_result", ANSWER)))
    agent = Agent(tollway_model(dialect, fake, False), output_type=ToolOutput(Weather))
    run(agent.run("Weather?"))
    body = fake.requests[0].json
    forced = {"openai": ("tool_choice", "required"), "anthropic": ("tool_choice", {"type": "any"}),
              "gemini": ("toolConfig", {"functionCallingConfig": {"mode": "ANY"}})}[dialect.name]
    assert body[forced[0]] == forced[1]


def test_run_stream_streams_text_and_its_usage_equals_the_ledger(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(dialect.calls_stream(("get_weather", {"city": "Oslo"}), usage=USAGE_A),
             dialect.text_stream("Sunny ", "and ", "21C.", usage=USAGE_B))
    agent = weather_agent(tollway_model(dialect, fake, ledger), output_type=str)

    async def go() -> tuple[list[str], Any, str]:
        async with agent.run_stream("Weather in Oslo?") as result:
            pieces = [piece async for piece in result.stream_text(delta=True, debounce_by=None)]
            output = await result.get_output()
        return pieces, result.usage, output

    pieces, usage, output = run(go())
    assert "".join(pieces) == output == "Sunny and 21C."
    assert len(pieces) >= 2
    assert (usage.input_tokens, usage.output_tokens) == totals(ledger)[1:] == (2700, 65)
    assert all(r.stream and r.agent == "weather_bot" for r in records(ledger))


def test_run_stream_with_an_output_tool_returns_the_model(
    dialect: Script, fake: FakeProvider
) -> None:
    fake.add(dialect.calls_stream(("get_weather", {"city": "Oslo"})),
             dialect.calls_stream(("final_result", ANSWER)))
    agent = weather_agent(tollway_model(dialect, fake, False))

    async def go() -> Any:
        async with agent.run_stream("Weather in Oslo?") as result:
            return await result.get_output()

    assert run(go()) == Weather(**ANSWER)


def test_run_stream_with_native_output_returns_the_model(
    dialect: Script, fake: FakeProvider
) -> None:
    fake.add(dialect.text_stream('{"city": "Oslo", ', '"temperature_c": 21}'))
    agent = Agent(tollway_model(dialect, fake, False), output_type=NativeOutput(Weather))

    async def go() -> Any:
        async with agent.run_stream("Weather in Oslo?") as result:
            return await result.get_output()

    assert run(go()) == Weather(**ANSWER)


# --------------------------------------------------------------------------- failures


def test_fallback_model_falls_from_a_failing_tollway_model_to_a_healthy_one(
    fake: FakeProvider, fake2: FakeProvider, ledger: Ledger
) -> None:
    failing, healthy = script("openai"), script("anthropic")
    fake.default = failing.error(500, "upstream exploded")
    fake2.add(healthy.text("Sunny."))
    model = FallbackModel(tollway_model(failing, fake, ledger), tollway_model(healthy, fake2, ledger))
    result = run(Agent(model).run("Weather?"))
    assert result.output == "Sunny."
    assert len(fake.requests) == 1 and len(fake2.requests) == 1
    statuses = [(r.provider, r.status) for r in records(ledger)]
    assert statuses == [("openai", "ServerError"), ("anthropic", "ok")]


def test_a_provider_failure_is_a_model_http_error_with_the_tollway_error_as_cause(
    fake: FakeProvider,
) -> None:
    d = script("gemini")
    fake.add(d.error(503, "The model is overloaded."))
    with pytest.raises(ModelHTTPError) as err:
        run(Agent(tollway_model(d, fake, False)).run("hi"))
    assert err.value.status_code == 503
    assert isinstance(err.value.__cause__, ServerError)


def test_usage_limits_stop_the_run_before_another_request(
    fake: FakeProvider, ledger: Ledger
) -> None:
    d = script("openai")
    fake.default = d.calls(("get_weather", {"city": "Oslo"}))
    agent = weather_agent(tollway_model(d, fake, ledger))
    with pytest.raises(UsageLimitExceeded, match="request_limit"):
        run(agent.run("Weather?", usage_limits=UsageLimits(request_limit=2)))
    assert len(fake.requests) == 2 == totals(ledger)[0]


def test_a_token_usage_limit_is_checked_against_tollway_usage(fake: FakeProvider) -> None:
    d = script("anthropic")
    fake.default = d.calls(("get_weather", {"city": "Oslo"}), usage=USAGE_A)
    agent = weather_agent(tollway_model(d, fake, False))
    with pytest.raises(UsageLimitExceeded, match="input_tokens_limit"):
        run(agent.run("Weather?", usage_limits=UsageLimits(input_tokens_limit=2000)))
    assert len(fake.requests) == 2  # 1200 after one request, 2400 > 2000 after two


def test_a_denying_budget_surfaces_budget_exceeded_error_to_the_caller(
    dialect: Script, fake: FakeProvider, fake2: FakeProvider, ledger: Ledger
) -> None:
    budget = Budgets([{"scope": {"org": "acme"}, "limit": 0, "period": "day"}])
    denied = tollway_model(dialect, fake, ledger, org="acme", guards=[budget])
    with pytest.raises(BudgetExceededError, match="org=acme"):
        run(weather_agent(denied).run("Weather?"))

    async def go() -> None:
        async with weather_agent(denied, output_type=str).run_stream("Weather?") as result:
            await result.get_output()

    with pytest.raises(BudgetExceededError):
        run(go())
    # a FallbackModel does not move a denied spend to another model by default
    fake2.add(dialect.text("never sent"))
    other = tollway_model(dialect, fake2, ledger, org="acme")
    with pytest.raises(BudgetExceededError):
        run(Agent(FallbackModel(denied, other)).run("Weather?"))
    assert fake.requests == [] and fake2.requests == []
    assert {r.status for r in records(ledger)} == {"BudgetExceededError"}


def test_an_error_inside_an_open_stream_is_a_model_api_error_marked_in_stream(
    fake: FakeProvider, ledger: Ledger
) -> None:
    d = script("anthropic")
    reply = d.replies.error_stream("Overloaded", text_before="Partial")
    reply.chunk_delay = 0.05  # the error arrives after the first token reached the caller
    fake.add(reply)
    agent = Agent(tollway_model(d, fake, ledger))

    async def go() -> None:
        async with agent.run_stream("hi") as result:
            await result.get_output()

    with pytest.raises(ModelAPIError) as err:
        run(go())
    assert err.value.in_stream is True
    assert isinstance(err.value.__cause__, TollwayError)
    [row] = records(ledger)
    assert row.status != "ok" and row.stream is True


def test_fallback_model_falls_back_while_every_deployment_of_the_primary_cools_down(
    fake: FakeProvider, fake2: FakeProvider, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing, healthy = script("openai"), script("anthropic")
    fake.default = failing.error(500, "upstream exploded")
    fake2.default = healthy.text("Sunny.")
    config = {
        "models": {"primary": [{"model": failing.target, "api_base": fake.url,
                                "api_key": "env:TOLLWAY_TEST_PRIMARY_KEY"}]},
        "router": {"retries": 0, "allowed_fails": 1, "cooldown": 60},
        "ledger": False,
    }
    monkeypatch.setenv("TOLLWAY_TEST_PRIMARY_KEY", KEY)
    primary = TollwayModel("primary", config=config)
    model = FallbackModel(primary, tollway_model(healthy, fake2, ledger))
    assert run(Agent(model).run("Weather?")).output == "Sunny."  # 500: the deployment cools
    assert run(Agent(model).run("Weather?")).output == "Sunny."  # cooling: no attempt made
    assert len(fake.requests) == 1  # the cooling deployment was not called again
    assert len(fake2.requests) == 2
