"""TollwayModel's contract with smolagents, one call at a time, against the loopback fake:
the deltas of a stream, usage sent once, native tools with ``tool_choice`` required,
structured output, stop sequences (and models that refuse them), request defaults."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.adapters._fake_dialects import fake_dialect
from tests.fakes import replies_openai as openai
from tests.fakes.server import FakeProvider

pytest.importorskip("smolagents")

from smolagents import tool
from smolagents.models import (
    REMOVE_PARAMETER,
    ChatMessage,
    MessageRole,
    agglomerate_stream_deltas,
)

from tollway.adapters.smolagents import TollwayModel, TollwayTokenUsage, response_of
from tollway.adapters.smolagents._stop import StopCutter
from tollway.core.cost.pricing import PriceBook
from tollway.core.errors import ConfigError
from tollway.core.model import Model
from tollway.core.stores.open import open_ledger
from tollway.core.types import Usage

PRICES = PriceBook()
USAGE = Usage(input_tokens=1_500, output_tokens=60, cache_read_tokens=1_024,
              cache_write_tokens=0, reasoning_tokens=20)
SYSTEM = ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": "Be brief."}])
USER = ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "Weather in Paris?"}])


@tool
def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city name.
    """
    return "sunny"


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    book = open_ledger(tmp_path / "ledger.db")
    yield book
    book.close()


def make_model(fake: FakeProvider, ledger: Any, target: str = "openai/gpt-4o-mini",
               **options: Any) -> TollwayModel:
    return TollwayModel(target, api_base=fake.url, api_key="test-key", ledger=ledger,
                        prices=PRICES, **options)


def test_generate_returns_the_answer_with_exact_usage_and_the_response(
    fake: FakeProvider, ledger: Any
) -> None:
    fake.add(openai.text_reply("Sunny.", usage=USAGE))

    message = make_model(fake, ledger).generate([SYSTEM, USER])

    assert (message.role, message.content, message.tool_calls) == (
        MessageRole.ASSISTANT, "Sunny.", None,
    )
    assert isinstance(message.token_usage, TollwayTokenUsage)
    assert message.token_usage.dict() == {
        "input_tokens": 1_500, "output_tokens": 60, "total_tokens": 1_560,
        "cache_read_tokens": 1_024, "cache_write_tokens": 0, "reasoning_tokens": 20,
    }
    response = response_of(message)
    assert response is not None and response.cost_nanos == ledger.records()[0].cost_nanos
    sent = fake.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert "Be brief." in json.dumps(sent[0]) and "Weather in Paris?" in json.dumps(sent[1])


def test_tools_to_call_from_are_native_tools_with_tool_choice_required(
    fake: FakeProvider, ledger: Any
) -> None:
    fake.add(openai.tool_call_reply([("weather", {"city": "Paris"})]))

    message = make_model(fake, ledger).generate([USER], tools_to_call_from=[weather])

    body = fake.requests[0].json
    assert body["tool_choice"] == "required"
    assert body["tools"][0]["function"]["name"] == "weather"
    assert body["tools"][0]["function"]["parameters"]["required"] == ["city"]
    [call] = message.tool_calls or []
    assert (call.id, call.function.name) == (openai.call_id("weather", 0), "weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_generate_stream_yields_text_tool_call_deltas_and_usage_once(
    fake: FakeProvider, ledger: Any
) -> None:
    fake.add(openai.tool_call_stream([("weather", {"city": "Paris"})], usage=USAGE))

    deltas = list(make_model(fake, ledger).generate_stream([USER], tools_to_call_from=[weather]))

    tool_deltas = [d.tool_calls[0] for d in deltas if d.tool_calls]
    assert (tool_deltas[0].index, tool_deltas[0].id, tool_deltas[0].function.name) == (
        0, openai.call_id("weather", 0), "weather",
    )
    assert "".join(d.function.arguments for d in tool_deltas) == json.dumps({"city": "Paris"})
    with_usage = [d for d in deltas if d.token_usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is deltas[-1]
    message = agglomerate_stream_deltas(deltas)
    assert (message.token_usage.input_tokens, message.token_usage.output_tokens) == (1_500, 60)
    record = ledger.records()[0]
    assert (record.usage.input_tokens, record.usage.output_tokens, record.stream) == (
        1_500, 60, True,
    )
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}


def test_a_stream_gives_the_same_message_as_generate_in_every_dialect(
    fake: FakeProvider, ledger: Any
) -> None:
    for name in ("openai", "anthropic", "gemini"):
        dialect = fake_dialect(name)
        fake.add(dialect.text("It is sunny in Paris."),
                 dialect.text_stream("It is ", "sunny ", "in Paris."))
        model = make_model(fake, ledger, target=dialect.target)

        plain = model.generate([USER])
        streamed = agglomerate_stream_deltas(list(model.generate_stream([USER])))

        assert streamed.content == plain.content == "It is sunny in Paris.", name
        assert streamed.token_usage.input_tokens == plain.token_usage.input_tokens, name
        assert streamed.token_usage.output_tokens == plain.token_usage.output_tokens, name


def test_response_format_is_sent_as_structured_output(fake: FakeProvider, ledger: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    fake.add(openai.text_reply('{"city": "Paris"}'))

    message = make_model(fake, ledger).generate(
        [USER], response_format={"type": "json_schema",
                                 "json_schema": {"name": "City", "schema": schema, "strict": True}},
    )

    sent = fake.requests[0].json["response_format"]
    assert (sent["type"], sent["json_schema"]["name"]) == ("json_schema", "City")
    assert json.loads(message.content or "") == {"city": "Paris"}


def test_stop_sequences_are_sent_to_models_that_accept_them(
    fake: FakeProvider, ledger: Any
) -> None:
    fake.add(openai.text_reply("Thought: done"))

    make_model(fake, ledger).generate([USER], stop_sequences=["Observation:"])

    assert fake.requests[0].json["stop"] == ["Observation:"]


def test_a_model_refusing_stop_is_retried_without_it_and_cut_locally_from_then_on(
    fake: FakeProvider, ledger: Any, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = openai.error_reply(
        400, "Unsupported parameter: 'stop' is not supported with this model.",
        code="unsupported_parameter",
    )
    fake.add(refusal, openai.text_reply("Code here\nObservation: invented"),
             openai.text_stream(["Second\nObs", "ervation: invented"]))
    model = make_model(fake, ledger, target="openai/o3")

    with caplog.at_level(logging.WARNING, logger="tollway.adapters.smolagents"):
        first = model.generate([USER], stop_sequences=["Observation:"])
    later = make_model(fake, ledger, target="openai/o3")  # a new instance knows too
    second = agglomerate_stream_deltas(
        list(later.generate_stream([USER], stop_sequences=["Observation:"]))
    )

    assert first.content == "Code here\n"
    assert second.content == "Second\n"
    assert ["stop" in r.json for r in fake.requests] == [True, False, False]
    assert not later.supports_stop_parameter
    assert "openai/o3 refuses stop sequences" in caplog.text
    assert [r.status for r in ledger.records()] == ["BadRequestError", "ok", "ok"]


def test_supports_stop_false_never_sends_stop_and_cuts_the_text(
    fake: FakeProvider, ledger: Any
) -> None:
    fake.add(openai.text_reply("Answer</code> trailing"))

    message = make_model(fake, ledger, supports_stop=False).generate(
        [USER], stop_sequences=["</code>"]
    )

    assert "stop" not in fake.requests[0].json
    assert message.content == "Answer"


def test_model_defaults_win_over_call_kwargs_and_unknown_ones_pass_through(
    fake: FakeProvider, ledger: Any
) -> None:
    fake.add(openai.text_reply("ok"))
    model = make_model(fake, ledger, temperature=0.1, max_tokens=99, logprobs=True,
                       seed=REMOVE_PARAMETER)

    model.generate([USER], temperature=0.9, seed=3, top_p=0.5)

    body = fake.requests[0].json
    assert (body["temperature"], body["max_completion_tokens"], body["top_p"]) == (0.1, 99, 0.5)
    assert body["logprobs"] is True
    assert "seed" not in body


def test_attribution_defaults_and_an_explicit_agent_name_reach_the_ledger(
    fake: FakeProvider, ledger: Any
) -> None:
    fake.add(openai.text_reply("a"), openai.text_reply("b"))

    make_model(fake, ledger, agent="scout", org="acme", project="maps").generate([USER])
    make_model(fake, ledger).generate([USER])

    named, anonymous = ledger.records()
    assert (named.framework, named.agent, named.org, named.project) == (
        "smolagents", "scout", "acme", "maps",
    )
    assert (anonymous.framework, anonymous.agent) == ("smolagents", None)


def test_stop_cutter_catches_a_stop_sequence_split_across_chunks() -> None:
    cutter = StopCutter(["Observation:", "</code>"])

    pieces = [cutter.feed(p) for p in ("x = 1\n</co", "de>\nObservation: 2", "more")]

    assert "".join(pieces) + cutter.flush() == "x = 1\n"


def test_an_alias_from_tollway_config_is_routed_and_recorded_with_its_alias(
    fake: FakeProvider, ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "test-key")
    config = {"models": {"fast": [{"model": "openai/gpt-4o-mini", "api_base": fake.url,
                                   "api_key": "env:FAKE_PROVIDER_KEY"}]}}
    fake.add(openai.text_reply("ok"))

    model = TollwayModel("fast", config=config, ledger=ledger, prices=PRICES)
    message = model.generate([USER])

    assert (model.model_id, message.content) == ("fast", "ok")
    [row] = ledger.records()
    assert (row.alias, row.provider, row.model) == ("fast", "openai", "gpt-4o-mini")


def test_an_existing_tollway_model_can_be_wrapped_but_not_reconfigured(
    fake: FakeProvider, ledger: Any
) -> None:
    client = Model("openai/gpt-4o-mini", api_base=fake.url, api_key="k", ledger=ledger,
                   prices=PRICES)
    fake.add(openai.text_reply("ok"))

    wrapped = TollwayModel(client)

    assert (wrapped.client, wrapped.model_id) == (client, "openai/gpt-4o-mini")
    assert wrapped.generate([USER]).content == "ok"
    with pytest.raises(ConfigError, match="ledger would be ignored"):
        TollwayModel(client, ledger=ledger)
