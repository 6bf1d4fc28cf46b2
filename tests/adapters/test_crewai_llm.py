"""TollwayLLM's contract with CrewAI, one call at a time, against the loopback fake.

What CrewAI's native providers do (``crewai.llms.providers.openai.completion``) is the
specification: the events they emit, the hooks they run, what they return for tool
calls and structured output, how they apply stop words, the errors CrewAI acts on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.adapters._fake_dialects import fake_dialect
from tests.adapters._isolation import crewai_env, import_crewai, no_network  # noqa: F401
from tests.fakes import replies_openai as openai
from tests.fakes.server import FakeProvider

import_crewai()

from crewai import Agent, Task  # noqa: E402
from crewai.events.event_bus import crewai_event_bus  # noqa: E402
from crewai.events.types.llm_events import (  # noqa: E402
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMCallType,
    LLMStreamChunkEvent,
    LLMThinkingChunkEvent,
)
from crewai.events.types.tool_usage_events import (  # noqa: E402
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewai.hooks import (  # noqa: E402
    HookAborted,
    register_after_llm_call_hook,
    register_before_llm_call_hook,
    unregister_after_llm_call_hook,
    unregister_before_llm_call_hook,
)
from crewai.llms.base_llm import LLMCallBlockedError  # noqa: E402
from crewai.utilities.agent_utils import extract_tool_call_info  # noqa: E402
from crewai.utilities.exceptions.context_window_exceeding_exception import (  # noqa: E402
    LLMContextLengthExceededError,
)
from pydantic import BaseModel  # noqa: E402

import tollway  # noqa: E402
from tollway.adapters.crewai import TollwayLLM  # noqa: E402
from tollway.core.cost.pricing import PriceBook  # noqa: E402
from tollway.core.errors import (  # noqa: E402
    BudgetExceededError,
    ConfigError,
    ContextWindowExceededError,
)
from tollway.core.model import Model  # noqa: E402
from tollway.core.stores.open import open_ledger  # noqa: E402
from tollway.core.transport import default_transport  # noqa: E402
from tollway.core.types import Usage  # noqa: E402

pytestmark = pytest.mark.usefixtures("crewai_env", "no_network")

PRICES = PriceBook()
USAGE = Usage(input_tokens=900, output_tokens=40, cache_read_tokens=512, reasoning_tokens=8)
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


class Sum(BaseModel):
    total: int


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


def make_llm(fake: FakeProvider, ledger: Any, **options: Any) -> TollwayLLM:
    return TollwayLLM("openai/gpt-4o-mini", api_base=fake.url, api_key="test-key",
                      ledger=ledger, prices=PRICES, **options)


@contextmanager
def events(*types: type) -> Iterator[list[Any]]:
    """Collect the CrewAI events of ``types`` emitted inside the block."""
    seen: list[Any] = []
    with crewai_event_bus.scoped_handlers():
        for event_type in types:
            crewai_event_bus.on(event_type)(lambda source, event: seen.append(event))
        yield seen
        crewai_event_bus.flush()


def test_a_call_emits_started_and_completed_events_with_usage_under_one_call_id(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger)
    fake.add(openai.text_reply("Paris.", usage=USAGE))

    with events(LLMCallStartedEvent, LLMCallCompletedEvent) as seen:
        answer = llm.call("Capital of France?")

    assert answer == "Paris."
    started, completed = sorted(seen, key=lambda e: e.type != "llm_call_started")
    assert started.call_id == completed.call_id
    assert completed.response == "Paris."
    assert completed.call_type == LLMCallType.LLM_CALL
    assert completed.usage == {
        "prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940,
        "cached_prompt_tokens": 512, "cache_creation_tokens": 0, "reasoning_tokens": 8,
    }
    assert completed.finish_reason == "stop"
    assert llm.get_token_usage_summary().prompt_tokens == 900
    assert fake.requests[0].json["messages"] == [{"role": "user", "content": "Capital of France?"}]


def test_tool_calls_come_back_in_the_shape_crewai_executes(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger)
    fake.add(openai.tool_call_reply([("add", {"a": 2, "b": 3}), ("add", {"a": 4, "b": 5})]))

    with events(LLMCallCompletedEvent) as seen:
        calls = llm.call([{"role": "user", "content": "Add."}], tools=[ADD_TOOL])

    assert [extract_tool_call_info(c) for c in calls] == [
        (openai.call_id("add", 0), "add", '{"a": 2, "b": 3}'),
        (openai.call_id("add", 1), "add", '{"a": 4, "b": 5}'),
    ]
    assert seen[0].call_type == LLMCallType.TOOL_CALL
    assert fake.requests[0].json["tools"][0]["function"]["name"] == "add"


def test_available_functions_are_run_like_crewai_native_providers(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger)
    ran: list[dict[str, int]] = []

    def add(a: int, b: int) -> int:
        ran.append({"a": a, "b": b})
        return a + b

    fake.add(openai.tool_call_reply([("add", {"a": 2, "b": 3})]))
    with events(ToolUsageStartedEvent, ToolUsageFinishedEvent) as seen:
        result = llm.call("Add 2 and 3.", tools=[ADD_TOOL], available_functions={"add": add})

    assert result == "5"
    assert ran == [{"a": 2, "b": 3}]
    assert sorted(e.type for e in seen) == ["tool_usage_finished", "tool_usage_started"]
    assert len(ledger.records()) == 1


def test_a_before_hook_that_blocks_stops_the_call_before_the_provider(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger)

    def block(context: Any) -> bool:
        return False

    register_before_llm_call_hook(block)
    try:
        with pytest.raises(LLMCallBlockedError):
            llm.call("Hello")
    finally:
        unregister_before_llm_call_hook(block)
    assert fake.requests == []
    assert ledger.records() == []


def test_hooks_edit_the_messages_sent_and_the_answer_returned(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger)

    def add_rule(context: Any) -> None:
        context.messages.append({"role": "user", "content": "Answer in capitals."})

    def shout(context: Any) -> str:
        return context.response.upper()

    register_before_llm_call_hook(add_rule)
    register_after_llm_call_hook(shout)
    fake.add(openai.text_reply("paris"))
    try:
        answer = llm.call("Capital of France?")
    finally:
        unregister_before_llm_call_hook(add_rule)
        unregister_after_llm_call_hook(shout)
    assert answer == "PARIS"
    assert fake.requests[0].json["messages"][-1]["content"] == "Answer in capitals."


def test_stop_words_are_sent_and_cut_the_answer(fake: FakeProvider, ledger: Any) -> None:
    llm = make_llm(fake, ledger, stop=["\nObservation:"])
    fake.add(openai.text_reply("Thought: look it up\nObservation: invented"))

    answer = llm.call("Go")

    assert fake.requests[0].json["stop"] == ["\nObservation:"]
    assert answer == "Thought: look it up"
    assert llm.supports_stop_words()


def test_a_model_refusing_stop_is_retried_without_it_and_remembered(
    fake: FakeProvider, ledger: Any, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make_llm(fake, ledger, stop=["\nObservation:"])
    refusal = openai.error_reply(
        400, "Unsupported parameter: 'stop' is not supported with this model.",
        code="unsupported_parameter",
    )
    fake.add(refusal, openai.text_reply("Thought: x\nObservation: y"), openai.text_reply("ok"))

    with caplog.at_level(logging.WARNING, logger="tollway.adapters.crewai"):
        first = llm.call("Go")
    second = llm.call("Again")

    assert (first, second) == ("Thought: x", "ok")
    assert ["stop" in r.json for r in fake.requests] == [True, False, False]
    assert not llm.supports_stop_words()
    assert "rejects stop sequences" in caplog.text
    assert [r.status for r in ledger.records()] == ["BadRequestError", "ok", "ok"]


def test_context_window_comes_from_tollway_price_metadata(fake: FakeProvider, ledger: Any) -> None:
    window = PRICES.model_price("openai", "gpt-4o-mini").context_window
    assert window  # the metadata this test relies on

    assert make_llm(fake, ledger).get_context_window_size() == int(window * 0.85)
    assert make_llm(fake, ledger, context_window=32_000).get_context_window_size() == 27_200
    unknown = TollwayLLM("openai_compatible/house-model", api_base=fake.url, prices=PriceBook())
    with pytest.warns(UserWarning, match="no price known"):
        assert unknown.get_context_window_size() == int(8192 * 0.85)


def test_a_context_window_error_becomes_crewai_context_length_error(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger)
    fake.add(openai.error_reply(
        400, "This model's maximum context length is 128000 tokens.",
        code="context_length_exceeded",
    ))

    with events(LLMCallFailedEvent) as seen, pytest.raises(LLMContextLengthExceededError) as caught:
        llm.call("x" * 100)

    assert isinstance(caught.value.__cause__, ContextWindowExceededError)
    assert len(seen) == 1 and "ContextWindowExceededError" in seen[0].error


def test_a_budget_denial_is_both_a_budget_error_and_a_crewai_hook_abort(
    fake: FakeProvider, ledger: Any
) -> None:
    class DenyAll:
        """A third-party guard that denies every call."""

        def reserve(self, ctx: Any, deployment: Any) -> Any:
            raise BudgetExceededError("project=demo", 1.0, 1.0, 0.0, requested=0.01)

        async def areserve(self, ctx: Any, deployment: Any) -> Any:
            return self.reserve(ctx, deployment)

    llm = make_llm(fake, ledger, guards=[DenyAll()])

    with events(LLMCallFailedEvent) as seen, pytest.raises(BudgetExceededError) as caught:
        llm.call("Hello")

    assert isinstance(caught.value, HookAborted)  # CrewAI stops instead of retrying
    assert caught.value.scope == "project=demo"
    assert "denied" in seen[0].error
    assert fake.requests == []
    assert [r.status for r in ledger.records()] == ["BudgetExceededError"]


def test_response_model_returns_a_validated_instance(fake: FakeProvider, ledger: Any) -> None:
    llm = make_llm(fake, ledger)
    fake.add(openai.text_reply('{"total": 5}'), openai.text_reply("no json here"))

    assert llm.call("Sum 2 and 3", response_model=Sum) == Sum(total=5)
    assert fake.requests[0].json["response_format"]["json_schema"]["name"] == "Sum"
    with pytest.raises(ValueError, match="Sum"):
        llm.call("Again", response_model=Sum)


def test_attribution_defaults_agent_role_and_task_reach_the_ledger(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger, org="acme", project="blog", user="ana", tags={"team": "data"})
    agent = Agent(role="Researcher", goal="g", backstory="b", llm=llm)
    task = Task(name="find-facts", description="Find facts.", expected_output="Facts.")
    fake.add(openai.text_reply("one"), openai.text_reply("two"))

    llm.call("Hello", from_agent=agent, from_task=task)
    with tollway.attribute(project="override"):
        llm.call("Hello again", from_agent=agent, from_task=task)

    first, second = ledger.records()
    assert (first.org, first.project, first.user, first.tags) == (
        "acme", "blog", "ana", {"team": "data"},
    )
    assert (first.framework, first.agent, first.attribution["task"]) == (
        "crewai", "Researcher", "find-facts",
    )
    assert (second.project, second.agent) == ("override", "Researcher")


def test_generation_settings_and_extra_options_reach_the_provider(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger, temperature=0.2, max_tokens=64, seed=7,
                   reasoning_effort="low", logprobs=True)
    fake.add(openai.text_reply("ok"))

    llm.call("Hi")

    body = fake.requests[0].json
    assert (body["temperature"], body["max_completion_tokens"], body["seed"]) == (0.2, 64, 7)
    assert body["reasoning_effort"] == "low"
    assert body["logprobs"] is True


def test_an_existing_tollway_model_can_be_wrapped(fake: FakeProvider, ledger: Any) -> None:
    model = Model("openai/gpt-4o-mini", api_base=fake.url, api_key="k", ledger=ledger,
                  prices=PRICES)
    llm = TollwayLLM(model)
    fake.add(openai.text_reply("ok"))

    assert llm.call("Hi") == "ok"
    assert llm.client is model
    assert (llm.model, llm.provider) == ("openai/gpt-4o-mini", "openai")
    assert len(ledger.records()) == 1
    with pytest.raises(ConfigError, match=r"ledger, .*pass them to tollway\.Model"):
        TollwayLLM(model, ledger=ledger, guards=[object()])


@pytest.mark.usefixtures("close_async_clients")
async def test_async_streaming_call_relays_chunks_and_returns_the_full_text(
    fake: FakeProvider, ledger: Any
) -> None:
    llm = make_llm(fake, ledger, stream=True)
    fake.add(openai.text_stream(["Par", "is", "."]))

    with events(LLMStreamChunkEvent, LLMCallCompletedEvent) as seen:
        answer = await llm.acall("Capital of France?")

    assert answer == "Paris."
    chunks = [e.chunk for e in seen if e.type == "llm_stream_chunk"]
    assert chunks == ["Par", "is", "."]
    completed = next(e for e in seen if e.type == "llm_call_completed")
    assert completed.usage["prompt_tokens"] == ledger.records()[0].usage.input_tokens
    assert ledger.records()[0].stream is True


def test_streamed_thinking_is_relayed_as_thinking_chunks(fake: FakeProvider, ledger: Any) -> None:
    anthropic = fake_dialect("anthropic")
    llm = TollwayLLM(anthropic.target, api_base=fake.url, api_key="k", ledger=ledger,
                     prices=PRICES, stream=True)
    fake.add(anthropic.replies.text_stream(["4"], thinking=["2+2 ", "is 4"]))

    with events(LLMThinkingChunkEvent, LLMStreamChunkEvent) as seen:
        answer = llm.call("2+2?")

    assert answer == "4"
    thinking = [e.chunk for e in seen if e.type == "llm_thinking_chunk"]
    assert thinking == ["2+2 ", "is 4"]
    assert json.dumps([e.chunk for e in seen if e.type == "llm_stream_chunk"]) == '["4"]'


def test_an_alias_from_tollway_config_is_routed_and_recorded_with_its_alias(
    fake: FakeProvider, ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "test-key")
    config = {"models": {"writing": [{"model": "openai/gpt-4o-mini", "api_base": fake.url,
                                      "api_key": "env:FAKE_PROVIDER_KEY"}]}}
    llm = TollwayLLM("writing", config=config, ledger=ledger, prices=PRICES)
    fake.add(openai.text_reply("ok"))

    assert llm.call("Hi") == "ok"
    [row] = ledger.records()
    assert (row.alias, row.provider, row.model) == ("writing", "openai", "gpt-4o-mini")
    assert (llm.model, llm.provider) == ("writing", "openai")
    window = PRICES.model_price("openai", "gpt-4o-mini").context_window
    assert llm.get_context_window_size() == int(window * 0.85)
