"""TollwayModel's mapping between Pydantic AI and tollway, driven through real Agent
runs against the loopback fake provider: what reaches the wire (instructions, settings,
tool choice, images, thinking sent back with its signature) and what Pydantic AI gets
back (parts, usage, finish reason, ids); plus the error mapping as a pure function."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent, BinaryContent, ImageUrl
from pydantic_ai.direct import model_request
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelServerError,
    ModelTimeoutError,
    UnsupportedSettingWarning,
)
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import ToolDefinition

import tollway
from tests.adapters._lg_pai_fakes import KEY, USAGE_A, Script, script
from tests.fakes.server import FakeProvider
from tollway.adapters.pydantic_ai import TollwayModel
from tollway.adapters.pydantic_ai.errors import to_model_error
from tollway.core import errors
from tollway.core.transport import default_transport
from tollway.core.types import Usage

PNG = b"\x89PNG\r\n\x1a\n-fake-image-bytes"


def model_for(d: Script, fake: FakeProvider, **kw: Any) -> TollwayModel:
    return TollwayModel(d.target, api_key=KEY, api_base=fake.url, ledger=False, **kw)


def run(coro: Any) -> Any:
    async def main() -> Any:
        try:
            return await coro
        finally:
            await default_transport().aclose()

    return asyncio.run(main())


def last_response(result: Any) -> ModelResponse:
    response = result.all_messages()[-1]
    assert isinstance(response, ModelResponse)
    return response


# --------------------------------------------------------------------------- requests


def test_system_prompt_then_instructions_then_the_user_prompt_reach_the_wire(
    fake: FakeProvider,
) -> None:
    d = script("openai")
    fake.add(d.text("ok"))
    agent = Agent(model_for(d, fake), system_prompt="You are terse.",
                  instructions="Answer in English.")
    run(agent.run("Bonjour"))
    assert fake.requests[0].json["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Bonjour"},
    ]


def test_model_settings_map_onto_the_request(fake: FakeProvider) -> None:
    d = script("openai")
    fake.add(d.text("ok"))
    agent = Agent(model_for(d, fake))
    run(agent.run("hi", model_settings={
        "temperature": 0.3, "max_tokens": 77, "top_p": 0.9, "seed": 7,
        "stop_sequences": ["END"], "extra_body": {"user": "u-1"},
        "extra_headers": {"x-trace": "t-1"},
    }))
    sent = fake.requests[0]
    body = sent.json
    assert (body["temperature"], body["max_completion_tokens"], body["top_p"]) == (0.3, 77, 0.9)
    assert (body["seed"], body["stop"], body["user"]) == (7, ["END"], "u-1")
    assert sent.headers["x-trace"] == "t-1"


def test_settings_tollway_cannot_honour_portably_warn(fake: FakeProvider) -> None:
    d = script("openai")
    fake.add(d.text("ok"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(Agent(model_for(d, fake)).run("hi", model_settings={"timeout": 5}))
    assert any(issubclass(w.category, UnsupportedSettingWarning) for w in caught)
    assert "timeout" not in fake.requests[0].json


def test_tool_choice_naming_one_tool_forces_that_tool(dialect_name: str,
                                                      fake: FakeProvider) -> None:
    d = script(dialect_name)
    fake.add(d.calls(("get_time", {})))
    tools = [ToolDefinition(name="get_weather", description="Weather.",
                            parameters_json_schema={"type": "object", "properties": {
                                "city": {"type": "string"}}}),
             ToolDefinition(name="get_time", description="Time.")]
    response = run(model_request(
        model_for(d, fake), [ModelRequest.user_text_prompt("time?")],
        model_settings={"tool_choice": ["get_time"]},
        model_request_parameters=ModelRequestParameters(function_tools=tools),
    ))
    assert [p.tool_name for p in response.parts if isinstance(p, ToolCallPart)] == ["get_time"]
    body = fake.requests[0].json
    expected = {
        "openai": ("tool_choice", {"type": "function", "function": {"name": "get_time"}}),
        "anthropic": ("tool_choice", {"type": "tool", "name": "get_time"}),
        "gemini": ("toolConfig", {"functionCallingConfig": {
            "mode": "ANY", "allowedFunctionNames": ["get_time"]}}),
    }[dialect_name]
    assert body[expected[0]] == expected[1]


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def dialect_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_thinking_setting_becomes_a_reasoning_request(fake: FakeProvider) -> None:
    openai, anthropic = script("openai"), script("anthropic")
    fake.add(openai.text("a"), anthropic.text("b"))
    run(Agent(model_for(openai, fake)).run("hi", model_settings={"thinking": "high"}))
    run(Agent(model_for(anthropic, fake)).run("hi", model_settings={"thinking": True}))
    assert fake.requests[0].json["reasoning_effort"] == "high"
    assert fake.requests[1].json["thinking"]["type"] in ("enabled", "adaptive")


def test_images_reach_the_provider_as_image_parts(fake: FakeProvider) -> None:
    d = script("openai")
    fake.add(d.text("two images"))
    run(Agent(model_for(d, fake)).run([
        "Describe.",
        ImageUrl(url="https://example.com/cat.png"),
        BinaryContent(data=PNG, media_type="image/png"),
    ]))
    [user] = [m for m in fake.requests[0].json["messages"] if m["role"] == "user"]
    urls = [p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url"]
    assert urls[0] == "https://example.com/cat.png"
    assert urls[1].startswith("data:image/png;base64,")


# --------------------------------------------------------------------------- responses


def test_response_carries_model_provider_ids_finish_reason_usage_and_tollway_cost(
    dialect_name: str, fake: FakeProvider
) -> None:
    d = script(dialect_name)
    fake.add(d.text("Paris.", usage=USAGE_A))
    result = run(Agent(model_for(d, fake)).run("Capital of France?"))
    response = last_response(result)
    assert response.parts == [TextPart("Paris.")]
    assert response.finish_reason == "stop"
    assert response.provider_name == dialect_name
    assert response.provider_url == fake.url
    assert response.provider_response_id
    assert response.model_name and response.model_name.startswith(d.model.split("-")[0])
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (1200, 40, 1000)
    details = response.provider_details or {}
    assert usage.cost is not None and usage.cost * 10**9 == details["cost_nanos"]
    assert details["deployment"] == d.target


def test_request_usage_carries_cache_writes_and_reasoning_tokens(fake: FakeProvider) -> None:
    anthropic, gemini = script("anthropic"), script("gemini")
    fake.add(anthropic.text("a", usage=Usage(input_tokens=2000, output_tokens=50,
                                             cache_read_tokens=500, cache_write_tokens=300)),
             gemini.text("b", usage=Usage(input_tokens=900, output_tokens=300,
                                          reasoning_tokens=250)))
    first = last_response(run(Agent(model_for(anthropic, fake)).run("hi"))).usage
    second = last_response(run(Agent(model_for(gemini, fake)).run("hi"))).usage
    # Pydantic AI's input_tokens include cache reads and writes, exactly like tollway's
    assert (first.input_tokens, first.cache_read_tokens, first.cache_write_tokens) == (
        2000, 500, 300)
    assert (second.output_tokens, second.output_reasoning_tokens) == (300, 250)


def test_anthropic_thinking_round_trips_with_its_signature(fake: FakeProvider) -> None:
    d = script("anthropic")
    fake.add(d.replies.text_reply("42.", thinking="Six times seven.", signature="sig-abc=="),
             d.text("Yes."))
    agent = Agent(model_for(d, fake))
    first = run(agent.run("What is 6x7?"))
    thinking = last_response(first).parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert (thinking.content, thinking.signature) == ("Six times seven.", "sig-abc==")
    assert thinking.provider_name == "anthropic"

    run(agent.run("Sure?", message_history=first.all_messages()))
    assistant = fake.requests[1].json["messages"][1]
    assert assistant["content"][0] == {"type": "thinking", "thinking": "Six times seven.",
                                       "signature": "sig-abc=="}


def test_streamed_thinking_builds_the_same_response_parts_as_the_plain_request(
    fake: FakeProvider,
) -> None:
    d = script("anthropic")
    fake.add(d.replies.text_stream(["4", "2."], thinking=["Six ", "times seven."],
                                   signature="sig-xyz=="),
             d.replies.text_reply("42.", thinking="Six times seven.", signature="sig-xyz=="))
    agent = Agent(model_for(d, fake))

    async def streamed() -> Any:
        async with agent.run_stream("6x7?") as result:
            await result.get_output()
        return result

    stream_parts = last_response(run(streamed())).parts
    plain_parts = last_response(run(agent.run("6x7?"))).parts
    assert stream_parts == plain_parts
    assert isinstance(stream_parts[0], ThinkingPart) and stream_parts[0].signature == "sig-xyz=="


def test_gemini_thought_signature_on_a_tool_call_goes_back_with_the_call(
    fake: FakeProvider,
) -> None:
    d = script("gemini")
    fake.add(d.calls(("get_weather", {"city": "Oslo"})), d.text("Sunny."))
    agent: Agent[None, str] = Agent(model_for(d, fake))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Weather."""
        return "sunny"

    result = run(agent.run("Weather in Oslo?"))
    call = next(p for m in result.all_messages() if isinstance(m, ModelResponse)
                for p in m.parts if isinstance(p, ToolCallPart))
    assert call.provider_details and call.provider_details["tollway"]
    model_turn = fake.requests[1].json["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == d.replies.SIGNATURE


def test_gemini_thought_and_text_signature_round_trip_through_message_history(
    fake: FakeProvider,
) -> None:
    d = script("gemini")
    fake.add(d.replies.text_reply("Answer.", thinking="Let me think."), d.text("ok"))
    agent = Agent(model_for(d, fake))
    first = run(agent.run("q"))
    thinking, text = last_response(first).parts
    assert isinstance(thinking, ThinkingPart) and thinking.content == "Let me think."
    assert isinstance(text, TextPart) and text.provider_details
    run(agent.run("more", message_history=first.all_messages()))
    assert fake.requests[1].json["contents"][1]["parts"] == [
        {"text": "Let me think.", "thought": True},
        {"text": "Answer.", "thoughtSignature": d.replies.SIGNATURE},
    ]


# --------------------------------------------------------------------------- identity


def test_identity_profile_and_client(fake: FakeProvider) -> None:
    d = script("anthropic")
    model = model_for(d, fake)
    assert model.model_name == "anthropic/claude-sonnet-4-5"
    assert model.system == "anthropic"
    assert model.base_url == fake.url
    assert model.profile.get("supports_json_schema_output") is True
    assert model.profile.get("supports_tools") is True
    assert isinstance(model.client, tollway.Model)
    assert model != model_for(d, fake)  # two clients are two models
    shared = TollwayModel(client=model.client)
    assert shared.client is model.client and shared.model_name == model.model_name


def test_a_model_without_target_or_client_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="needs a model"):
        TollwayModel()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("error", "category", "status"),
    [
        (errors.RateLimitError("slow", status=429, retry_after=4), ModelRateLimitError, 429),
        (errors.ServerError("boom", status=500), ModelServerError, 500),
        (errors.ServerError("busy", status=529), ModelOverloadedError, 529),
        (errors.AuthenticationError("bad key", status=401), ModelAuthenticationError, 401),
        (errors.PermissionDeniedError("no", status=403), ModelAuthenticationError, 403),
        (errors.NotFoundError("no model", status=404), ModelNotFoundError, 404),
        (errors.ContextWindowExceededError("long", status=400),
         ModelContextWindowExceededError, 400),
        (errors.BadRequestError("bad", status=400), ModelRequestRejectedError, 400),
        (errors.TimeoutError("slow"), ModelTimeoutError, None),
        (errors.ConnectionError("down"), ModelConnectionError, None),
        (errors.AuthenticationError("no key configured"), ModelAuthenticationError, None),
    ],
)
def test_provider_errors_map_to_the_pydantic_ai_category(
    error: errors.ProviderError, category: type[ModelAPIError], status: int | None
) -> None:
    mapped = to_model_error(error, "m")
    assert isinstance(mapped, category)
    if status is None:
        assert not isinstance(mapped, ModelHTTPError)
    else:
        assert isinstance(mapped, ModelHTTPError) and mapped.status_code == status
    if isinstance(error, errors.RateLimitError):
        assert mapped.retry_after == 4


def test_all_deployments_failed_maps_by_its_last_error() -> None:
    last = errors.RateLimitError("slow", status=429)
    mapped = to_model_error(errors.AllDeploymentsFailedError([("a", last)]), "m")
    assert isinstance(mapped, ModelRateLimitError) and isinstance(mapped, ModelHTTPError)


@pytest.mark.parametrize("error", [
    errors.BudgetExceededError("org=acme", 1.0, 1.0, 0.0),
    errors.OutsideAllowedHoursError("org=acme", "mon-fri 08:00-18:00", None),
    errors.ConfigError("bad config"),
])
def test_admission_and_config_errors_are_not_turned_into_model_errors(
    error: errors.TollwayError,
) -> None:
    assert to_model_error(error, "m") is error


def test_a_429_through_an_agent_is_a_rate_limit_error_caused_by_tollways(
    fake: FakeProvider,
) -> None:
    d = script("anthropic")
    fake.add(d.replies.error_reply(429, "slow down", retry_after=2))
    with pytest.raises(ModelRateLimitError) as err:
        run(Agent(model_for(d, fake)).run("hi"))
    assert isinstance(err.value.__cause__, errors.RateLimitError)
    assert err.value.retry_after == 2
    assert json.dumps(fake.requests[0].json)  # the request did reach the provider
