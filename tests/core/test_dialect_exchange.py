"""The same agent-style exchange (user -> tool call -> tool result -> answer) through
``Model.complete`` and ``Model.astream`` in every dialect, against the loopback fake
provider; and a conversation started on one provider continued on another."""

from __future__ import annotations

from types import ModuleType

import pytest

import tollway
from tests.fakes import (
    replies_anthropic,
    replies_gemini,
    replies_openai,
    replies_openai_responses,
)
from tests.fakes.server import FakeProvider
from tollway.core.types import Message, StreamEnd, Thinking, ToolCallDelta, Usage

DIALECTS: dict[str, tuple[str, ModuleType]] = {
    "openai": ("openai/gpt-4o-mini", replies_openai),
    "anthropic": ("anthropic/claude-sonnet-4-5", replies_anthropic),
    "gemini": ("gemini/gemini-2.5-flash", replies_gemini),
    "openai_responses": ("openai/gpt-5-mini", replies_openai_responses),
}
OPTIONS: dict[str, dict[str, str]] = {"openai_responses": {"api": "responses"}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _model(name: str, fake: FakeProvider) -> tollway.Model:
    target, _ = DIALECTS[name]
    return tollway.Model(target, api_key="test-key-123456", api_base=fake.url, ledger=False,
                         config=False, **OPTIONS.get(name, {}))


def _tool_result_in(sent: dict, name: str) -> str:
    """Find the tool result text the next request carried, in the dialect's own shape."""
    flat = repr(sent)
    assert "Sunny, 21C" in flat, f"{name}: the tool result was not sent back"
    return flat


@pytest.mark.parametrize("name", list(DIALECTS))
def test_tool_exchange_with_complete(name: str, fake: FakeProvider) -> None:
    _, replies = DIALECTS[name]
    usage = Usage(input_tokens=300, output_tokens=20)
    fake.add(replies.tool_call_reply([("get_weather", {"city": "Oslo"})], usage=usage))
    fake.add(replies.text_reply("It is sunny in Oslo.", usage=usage))
    model = _model(name, fake)
    history: list = [Message.user("Weather in Oslo?")]
    first = model.complete(history, tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Oslo"})
    history += [first.to_message(), Message.tool(call.id, "Sunny, 21C", name=call.name)]
    second = model.complete(history, tools=[WEATHER])
    assert second.text == "It is sunny in Oslo."
    assert second.finish_reason == "stop"
    assert second.usage.input_tokens == 300 and second.usage.output_tokens == 20
    _tool_result_in(fake.requests[1].json, name)
    assert "get_weather" in repr(fake.requests[0].json)


@pytest.mark.parametrize("name", list(DIALECTS))
async def test_tool_exchange_with_astream(name: str, fake: FakeProvider) -> None:
    _, replies = DIALECTS[name]
    fake.add(replies.tool_call_stream([("get_weather", {"city": "Oslo"})]))
    fake.add(replies.text_stream(["It is ", "sunny."]))
    model = _model(name, fake)
    history: list = [Message.user("Weather in Oslo?")]
    async with model.astream(history, tools=[WEATHER]) as stream:
        events = [event async for event in stream]
    assert any(isinstance(e, ToolCallDelta) for e in events)
    first = events[-1].response if isinstance(events[-1], StreamEnd) else None
    assert first is not None
    (call,) = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Oslo"})
    history += [first.to_message(), Message.tool(call.id, "Sunny, 21C", name=call.name)]
    async with model.astream(history, tools=[WEATHER]) as stream:
        second = await stream.collect()
    assert second.text == "It is sunny."
    assert second.usage.output_tokens > 0
    _tool_result_in(fake.requests[1].json, name)


@pytest.mark.parametrize(
    ("source", "target"), [(a, b) for a in DIALECTS for b in DIALECTS if a != b]
)
def test_history_from_one_provider_continues_on_another(source: str, target: str) -> None:
    """Tool calls, results and thinking made by ``source`` are sent to ``target``:
    foreign signatures are dropped, ids and names survive."""
    with FakeProvider() as first_server, FakeProvider() as second_server:
        _, src_replies = DIALECTS[source]
        _, dst_replies = DIALECTS[target]
        first_server.add(src_replies.tool_call_reply([("get_weather", {"city": "Oslo"})]))
        second_server.add(dst_replies.text_reply("Sunny."))
        first = _model(source, first_server).complete("Weather in Oslo?", tools=[WEATHER])
        (call,) = first.tool_calls
        foreign = Thinking("I should check.", signature="sig-from-elsewhere", provider="elsewhere")
        assistant = first.to_message()
        assistant.parts.insert(0, foreign)
        history = [
            Message.user("Weather in Oslo?"),
            assistant,
            Message.tool(call.id, "Sunny, 21C"),
        ]
        answer = _model(target, second_server).complete(history, tools=[WEATHER])
        assert answer.text == "Sunny."
        sent = repr(second_server.requests[0].json)
        assert "sig-from-elsewhere" not in sent
        assert "Sunny, 21C" in sent and "get_weather" in sent


@pytest.mark.parametrize("target", ["anthropic", "gemini", "openai"])
def test_responses_reasoning_is_dropped_on_other_providers_and_kept_coming_back(
    target: str,
) -> None:
    """A Responses turn with an encrypted reasoning item continues on ``target`` (which
    must not receive the blob), then back on Responses, which gets it again."""
    with FakeProvider() as responses_server, FakeProvider() as other_server:
        responses_server.add(replies_openai_responses.tool_call_reply(
            [("get_weather", {"city": "Oslo"})], reasoning="Look it up."))
        other_server.add(DIALECTS[target][1].text_reply("Sunny."))
        responses_server.add(replies_openai_responses.text_reply("Still sunny."))
        responses = _model("openai_responses", responses_server)
        first = responses.complete("Weather in Oslo?", tools=[WEATHER])
        (call,) = first.tool_calls
        history = [Message.user("Weather in Oslo?"), first.to_message(),
                   Message.tool(call.id, "Sunny, 21C")]
        blob = replies_openai_responses.encrypted(
            "calls:" + repr([("get_weather", {"city": "Oslo"})]))
        assert _model(target, other_server).complete(history, tools=[WEATHER]).text == "Sunny."
        sent = repr(other_server.requests[0].json)
        assert blob not in sent and "rs_" not in sent
        assert "Sunny, 21C" in sent and "get_weather" in sent
        history.append(Message.assistant("Sunny."))
        history.append(Message.user("And now?"))
        assert responses.complete(history, tools=[WEATHER]).text == "Still sunny."
        back = responses_server.requests[1].json["input"]
        assert [i.get("type", i.get("role")) for i in back] == [
            "user", "reasoning", "function_call", "function_call_output", "assistant", "user"]
        assert back[1]["encrypted_content"] == blob
