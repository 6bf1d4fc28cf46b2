"""The Anthropic-compatible endpoints with the real anthropic SDK (sync and async), and the
cross-dialect paths: Anthropic client -> OpenAI-dialect model, OpenAI client -> Gemini
model, Anthropic client -> Anthropic model (thinking signatures kept)."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from tests.fakes import replies_anthropic as ant
from tests.fakes import replies_gemini as gem
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.clients import DRIVERS, anthropic_call, anthropic_stream_message, openai_call
from tollway.core.types import Usage

USAGE = Usage(input_tokens=1_200, output_tokens=40, cache_read_tokens=1_024)
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


@pytest.mark.parametrize("driver", DRIVERS)
def test_anthropic_client_reaches_an_openai_dialect_model(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(org="acme", models=["fast"])
    fake.add(oai.text_reply("Hallo!", usage=USAGE))

    message = anthropic_call(driver, gw.url, secret, "messages.create", model="fast", max_tokens=100,
                             system="Answer in German.",
                             messages=[{"role": "user", "content": "Say hello"}])

    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hallo!"
    assert message.stop_reason == "end_turn"
    # Anthropic's meaning: input_tokens without the cache reads
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (176, 1_024)
    assert message.usage.output_tokens == 40
    sent = fake.requests[-1].json
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [{"role": "system", "content": "Answer in German."},
                                {"role": "user", "content": "Say hello"}]
    assert sent["max_completion_tokens"] == 100
    [row] = gw.ledger_rows()
    assert (row["key"], row["org"], row["provider"]) == (key.id, "acme", "openai")


@pytest.mark.parametrize("driver", DRIVERS)
def test_anthropic_stream_is_accumulated_by_the_sdk(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.text_stream(["Guten ", "Tag"], usage=USAGE))
    final, texts = anthropic_stream_message(driver, gw.url, secret, model="fast", max_tokens=50,
                                            messages=[{"role": "user", "content": "hi"}])
    assert texts == ["Guten ", "Tag"]
    assert final.content[0].text == "Guten Tag"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 40
    assert final.usage.input_tokens == 176


@pytest.mark.parametrize("driver", DRIVERS)
def test_anthropic_tools_round_trip_through_an_openai_model(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.tool_call_reply([("get_weather", {"city": "Paris"})]), oai.text_reply("Sunny."))
    first = anthropic_call(driver, gw.url, secret, "messages.create", model="fast", max_tokens=100,
                           tools=[WEATHER], messages=[{"role": "user", "content": "Paris?"}])
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert (use.name, use.input, first.stop_reason) == ("get_weather", {"city": "Paris"}, "tool_use")
    assert fake.requests[-1].json["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]

    second = anthropic_call(driver, gw.url, secret, "messages.create", model="fast", max_tokens=100,
                            tools=[WEATHER], messages=[
                                {"role": "user", "content": "Paris?"},
                                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                                {"role": "user", "content": [{"type": "tool_result",
                                                              "tool_use_id": use.id,
                                                              "content": "22C, sunny"}]}])
    assert second.content[0].text == "Sunny."
    sent = fake.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": sent[1]["tool_calls"][0]["id"],
                       "content": "22C, sunny"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_anthropic_streamed_tool_call(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(oai.tool_call_stream([("get_weather", {"city": "Oslo"})]))
    final, _ = anthropic_stream_message(driver, gw.url, secret, model="fast", max_tokens=50,
                                        tools=[WEATHER], messages=[{"role": "user", "content": "Oslo?"}])
    [use] = final.content
    assert (use.type, use.name, use.input) == ("tool_use", "get_weather", {"city": "Oslo"})
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("driver", DRIVERS)
def test_thinking_reaches_an_anthropic_model_and_comes_back_signed(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.add(ant.text_reply("42", thinking="Let me count.", signature="sig-abc"))
    message = anthropic_call(driver, gw.url, secret, "messages.create", model="claude", max_tokens=2000,
                             thinking={"type": "enabled", "budget_tokens": 1024},
                             messages=[{"role": "user", "content": "6*7?"}])
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert (message.content[0].thinking, message.content[0].signature) == ("Let me count.", "sig-abc")
    sent = fake.requests[-1].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert fake.requests[-1].path.endswith("/messages")

    fake.add(ant.text_reply("yes"))
    anthropic_call(driver, gw.url, secret, "messages.create", model="claude", max_tokens=2000,
                   thinking={"type": "enabled", "budget_tokens": 1024}, messages=[
                       {"role": "user", "content": "6*7?"},
                       {"role": "assistant", "content": [b.model_dump() for b in message.content]},
                       {"role": "user", "content": "sure?"}])
    assert fake.requests[-1].json["messages"][1]["content"][0] == {
        "type": "thinking", "thinking": "Let me count.", "signature": "sig-abc"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_openai_client_reaches_a_gemini_model(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["gem"])
    fake.add(gem.text_reply("Ciao!", usage=USAGE))
    reply = openai_call(driver, gw.url, secret, "chat.completions.create", model="gem",
                        messages=[{"role": "user", "content": "hello in Italian"}])
    assert reply.choices[0].message.content == "Ciao!"
    assert reply.usage.prompt_tokens == 1_200
    assert ":generateContent" in fake.requests[-1].path
    assert fake.requests[-1].json["contents"][0]["parts"] == [{"text": "hello in Italian"}]
    fake.add(gem.text_stream(["Ci", "ao"], usage=USAGE))
    chunks = openai_call(driver, gw.url, secret, "chat.completions.create", model="gem",
                         messages=[{"role": "user", "content": "again"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Ciao"
    assert {row["provider"] for row in gw.ledger_rows()} == {"gemini"}


@pytest.mark.parametrize("driver", DRIVERS)
def test_count_tokens_estimates_the_request(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    short = anthropic_call(driver, gw.url, secret, "messages.count_tokens", model="claude",
                           messages=[{"role": "user", "content": "hi"}])
    long = anthropic_call(driver, gw.url, secret, "messages.count_tokens", model="claude",
                          messages=[{"role": "user", "content": "hello there " * 100}])
    assert 0 < short.input_tokens < long.input_tokens
    assert long.input_tokens >= 1200 // 4
    assert fake.requests == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_errors_come_back_in_anthropic_shape(driver: str, gateway_server) -> None:
    gw = gateway_server()
    with pytest.raises(anthropic.AuthenticationError) as unknown:
        anthropic_call(driver, gw.url, "sk-tw-unknown-key-for-this-test", "messages.create",
                       model="fast", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert unknown.value.body["type"] == "error"
    assert unknown.value.body["error"]["type"] == "authentication_error"
    missing = httpx.post(gw.url + "/v1/messages", json={"model": "fast", "messages": []})
    assert (missing.status_code, missing.json()["error"]["type"]) == (401, "authentication_error")
    secret, _ = gw.create_key(models=["fast"])
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic_call(driver, gw.url, secret, "messages.create", model="claude", max_tokens=5,
                       messages=[{"role": "user", "content": "x"}])
    bad = httpx.post(gw.url + "/v1/messages", headers={"x-api-key": secret},
                     json={"model": "fast", "messages": "nope"})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"


def test_x_api_key_and_bearer_both_authenticate(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    fake.default = ant.text_reply("ok")
    body = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(gw.url + "/v1/messages", json=body, headers={"x-api-key": secret}).status_code == 200
    assert httpx.post(gw.url + "/v1/messages", json=body,
                      headers={"authorization": f"Bearer {secret}"}).status_code == 200
    assert json.loads(fake.requests[-1].body)["model"] == "claude-sonnet-4-5-20250929"
