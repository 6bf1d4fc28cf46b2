"""Real CrewAI crews on TollwayLLM against the loopback fake provider, in each dialect.

CrewAI's own executor drives every call: native function calling, streaming crews,
``output_pydantic``, budgets, the manager and planner LLMs. Each test checks what
CrewAI saw (outputs, ``crew.usage_metrics``, stream chunks) against what tollway
recorded (one ledger row per model call, attributed to the agent role and task).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.adapters._fake_dialects import DIALECTS, FakeDialect, fake_dialect
from tests.adapters._isolation import (  # noqa: F401 - fixtures
    BASELINE,
    crewai_env,
    import_crewai,
    no_network,
    real_home_snapshot,
)
from tests.adapters._isolation import HOME as TEMP_HOME
from tests.fakes.server import FakeProvider

import_crewai()

from crewai import Agent, Crew, Process, Task  # noqa: E402
from crewai.tools import tool  # noqa: E402
from crewai.types.streaming import StreamChunkType  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from tollway.adapters.crewai import TollwayLLM  # noqa: E402
from tollway.core.cost.pricing import PriceBook  # noqa: E402
from tollway.core.errors import (  # noqa: E402
    AllDeploymentsFailedError,
    BudgetExceededError,
    ProviderError,
    RateLimitError,
)
from tollway.core.stores.open import open_ledger  # noqa: E402
from tollway.core.transport import default_transport  # noqa: E402

pytestmark = pytest.mark.usefixtures("crewai_env", "no_network")

PRICES = PriceBook()
A, B = 1234, 4321
SUM = A + B


class SumReport(BaseModel):
    total: int
    words: str


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> FakeDialect:
    return fake_dialect(request.param)


@pytest.fixture
async def close_async_clients() -> AsyncIterator[None]:
    """Close the transport's client for this test's event loop when the test ends."""
    yield
    await default_transport().aclose()


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    book = open_ledger(tmp_path / "ledger.db")
    yield book
    book.close()


def llm(dialect: FakeDialect, fake: FakeProvider, ledger: Any, **options: Any) -> TollwayLLM:
    return TollwayLLM(
        dialect.target, api_base=fake.url, api_key="test-key", ledger=ledger, prices=PRICES,
        **options,
    )


def adder(calls: list[tuple[int, int]]) -> Any:
    @tool("add")
    def add(a: int, b: int) -> int:
        """Add two integers and return their sum."""
        calls.append((a, b))
        return a + b

    return add


def two_agent_crew(
    dialect: FakeDialect, fake: FakeProvider, ledger: Any, calls: list[tuple[int, int]],
    **crew_options: Any,
) -> Crew:
    calculator = Agent(
        role="Calculator", goal="Add numbers exactly", backstory="A careful accountant.",
        llm=llm(dialect, fake, ledger), tools=[adder(calls)], max_retry_limit=0,
    )
    writer = Agent(
        role="Writer", goal="Write numbers in words", backstory="A copy editor.",
        llm=llm(dialect, fake, ledger), max_retry_limit=0,
    )
    add_task = Task(
        name="add", description=f"Add {A} and {B} with the add tool.",
        expected_output="The sum.", agent=calculator,
    )
    words_task = Task(
        name="words", description="Write the sum in words.", expected_output="Words.",
        agent=writer, context=[add_task],
    )
    return Crew(agents=[calculator, writer], tasks=[add_task, words_task], **crew_options)


def assert_usage_matches_ledger(crew: Crew, rows: list[Any]) -> None:
    ok = [r for r in rows if r.status == "ok"]
    metrics = crew.usage_metrics
    assert metrics is not None
    assert metrics.prompt_tokens == sum(r.usage.input_tokens for r in ok) > 0
    assert metrics.completion_tokens == sum(r.usage.output_tokens for r in ok) > 0
    assert metrics.cached_prompt_tokens == sum(r.usage.cache_read_tokens for r in ok)
    assert metrics.reasoning_tokens == sum(r.usage.reasoning_tokens for r in ok)
    assert metrics.total_tokens == sum(r.usage.total_tokens for r in ok)
    assert metrics.successful_requests == len(ok)


def test_two_agent_crew_runs_a_native_tool_call_and_meters_each_agent(
    dialect: FakeDialect, fake: FakeProvider, ledger: Any
) -> None:
    calls: list[tuple[int, int]] = []
    crew = two_agent_crew(dialect, fake, ledger, calls)
    fake.add(
        dialect.tool_calls(("add", {"a": A, "b": B})),
        dialect.text(f"The sum is {SUM}."),
        dialect.text("five thousand five hundred fifty-five"),
    )

    output = crew.kickoff()

    assert calls == [(A, B)]
    assert output.raw == "five thousand five hundred fifty-five"
    assert output.tasks_output[0].raw == f"The sum is {SUM}."
    assert len(fake.requests) == 3
    first, second = (json.dumps(r.json) for r in fake.requests[:2])
    assert '"add"' in first and str(SUM) not in first  # the tool was offered natively
    assert str(SUM) in second  # ...and its result went back to the model
    rows = ledger.records()
    assert [(r.agent, r.framework, r.attribution.get("task"), r.status) for r in rows] == [
        ("Calculator", "crewai", "add", "ok"),
        ("Calculator", "crewai", "add", "ok"),
        ("Writer", "crewai", "words", "ok"),
    ]
    assert all(r.cost_nanos is not None and r.cost_nanos > 0 for r in rows)
    assert_usage_matches_ledger(crew, rows)


def test_streaming_crew_emits_text_and_tool_chunks_and_returns_the_full_text(
    dialect: FakeDialect, fake: FakeProvider, ledger: Any
) -> None:
    calls: list[tuple[int, int]] = []
    crew = two_agent_crew(dialect, fake, ledger, calls, stream=True)
    fake.add(
        dialect.tool_calls_stream(("add", {"a": A, "b": B})),
        dialect.text_stream("The sum ", f"is {SUM}."),
        dialect.text_stream("five thousand ", "five hundred ", "fifty-five"),
    )

    streaming = crew.kickoff()
    chunks = list(streaming)
    result = streaming.result

    assert calls == [(A, B)]
    assert result.raw == "five thousand five hundred fifty-five"
    writer_text = "".join(
        c.content for c in chunks if c.agent_role == "Writer" and c.chunk_type == StreamChunkType.TEXT
    )
    assert writer_text == result.raw
    tool_chunks = [c for c in chunks if c.chunk_type == StreamChunkType.TOOL_CALL]
    assert tool_chunks and all(c.agent_role == "Calculator" for c in tool_chunks)
    assert tool_chunks[-1].tool_call is not None
    assert tool_chunks[-1].tool_call.tool_name == "add"
    assert json.loads(tool_chunks[-1].tool_call.arguments) == {"a": A, "b": B}
    rows = ledger.records()
    assert [(r.agent, r.stream, r.status) for r in rows] == [
        ("Calculator", True, "ok"), ("Calculator", True, "ok"), ("Writer", True, "ok"),
    ]
    assert_usage_matches_ledger(crew, rows)


def test_output_pydantic_task_asks_for_structured_output_and_returns_the_model(
    dialect: FakeDialect, fake: FakeProvider, ledger: Any
) -> None:
    reporter = Agent(role="Reporter", goal="Report sums", backstory="Terse.",
                     llm=llm(dialect, fake, ledger), max_retry_limit=0)
    task = Task(description=f"Report the sum of {A} and {B}.", expected_output="A report.",
                agent=reporter, output_pydantic=SumReport)
    answer = SumReport(total=SUM, words="five thousand five hundred fifty-five")
    fake.add(dialect.text(answer.model_dump_json()))

    output = Crew(agents=[reporter], tasks=[task]).kickoff()

    assert output.pydantic == answer
    body = dict(fake.requests[0].json)
    for key in ("messages", "contents", "system", "systemInstruction"):
        body.pop(key, None)
    assert '"total"' in json.dumps(body)  # the schema went as structured output, not only prose
    assert [r.agent for r in ledger.records()] == ["Reporter"]


def test_function_calling_llm_converts_a_tool_agents_answer_and_is_metered_for_it(
    fake: FakeProvider, ledger: Any
) -> None:
    openai = fake_dialect("openai")
    calls: list[tuple[int, int]] = []
    converter_llm = llm(openai, fake, ledger, project="conversions")
    calculator = Agent(role="Calculator", goal="Add numbers exactly", backstory="Careful.",
                       llm=llm(openai, fake, ledger), function_calling_llm=converter_llm,
                       tools=[adder(calls)], max_retry_limit=0)
    task = Task(name="report", description=f"Add {A} and {B} and report the sum.",
                expected_output="A report.", agent=calculator, output_pydantic=SumReport)
    answer = SumReport(total=SUM, words="five thousand five hundred fifty-five")
    fake.add(
        openai.tool_calls(("add", {"a": A, "b": B})),
        openai.text(f"The sum is {SUM}, five thousand five hundred fifty-five."),
        openai.text(answer.model_dump_json()),
    )

    output = Crew(agents=[calculator], tasks=[task]).kickoff()

    assert output.pydantic == answer
    assert calls == [(A, B)]
    assert fake.requests[2].json["response_format"]["json_schema"]["name"] == "SumReport"
    rows = ledger.records()
    assert [(r.agent, r.attribution.get("task"), r.project) for r in rows] == [
        ("Calculator", "report", None),
        ("Calculator", "report", None),
        ("Calculator", "report", "conversions"),  # the converter call, on function_calling_llm
    ]


def test_a_budget_denial_stops_the_crew_with_budget_exceeded_error(
    fake: FakeProvider, ledger: Any
) -> None:
    budgets = pytest.importorskip("tollway.core.cost.budgets")
    openai = fake_dialect("openai")
    guard = budgets.Budgets(
        [{"scope": {"project": "newsroom"}, "limit": 2, "unit": "requests", "period": "day"}],
        prices=PRICES,
    )
    calls: list[tuple[int, int]] = []
    crew = two_agent_crew(openai, fake, ledger, calls)
    for agent in crew.agents:
        agent.llm = llm(openai, fake, ledger, project="newsroom", guards=[guard])
        agent.max_retry_limit = 2  # CrewAI's default; a denial must not be retried anyway
    fake.add(openai.tool_calls(("add", {"a": A, "b": B})), openai.text(f"The sum is {SUM}."))

    with pytest.raises(BudgetExceededError) as caught:
        crew.kickoff()

    assert "project=newsroom" in caught.value.scope
    assert caught.value.limit == 2
    assert len(fake.requests) == 2  # the Writer's call never reached the provider
    rows = ledger.records()
    assert [(r.agent, r.status) for r in rows] == [
        ("Calculator", "ok"), ("Calculator", "ok"), ("Writer", "BudgetExceededError"),
    ]


@pytest.mark.usefixtures("close_async_clients")
async def test_async_kickoff_goes_through_acall(fake: FakeProvider, ledger: Any) -> None:
    openai = fake_dialect("openai")
    calls: list[tuple[int, int]] = []
    crew = two_agent_crew(openai, fake, ledger, calls)
    fake.add(
        openai.tool_calls(("add", {"a": A, "b": B})),
        openai.text(f"The sum is {SUM}."),
        openai.text("five thousand five hundred fifty-five"),
    )

    output = await crew.akickoff()

    assert calls == [(A, B)]
    assert output.raw == "five thousand five hundred fifty-five"
    rows = ledger.records()
    assert [r.agent for r in rows] == ["Calculator", "Calculator", "Writer"]
    assert_usage_matches_ledger(crew, rows)


def test_manager_llm_of_a_hierarchical_crew_is_metered_as_the_manager(
    fake: FakeProvider, ledger: Any
) -> None:
    openai = fake_dialect("openai")
    writer = Agent(role="Writer", goal="Write numbers in words", backstory="A copy editor.",
                   llm=llm(openai, fake, ledger), allow_delegation=False)
    task = Task(description=f"Write {SUM} in words.", expected_output="Words.")
    crew = Crew(agents=[writer], tasks=[task], process=Process.hierarchical,
                manager_llm=llm(openai, fake, ledger))
    fake.add(
        openai.tool_calls(("delegate_work_to_coworker", {
            "task": f"Write {SUM} in words.", "context": "A number.", "coworker": "Writer",
        })),
        openai.text("five thousand five hundred fifty-five"),
        openai.text("Done: five thousand five hundred fifty-five"),
    )

    output = crew.kickoff()

    assert output.raw == "Done: five thousand five hundred fifty-five"
    agents = [r.agent for r in ledger.records()]
    assert agents == ["Crew Manager", "Writer", "Crew Manager"]
    assert_usage_matches_ledger(crew, ledger.records())


def test_planning_llm_writes_the_plan_through_tollway(fake: FakeProvider, ledger: Any) -> None:
    openai = fake_dialect("openai")
    writer = Agent(role="Writer", goal="Write numbers in words", backstory="A copy editor.",
                   llm=llm(openai, fake, ledger))
    task = Task(description=f"Write {SUM} in words.", expected_output="Words.", agent=writer)
    crew = Crew(agents=[writer], tasks=[task], planning=True,
                planning_llm=llm(openai, fake, ledger))
    plan = {"list_of_plans_per_task": [{"task_number": 1, "task": "Write it",
                                        "plan": "Spell the digits out."}]}
    fake.add(openai.text(json.dumps(plan)), openai.text("five thousand five hundred fifty-five"))

    output = crew.kickoff()

    assert output.raw == "five thousand five hundred fifty-five"
    planner_format = fake.requests[0].json["response_format"]["json_schema"]
    assert planner_format["name"] == "PlannerTaskPydanticOutput"
    assert "Spell the digits out." in json.dumps(fake.requests[1].json)
    rows = ledger.records()
    assert [r.agent for r in rows] == ["Task Execution Planner", "Writer"]


def test_a_crew_run_writes_nothing_outside_the_temporary_home(
    fake: FakeProvider, ledger: Any
) -> None:
    before = real_home_snapshot()
    calls: list[tuple[int, int]] = []
    crew = two_agent_crew(fake_dialect("openai"), fake, ledger, calls, memory=False)
    openai = fake_dialect("openai")
    fake.add(openai.tool_calls(("add", {"a": A, "b": B})), openai.text(f"The sum is {SUM}."),
             openai.text("five"))

    crew.kickoff()

    assert real_home_snapshot() == before == BASELINE  # nor at import, before this test
    assert Path.home() == TEMP_HOME
    assert any(TEMP_HOME.rglob("*"))  # CrewAI did write: into the temporary HOME


def _one_agent_crew(agent_llm: TollwayLLM, retries: int = 2) -> Crew:
    agent = Agent(role="Writer", goal="Write", backstory="A copy editor.", llm=agent_llm,
                  max_retry_limit=retries)  # 2 is CrewAI's default
    return Crew(agents=[agent], tasks=[Task(name="write", description="Write a line.",
                                            expected_output="A line.", agent=agent)])


def test_a_failure_the_router_gave_up_on_is_not_rerun_by_max_retry_limit(
    fake: FakeProvider, ledger: Any
) -> None:
    """One persistent 429 behind an alias: the router's two attempts reach the provider,
    and CrewAI does not rerun the task (it did: 3 runs x 2 attempts)."""
    openai = fake_dialect("openai")
    fake.default = openai.replies.error_reply(429, "Rate limit reached", retry_after=0)
    config = {
        "models": {"writer": [{"model": "openai/gpt-4o-mini", "api_base": fake.url,
                               "api_key": "env:TOLLWAY_CREW_KEY"}]},
        "router": {"retries": 1, "backoff": {"base": 0.01, "max": 0.02}, "allowed_fails": 100},
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TOLLWAY_CREW_KEY", "test-key")
        crew = _one_agent_crew(TollwayLLM("writer", config=config, ledger=ledger, prices=PRICES))
    with pytest.raises(AllDeploymentsFailedError) as caught:
        crew.kickoff()
    assert isinstance(caught.value.last_error, RateLimitError)
    assert len(fake.requests) == 2
    assert [r.status for r in ledger.records()] == ["RateLimitError", "RateLimitError"]


@pytest.mark.parametrize("status", [401, 404, 400])
def test_a_provider_refusal_no_retry_can_fix_is_not_rerun_by_max_retry_limit(
    fake: FakeProvider, ledger: Any, status: int
) -> None:
    openai = fake_dialect("openai")
    fake.default = openai.replies.error_reply(status, "refused")
    crew = _one_agent_crew(llm(openai, fake, ledger))
    with pytest.raises(ProviderError) as caught:
        crew.kickoff()
    assert caught.value.status == status
    assert len(fake.requests) == 1


def test_a_retryable_failure_of_a_single_attempt_is_left_to_max_retry_limit(
    fake: FakeProvider, ledger: Any
) -> None:
    """A bare provider/model target makes one attempt (tollway retries nothing there), so
    CrewAI's own rerun is the retry: a 500 then an answer completes the task."""
    openai = fake_dialect("openai")
    fake.add(openai.replies.error_reply(500, "The server had an error"), openai.text("A line."))
    output = _one_agent_crew(llm(openai, fake, ledger), retries=1).kickoff()
    assert output.raw == "A line."
    assert len(fake.requests) == 2
