"""The default local model end to end through ``tollway.Model`` (slow: real inference).

Qwen2.5-Coder-0.5B runs in-process; answers are kept short (``max_tokens``) and greedy
(``temperature=0``) so the module finishes in well under a minute on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

import tollway
from tollway.core.errors import ContextWindowExceededError
from tollway.core.types import FinishEvent, StreamEnd, TextDelta, ToolCallDelta
from tollway.local.engine import Engine, engine_for
from tollway.local.weights import ensure_weights

pytestmark = pytest.mark.slow
jsonschema = pytest.importorskip("jsonschema")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in an IANA timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
        },
    },
}
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, CLOCK)}


class Person(BaseModel):
    name: str
    born: int


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The default model, assembled/verified and loaded once for the module."""
    return engine_for(ensure_weights())


@pytest.fixture(scope="module")
def model(engine: Engine) -> tollway.Model:
    return tollway.Model("local/qwen2.5-coder-0.5b", ledger=False, config=False)


def _assert_valid_call(call: Any) -> None:
    assert call.name in SCHEMAS
    jsonschema.validate(call.parse_arguments(), SCHEMAS[call.name])
    assert call.id.startswith("call_")


def test_a_real_completion_has_text_usage_and_zero_cost(model: tollway.Model) -> None:
    response = model.complete("Say hello in five words.", max_tokens=16, temperature=0)
    assert response.text.strip()
    assert response.provider == "local"
    assert response.usage.input_tokens > 0
    assert 0 < response.usage.output_tokens <= 16
    assert response.finish_reason in ("stop", "length")
    assert response.cost == 0


def test_required_tool_choice_forces_a_call_whose_arguments_match_the_tool_schema(
    model: tollway.Model,
) -> None:
    response = model.complete(
        "What's the weather like in Paris?", tools=[WEATHER, CLOCK], tool_choice="required",
        max_tokens=40, temperature=0,
    )
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    [call] = response.tool_calls
    _assert_valid_call(call)
    assert call.name == "get_weather"


def test_a_named_tool_choice_calls_that_tool_even_when_another_fits_better(
    model: tollway.Model,
) -> None:
    response = model.complete(
        "What's the weather like in Paris?", tools=[WEATHER, CLOCK], tool_choice="get_time",
        max_tokens=40, temperature=0,
    )
    [call] = response.tool_calls
    assert call.name == "get_time"
    _assert_valid_call(call)


def test_auto_tool_choice_reads_the_call_the_model_writes_as_text(model: tollway.Model) -> None:
    response = model.complete(
        "What time is it in Tokyo right now?", tools=[WEATHER, CLOCK], max_tokens=60, temperature=0
    )
    assert response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    assert call.name == "get_time"
    _assert_valid_call(call)


HISTORY = [
    {"role": "user", "content": "What's the weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 degrees celsius"},
]


def test_a_tool_result_in_the_history_leads_to_a_text_answer_not_the_same_call_again(
    model: tollway.Model,
) -> None:
    # Left alone, this 0.5B model asks for get_weather(Oslo) again; the run answers from
    # the result instead, so a tool loop ends.
    response = model.complete(HISTORY, tools=[WEATHER], max_tokens=60, temperature=0)
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert "21" in response.text


def test_streaming_the_answer_to_a_tool_result_shows_only_the_answer(model: tollway.Model) -> None:
    with model.stream(HISTORY, tools=[WEATHER], max_tokens=60, temperature=0) as stream:
        events = list(stream)
    assert not [e for e in events if isinstance(e, ToolCallDelta)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "21" in text and "{" not in text
    assert stream.response is not None and stream.response.text == text


def test_json_schema_output_validates_against_the_pydantic_model(model: tollway.Model) -> None:
    response = model.complete(
        "Ada Lovelace was born in 1815. Extract the person as JSON.",
        response_format=Person, max_tokens=40, temperature=0,
    )
    person = response.parsed
    assert isinstance(person, Person)
    assert person.name.strip()


def test_json_object_output_is_a_json_object(model: tollway.Model) -> None:
    response = model.complete(
        "Describe a cat as a JSON object with keys name and color.",
        response_format={"type": "json_object"}, max_tokens=40, temperature=0,
    )
    assert isinstance(json.loads(response.text), dict)


def test_with_tools_and_a_response_format_the_model_either_calls_or_answers_in_format(
    model: tollway.Model,
) -> None:
    answer = model.complete(
        "Ada Lovelace was born in 1815. Extract the person as JSON.",
        tools=[WEATHER], response_format=Person, max_tokens=40, temperature=0,
    )
    assert answer.tool_calls == [] and isinstance(answer.parsed, Person)
    call = model.complete(
        "What's the weather in Paris?", tools=[WEATHER], response_format=Person,
        max_tokens=40, temperature=0,
    )
    [made] = call.tool_calls
    _assert_valid_call(made)


def test_streaming_yields_text_deltas_and_a_response_with_usage(model: tollway.Model) -> None:
    with model.stream("Count from 1 to 5, separated by commas.", max_tokens=20, temperature=0) as stream:
        events = list(stream)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.response.text == "".join(deltas)
    assert end.response.usage.input_tokens > 0 and end.response.usage.output_tokens > 0
    assert end.response.cost == 0
    assert any(isinstance(e, FinishEvent) for e in events)


def test_streaming_a_forced_tool_call_gives_tool_call_deltas(model: tollway.Model) -> None:
    with model.stream(
        "What's the weather in Rome?", tools=[WEATHER], tool_choice="required",
        max_tokens=40, temperature=0,
    ) as stream:
        events = list(stream)
    assert [e for e in events if isinstance(e, ToolCallDelta)]
    response = stream.response
    assert response is not None and response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    _assert_valid_call(call)


def test_stop_sequences_end_the_answer_before_them(model: tollway.Model) -> None:
    response = model.complete(
        "Count from 1 to 10, separated by commas.", stop=["5"], max_tokens=40, temperature=0
    )
    assert "4" in response.text
    assert "5" not in response.text
    assert response.finish_reason == "stop"


def test_max_tokens_ends_with_finish_reason_length(model: tollway.Model) -> None:
    response = model.complete("Write a long poem about the sea.", max_tokens=5, temperature=0)
    assert response.finish_reason == "length"
    assert response.usage.output_tokens == 5


def test_the_same_seed_gives_the_same_sampled_answer(model: tollway.Model) -> None:
    def ask(seed: int) -> str:
        return model.complete("Invent a name for a cat.", max_tokens=8, temperature=1.2, seed=seed).text

    assert ask(42) == ask(42)


def test_a_prompt_longer_than_the_context_window_is_a_context_window_error(
    model: tollway.Model,
) -> None:
    with pytest.raises(ContextWindowExceededError, match="maximum context length"):
        model.complete("word " * 5000, max_tokens=5)


def test_closing_a_stream_early_frees_the_model_promptly(
    model: tollway.Model, engine: Engine
) -> None:
    with model.stream("Write a long story about a lighthouse.", max_tokens=400, temperature=0) as stream:
        seen = 0
        for event in stream:
            if isinstance(event, TextDelta):
                seen += 1
                if seen == 2:
                    break
    started = time.monotonic()
    assert engine.lock.acquire(timeout=5)
    engine.lock.release()
    assert time.monotonic() - started < 5


async def test_acomplete_and_astream_answer_without_blocking_the_event_loop(
    model: tollway.Model,
) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        response = await model.acomplete("Name a color.", max_tokens=8, temperature=0)
        async with model.astream("Name a fruit.", max_tokens=8, temperature=0) as stream:
            deltas = [e async for e in stream if isinstance(e, TextDelta)]
    finally:
        done.set()
        await task
    assert response.text.strip() and response.usage.output_tokens > 0
    assert deltas and stream.response is not None
    assert stream.response.usage.output_tokens > 0
    assert ticks > 10  # the loop kept running while the model generated


async def test_cancelling_acomplete_stops_generation(model: tollway.Model, engine: Engine) -> None:
    task = asyncio.create_task(
        model.acomplete("Write a long story about a lighthouse.", max_tokens=400, temperature=0)
    )
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    acquired = await asyncio.to_thread(engine.lock.acquire, True, 5)
    assert acquired
    engine.lock.release()


def test_concurrent_calls_on_one_model_are_serialised_not_corrupted(model: tollway.Model) -> None:
    answers: list[str] = []

    def call() -> None:
        answers.append(model.complete("Say the word 'ok'.", max_tokens=4, temperature=0).text)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 3 and len(set(answers)) == 1
