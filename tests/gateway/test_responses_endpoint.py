"""``POST /v1/responses`` driven by the real openai SDK (``client.responses``, sync and
async, its ``responses.stream()`` accumulator included) through a real uvicorn gateway
to fake OpenAI-chat, Anthropic and Gemini providers: a Responses client reaches any
upstream, every call a ledger row for its key."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import replies_anthropic as ant
from tests.fakes import replies_gemini as gem
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.clients import DRIVERS, openai_call
from tollway.core.types import Usage

USAGE = Usage(input_tokens=900, output_tokens=30, cache_read_tokens=512, reasoning_tokens=0)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False},
           "strict": True}


def _stream_helper(driver: str, url: str, key: str, **kwargs: Any) -> tuple[list[Any], Any]:
    """The SDK's ``responses.stream()``: every event it yields and its final response
    (it asserts the event sequence is consistent while it accumulates)."""
    if driver == "sync":
        with (openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client,
              client.responses.stream(**kwargs) as stream):
            events = list(stream)
            return events, stream.get_final_response()

    async def run() -> tuple[list[Any], Any]:
        async with (openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client,
                    client.responses.stream(**kwargs) as stream):
            events = [event async for event in stream]
            return events, await stream.get_final_response()

    return asyncio.run(run())


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_responses_call_is_served_by_a_chat_upstream_and_recorded(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(org="acme", models=["fast"])
    fake.add(oai.text_reply("Bonjour!", usage=USAGE))

    reply = openai_call(driver, gw.url, secret, "responses.create", model="fast",
                        instructions="Answer in French.", input="Say hello",
                        max_output_tokens=64, temperature=0.2)

    assert reply.output_text == "Bonjour!"
    assert reply.status == "completed"
    assert reply.object == "response"
    assert reply.usage.input_tokens == 900
    assert reply.usage.input_tokens_details.cached_tokens == 512
    assert reply.usage.output_tokens == 30
    assert reply.instructions == "Answer in French."
    sent = fake.requests[-1].json
    assert fake.requests[-1].path.endswith("/chat/completions")
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert sent["messages"][1]["role"] == "user"
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 64
    assert sent["temperature"] == 0.2
    [row] = gw.ledger_rows()
    assert (row["key"], row["org"], row["alias"], row["status"]) == (key.id, "acme", "fast", "ok")
    assert row["cost_nanos"] > 0


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_tool_round_trip_through_an_anthropic_upstream(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["claude"])
    fake.add(ant.tool_call_reply([("get_weather", {"city": "Paris"})]),
             ant.text_reply("It is sunny in Paris."))

    first = openai_call(driver, gw.url, secret, "responses.create", model="claude",
                        input="Weather in Paris?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.call_id and call.id.startswith("fc_")

    second = openai_call(
        driver, gw.url, secret, "responses.create", model="claude", tools=[WEATHER],
        input=[{"role": "user", "content": "Weather in Paris?"},
               {"type": "function_call", "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}],
    )
    assert second.output_text == "It is sunny in Paris."
    sent = fake.requests[-1].json
    assert fake.requests[-1].path.endswith("/messages")
    assert sent["tools"][0]["name"] == "get_weather"
    assistant, result = sent["messages"][1], sent["messages"][2]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {"type": "tool_use", "id": call.call_id,
                                       "name": "get_weather", "input": {"city": "Paris"}}
    assert result["content"][0]["type"] == "tool_result"
    assert result["content"][0]["tool_use_id"] == call.call_id
    assert len(gw.ledger_rows()) == 2


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_sdk_stream_helper_accumulates_text_from_a_gemini_upstream(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(models=["gem"])
    fake.add(gem.text_stream(["Hel", "lo ", "there"]))

    events, final = _stream_helper(driver, gw.url, secret, model="gem", input="hi")

    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "Hello there"
    assert final.output_text == "Hello there"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.usage is not None and final.usage.output_tokens > 0
    [row] = gw.ledger_rows()
    assert (row["key"], row["stream"], row["status"]) == (key.id, 1, "ok")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_streamed_tool_call_arrives_as_a_function_call_item(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["fast"])
    fake.add(oai.tool_call_stream([("get_weather", {"city": "Oslo"}),
                                   ("get_weather", {"city": "Rome"})]))

    events, final = _stream_helper(driver, gw.url, secret, model="fast", input="Oslo and Rome?",
                                   tools=[WEATHER])

    calls = [item for item in final.output if item.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}]
    assert [c.call_id for c in calls] == [oai.call_id("get_weather", 0), oai.call_id("get_weather", 1)]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [{"city": "Oslo"}, {"city": "Rome"}]
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    assert added == [0, 1]


@pytest.mark.parametrize("driver", DRIVERS)
def test_structured_output_goes_upstream_as_the_dialects_schema(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["fast"])
    fake.add(oai.text_reply('{"city": "Paris"}'))
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}

    reply = openai_call(driver, gw.url, secret, "responses.create", model="fast", input="Where?",
                        text={"format": {"type": "json_schema", "name": "place",
                                         "schema": schema, "strict": True}})

    assert json.loads(reply.output_text) == {"city": "Paris"}
    sent = fake.requests[-1].json
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "place"
    assert sent["response_format"]["json_schema"]["schema"]["properties"] == schema["properties"]


def test_a_length_stop_is_an_incomplete_response(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["claude"])
    fake.add(ant.text_reply("Once upon a", stop_reason="max_tokens"))
    reply = openai_call("sync", gw.url, secret, "responses.create", model="claude",
                        input="Tell a story", max_output_tokens=3)
    assert reply.status == "incomplete"
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.output_text == "Once upon a"


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id",
         "send the whole conversation"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0]", "function tools"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "referenced item"),
        ({"input": []}, "input", "non-empty list"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id",
         "call_id"),
        ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format", "json_schema"),
    ],
)
def test_requests_the_gateway_cannot_serve_are_a_400_naming_the_field(
    gateway_server, fake: FakeProvider, body: dict[str, Any], param: str, says: str
) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["fast"])
    reply = httpx.post(f"{gw.url}/v1/responses", json={"model": "fast", **body},
                       headers={"authorization": f"Bearer {secret}"})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param
    assert says in error["message"]
    assert fake.requests == []  # refused before any upstream call
    assert gw.ledger_rows() == []


def test_a_key_without_the_model_is_refused(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["fast"])
    with pytest.raises(openai.APIStatusError) as caught:
        openai_call("sync", gw.url, secret, "responses.create", model="claude", input="hi")
    assert caught.value.status_code in (403, 404)
    assert fake.requests == []


def test_an_upstream_failure_mid_stream_is_an_error_event(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["claude"])
    # Spaced chunks: the text arrives (and is sent to the client) before the error.
    fake.add(dataclasses.replace(ant.error_stream("Overloaded"), chunk_delay=0.2))
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=secret, max_retries=0) as client:
        events = list(client.responses.create(model="claude", input="hi", stream=True))
    assert events[0].type == "response.created"
    assert "Partial" in [getattr(e, "delta", None) for e in events]
    assert events[-1].type == "error"
    assert "Overloaded" in events[-1].message or "overloaded" in (events[-1].code or "")
    [row] = gw.ledger_rows()
    assert row["status"] != "ok"


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_image_generation_tool_gets_a_gemini_image_as_an_image_call_item(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    import base64

    from tests.fakes.replies_media import png

    picture = png(2, 2, (1, 2, 3))
    models = {"draw": {"model": f"gemini/{gem.IMAGE_MODEL}", "api_base": fake.url,
                       "api_key": "env:TOLLWAY_TEST_UPSTREAM_KEY"}}
    gw = gateway_server(models=models)
    secret, key = gw.create_key(models=["draw"])
    fake.add(gem.image_reply(picture, text="A tiny square."))

    reply = openai_call(driver, gw.url, secret, "responses.create", model="draw",
                        input="Draw a square.", tools=[{"type": "image_generation"}])

    sent = fake.requests[-1].json
    assert sent["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    assert "tools" not in sent  # the tool became a modality, not a function declaration
    [call] = [item for item in reply.output if item.type == "image_generation_call"]
    assert base64.b64decode(call.result) == picture and call.status == "completed"
    assert reply.output_text == "A tiny square."
    [row] = gw.ledger_rows()
    assert row["key"] == key.id and row["output_image_tokens"] == gem.IMAGE_TOKENS


def test_image_generation_tool_options_are_refused_naming_them(
    gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["gem"])
    response = httpx.post(f"{gw.url}/v1/responses", headers={"authorization": f"Bearer {secret}"},
                          json={"model": "gem", "input": "x",
                                "tools": [{"type": "image_generation", "size": "1024x1024"}]})
    assert response.status_code == 400
    assert "size" in response.json()["error"]["message"]
    assert fake.requests == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_streamed_gemini_image_arrives_as_one_image_call_item(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    import base64

    from tests.fakes.replies_media import png

    picture = png(2, 2, (9, 8, 7))
    models = {"draw": {"model": f"gemini/{gem.IMAGE_MODEL}", "api_base": fake.url,
                       "api_key": "env:TOLLWAY_TEST_UPSTREAM_KEY"}}
    gw = gateway_server(models=models)
    secret, _ = gw.create_key(models=["draw"])
    fake.add(gem.image_stream(picture, text="Here."))

    events, final = _stream_helper(driver, gw.url, secret, model="draw", input="Draw.",
                                   tools=[{"type": "image_generation"}])

    done = [e for e in events if e.type == "response.output_item.done"
            and e.item.type == "image_generation_call"]
    assert len(done) == 1 and base64.b64decode(done[0].item.result) == picture
    [call] = [item for item in final.output if item.type == "image_generation_call"]
    assert base64.b64decode(call.result) == picture
    assert final.output_text == "Here."
