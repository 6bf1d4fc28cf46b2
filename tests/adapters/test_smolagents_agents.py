"""Real smolagents agents on TollwayModel against the loopback fake provider, in each
dialect, streamed and not: the agent's own loop runs the tools and the code, and its
token accounting must equal tollway's ledger, row for row attributed to the agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters._fake_dialects import DIALECTS, FakeDialect, fake_dialect
from tests.fakes.server import FakeProvider

pytest.importorskip("smolagents")

from smolagents import CodeAgent, ToolCallingAgent, tool

from tollway.adapters.smolagents import TollwayModel
from tollway.core.cost.pricing import PriceBook
from tollway.core.stores.open import open_ledger

PRICES = PriceBook()
A, B = 1234, 4321
SUM = A + B


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> FakeDialect:
    return fake_dialect(request.param)


@pytest.fixture(params=[False, True], ids=["generate", "stream"])
def streaming(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    book = open_ledger(tmp_path / "ledger.db")
    yield book
    book.close()


def model(dialect: FakeDialect, fake: FakeProvider, ledger: Any, **options: Any) -> TollwayModel:
    return TollwayModel(dialect.target, api_base=fake.url, api_key="test-key", ledger=ledger,
                        prices=PRICES, **options)


def adder(calls: list[tuple[int, int]]) -> Any:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first integer.
            b: The second integer.
        """
        calls.append((a, b))
        return a + b

    return add


def assert_usage_matches_ledger(token_usage: Any, rows: list[Any]) -> None:
    assert token_usage.input_tokens == sum(r.usage.input_tokens for r in rows) > 0
    assert token_usage.output_tokens == sum(r.usage.output_tokens for r in rows) > 0


def test_tool_calling_agent_runs_a_tool_then_final_answer(
    dialect: FakeDialect, streaming: bool, fake: FakeProvider, ledger: Any
) -> None:
    calls: list[tuple[int, int]] = []
    agent = ToolCallingAgent(tools=[adder(calls)], model=model(dialect, fake, ledger),
                             name="calculator", stream_outputs=streaming, verbosity_level=0)
    reply = dialect.tool_calls_stream if streaming else dialect.tool_calls
    fake.add(reply(("add", {"a": A, "b": B})), reply(("final_answer", {"answer": str(SUM)})))

    result = agent.run(f"Add {A} and {B}.", return_full_result=True)

    assert str(result.output) == str(SUM)
    assert calls == [(A, B)]
    first, second = (json.dumps(r.json) for r in fake.requests)
    assert '"add"' in first and '"final_answer"' in first and str(SUM) not in first
    assert str(SUM) in second  # the tool's observation went back to the model
    rows = ledger.records()
    assert [(r.framework, r.agent, r.stream, r.status) for r in rows] == [
        ("smolagents", "calculator", streaming, "ok"),
    ] * 2
    assert_usage_matches_ledger(result.token_usage, rows)
    assert_usage_matches_ledger(agent.monitor.get_total_token_counts(), rows)


def test_code_agent_runs_a_code_step_that_calls_a_tool(
    dialect: FakeDialect, streaming: bool, fake: FakeProvider, ledger: Any
) -> None:
    calls: list[tuple[int, int]] = []
    agent = CodeAgent(tools=[adder(calls)], model=model(dialect, fake, ledger),
                      stream_outputs=streaming, verbosity_level=0)
    code = f"Thought: use the tool.\n<code>\ntotal = add({A}, {B})\nfinal_answer(total)\n</code>"
    if streaming:
        fake.add(dialect.text_stream(code[:30], code[30:60], code[60:]))
    else:
        fake.add(dialect.text(code))

    result = agent.run(f"Add {A} and {B}.", return_full_result=True)

    assert result.output == SUM
    assert calls == [(A, B)]
    assert '"</code>"' in json.dumps(fake.requests[0].json)  # its stop sequence was sent
    rows = ledger.records()
    assert [(r.agent, r.stream) for r in rows] == [("CodeAgent", streaming)]
    assert_usage_matches_ledger(result.token_usage, rows)


def test_code_agent_structured_mode_sends_its_response_format_and_runs_the_code(
    dialect: FakeDialect, fake: FakeProvider, ledger: Any
) -> None:
    calls: list[tuple[int, int]] = []
    agent = CodeAgent(tools=[adder(calls)], model=model(dialect, fake, ledger),
                      use_structured_outputs_internally=True, verbosity_level=0)
    fake.add(dialect.text(json.dumps({
        "thought": "Use the tool.", "code": f"final_answer(add({A}, {B}))",
    })))

    result = agent.run(f"Add {A} and {B}.", return_full_result=True)

    assert result.output == SUM
    assert calls == [(A, B)]
    body = dict(fake.requests[0].json)
    for key in ("messages", "contents", "system", "systemInstruction"):
        body.pop(key, None)
    assert '"thought"' in json.dumps(body)  # ThoughtAndCodeAnswer went as structured output
    assert_usage_matches_ledger(result.token_usage, ledger.records())


def test_each_agent_of_a_managed_team_is_named_in_the_ledger(
    fake: FakeProvider, ledger: Any
) -> None:
    openai = fake_dialect("openai")
    shared = model(openai, fake, ledger)
    researcher = ToolCallingAgent(tools=[], model=shared, name="researcher",
                                  description="Finds facts.", verbosity_level=0)
    manager = ToolCallingAgent(tools=[], model=shared, name="manager",
                               managed_agents=[researcher], verbosity_level=0)
    fake.add(
        openai.tool_calls(("researcher", {"task": "Find the sum."})),
        openai.tool_calls(("final_answer", {"answer": f"The sum is {SUM}."})),
        openai.tool_calls(("final_answer", {"answer": f"Done: {SUM}"})),
    )

    output = manager.run("Get the sum.")

    assert output == f"Done: {SUM}"
    assert [r.agent for r in ledger.records()] == ["manager", "researcher", "manager"]


def test_planning_steps_are_metered_for_the_agent(fake: FakeProvider, ledger: Any) -> None:
    openai = fake_dialect("openai")
    agent = ToolCallingAgent(tools=[], model=model(openai, fake, ledger), name="planner",
                             planning_interval=1, max_steps=1, verbosity_level=0)
    fake.add(
        openai.text("1. Answer directly.\n<end_plan>"),
        openai.tool_calls(("final_answer", {"answer": "ok"})),
    )

    assert agent.run("Say ok.") == "ok"
    assert "<end_plan>" in json.dumps(fake.requests[0].json)
    assert [r.agent for r in ledger.records()] == ["planner", "planner"]


def test_a_failure_the_router_gave_up_on_ends_the_run_without_more_provider_calls(
    fake: FakeProvider, ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smolagents offers no retry or fallback for a custom Model (only its own API
    models retry 429s): a model error ends the run as AgentGenerationError, so one
    persistent 429 behind an alias reaches the provider once per router attempt."""
    from smolagents.utils import AgentGenerationError

    from tollway.core.errors import AllDeploymentsFailedError, RateLimitError

    openai = fake_dialect("openai")
    fake.default = openai.replies.error_reply(429, "Rate limit reached", retry_after=0)
    monkeypatch.setenv("TOLLWAY_SMOL_KEY", "test-key")
    config = {
        "models": {"agent": [{"model": "openai/gpt-4o-mini", "api_base": fake.url,
                              "api_key": "env:TOLLWAY_SMOL_KEY"}]},
        "router": {"retries": 1, "backoff": {"base": 0.01, "max": 0.02}, "allowed_fails": 100},
    }
    agent = ToolCallingAgent(tools=[adder([])], max_steps=5,
                             model=TollwayModel("agent", config=config, ledger=ledger))
    with pytest.raises(AgentGenerationError) as caught:
        agent.run("Add 1 and 2.")
    cause = caught.value.__cause__
    assert isinstance(cause, AllDeploymentsFailedError)
    assert isinstance(cause.last_error, RateLimitError)
    assert len(fake.requests) == 2
