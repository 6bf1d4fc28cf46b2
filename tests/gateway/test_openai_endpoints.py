"""The OpenAI-compatible endpoints, driven by the real openai SDK (sync and async) through
a real uvicorn gateway to a fake OpenAI-dialect provider."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.clients import DRIVERS, openai_call
from tests.gateway.conftest import UPSTREAM_KEY
from tollway.core.types import Usage

USAGE = Usage(input_tokens=1_200, output_tokens=40, cache_read_tokens=1_024)


@pytest.mark.parametrize("driver", DRIVERS)
def test_chat_completion_is_served_by_the_alias_and_recorded_for_the_key(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(org="acme", project="search", models=["fast"])
    fake.add(oai.text_reply("Bonjour!", usage=USAGE))

    reply = openai_call(driver, gw.url, secret, "chat.completions.create", model="fast",
                        messages=[{"role": "user", "content": "Say hello in French"}])

    assert reply.choices[0].message.content == "Bonjour!"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 1_200
    assert reply.usage.prompt_tokens_details.cached_tokens == 1_024
    upstream = fake.requests[-1]
    assert upstream.path.endswith("/chat/completions")
    assert upstream.json["model"] == "gpt-4o-mini"
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # never the virtual key
    assert secret not in upstream.body.decode()
    [row] = gw.ledger_rows()
    assert (row["key"], row["org"], row["project"], row["alias"], row["status"]) == (
        key.id, "acme", "search", "fast", "ok")
    assert row["cost_nanos"] > 0


@pytest.mark.parametrize("driver", DRIVERS)
def test_stream_sends_the_text_and_a_usage_chunk_when_asked(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(models=["fast"])
    fake.add(oai.text_stream(["Hel", "lo ", "there"], usage=USAGE))

    chunks = openai_call(driver, gw.url, secret, "chat.completions.create", model="fast",
                         messages=[{"role": "user", "content": "hi"}], stream=True,
                         stream_options={"include_usage": True})

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 1_200
    assert chunks[-1].usage.completion_tokens == 40
    [row] = gw.ledger_rows()
    assert (row["key"], row["status"], row["stream"]) == (key.id, "ok", 1)


@pytest.mark.parametrize("driver", DRIVERS)
def test_stream_without_include_usage_sends_no_usage_chunk(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.text_stream(["a", "b"], usage=USAGE))
    chunks = openai_call(driver, gw.url, secret, "chat.completions.create", model="fast",
                         messages=[{"role": "user", "content": "hi"}], stream=True)
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ab"


@pytest.mark.parametrize("driver", DRIVERS)
def test_tool_calls_round_trip(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.tool_call_reply([("get_weather", {"city": "Paris"})]))
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]

    reply = openai_call(driver, gw.url, secret, "chat.completions.create", model="fast",
                        messages=[{"role": "user", "content": "Weather in Paris?"}],
                        tools=tools, tool_choice="auto")

    [call] = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert reply.choices[0].finish_reason == "tool_calls"
    sent = fake.requests[-1].json
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto"


@pytest.mark.parametrize("driver", DRIVERS)
def test_streamed_tool_calls_reach_the_client_whole(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.tool_call_stream([("lookup", {"q": "tollway"}), ("add", {"a": 1, "b": 2})]))
    chunks = openai_call(driver, gw.url, secret, "chat.completions.create", model="fast",
                         messages=[{"role": "user", "content": "go"}], stream=True,
                         tools=[{"type": "function", "function": {"name": "lookup"}},
                                {"type": "function", "function": {"name": "add"}}])
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"name": "", "args": ""})
            entry["name"] += delta.function.name or ""
            entry["args"] += delta.function.arguments or ""
    assert [(c["name"], json.loads(c["args"])) for _, c in sorted(calls.items())] == [
        ("lookup", {"q": "tollway"}), ("add", {"a": 1, "b": 2})]


class City(BaseModel):
    name: str
    population: int


@pytest.mark.parametrize("driver", DRIVERS)
def test_structured_output_is_parsed_by_the_sdk(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.text_reply(json.dumps({"name": "Paris", "population": 2_100_000})))
    reply = openai_call(driver, gw.url, secret, "chat.completions.parse", model="fast",
                        messages=[{"role": "user", "content": "Biggest French city?"}],
                        response_format=City)
    assert reply.choices[0].message.parsed == City(name="Paris", population=2_100_000)
    sent = fake.requests[-1].json["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["properties"]["population"]["type"] == "integer"


@pytest.mark.parametrize("driver", DRIVERS)
def test_reasoning_effort_and_extra_body_reach_the_provider(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.text_reply("ok"))
    openai_call(driver, gw.url, secret, "chat.completions.create", model="fast",
                messages=[{"role": "user", "content": "think"}], reasoning_effort="low",
                extra_body={"prompt_cache_key": "tenant-7", "service_tier": "flex"})
    sent = fake.requests[-1].json
    assert sent["reasoning_effort"] == "low"
    assert sent["prompt_cache_key"] == "tenant-7"
    assert sent["service_tier"] == "flex"


@pytest.mark.parametrize("driver", DRIVERS)
def test_models_lists_only_what_the_key_may_use(driver: str, gateway_server) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["fast", "openai/gpt-4.1-nano"])
    listed = openai_call(driver, gw.url, secret, "models.list")
    assert [m.id for m in listed.data] == ["fast", "openai/gpt-4.1-nano"]
    assert openai_call(driver, gw.url, secret, "models.retrieve", model="fast").id == "fast"
    with pytest.raises(openai.NotFoundError):
        openai_call(driver, gw.url, secret, "models.retrieve", model="claude")
    everything, _ = gw.create_key()
    assert [m.id for m in openai_call(driver, gw.url, everything, "models.list").data] == [
        "fast", "claude", "gem"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_legacy_completions_answer_a_prompt(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.text_reply(" world", usage=USAGE))
    reply = openai_call(driver, gw.url, secret, "completions.create", model="fast",
                        prompt="hello", max_tokens=5)
    assert reply.choices[0].text == " world"
    assert reply.usage.prompt_tokens == 1_200
    assert fake.requests[-1].json["messages"] == [{"role": "user", "content": "hello"}]
    assert fake.requests[-1].json["max_completion_tokens"] == 5
