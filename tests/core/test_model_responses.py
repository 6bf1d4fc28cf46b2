"""Model on a Responses deployment, end to end against the loopback fake provider, on
both drivers (sync and async) and both call shapes (complete and stream): which API a
deployment speaks, the reasoning round trip across tool turns, faults, and cost."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

import tollway
from tests.fakes import replies_openai as chat
from tests.fakes import replies_openai_responses as rsp
from tests.fakes.server import FakeProvider, Reply
from tollway import errors
from tollway.core.cost.pricing import PriceBook
from tollway.core.types import Message, Response, StreamEnd, TextDelta, ThinkingDelta, Usage

KEY = "sk-test-secret-key-0123456789"
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
_FREE = PriceBook({"vllm/*": {"input": 0, "output": 0}})
DRIVES = [("sync", False), ("sync", True), ("async", False), ("async", True)]
DRIVE_IDS = ["complete", "stream", "acomplete", "astream"]


def make(fake: FakeProvider, target: str = "openai/gpt-5-mini", **kw: Any) -> tollway.Model:
    kw.setdefault("api", "responses")
    return tollway.Model(target, api_key=KEY, api_base=fake.url, ledger=False, config=False, **kw)


def call(model: tollway.Model, driver: str, streamed: bool, *args: Any, **kw: Any) -> Response:
    """One call on the chosen driver; a stream is collected (its final Response)."""
    if driver == "sync":
        if not streamed:
            return model.complete(*args, **kw)
        with model.stream(*args, **kw) as stream:
            events = list(stream)
        assert isinstance(events[-1], StreamEnd)
        return events[-1].response

    async def run() -> Response:
        if not streamed:
            return await model.acomplete(*args, **kw)
        async with model.astream(*args, **kw) as stream:
            return await stream.collect()

    return asyncio.run(run())


def reply(streamed: bool, kind: str, *args: Any, **kw: Any) -> Any:
    builder = getattr(rsp, f"{kind}_stream" if streamed else f"{kind}_reply")
    return builder(*args, **kw)


# --------------------------------------------------------------------------- choosing the API


@pytest.mark.parametrize(("driver", "streamed"), DRIVES, ids=DRIVE_IDS)
@pytest.mark.parametrize("model", ["gpt-5-pro", "o3-pro", "gpt-5-codex", "codex-mini-latest",
                                   "o4-mini-deep-research", "computer-use-preview"])
def test_responses_only_models_go_to_responses_without_being_told(
    model: str, driver: str, streamed: bool, fake: FakeProvider
) -> None:
    fake.add(reply(streamed, "text", *(["Hi."] if not streamed else [["H", "i."]])))
    target = tollway.Model(f"openai/{model}", api_key=KEY, api_base=fake.url, ledger=False,
                           config=False)
    answer = call(target, driver, streamed, "hi")
    assert fake.requests[0].path == "/responses"
    assert fake.requests[0].json["model"] == model
    assert answer.text == "Hi."


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_other_models_stay_on_chat_completions_unless_api_says_responses(
    driver: str, fake: FakeProvider,
) -> None:
    fake.add(chat.text_reply("chat"), rsp.text_reply("responses"))
    plain = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=False,
                          config=False)
    assert call(plain, driver, False, "hi").text == "chat"
    assert call(make(fake, "openai/gpt-4o-mini"), driver, False, "hi").text == "responses"
    assert [r.path for r in fake.requests] == ["/chat/completions", "/responses"]


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_api_chat_keeps_even_a_responses_only_model_on_chat(
    driver: str, fake: FakeProvider
) -> None:
    fake.add(chat.text_reply("chat"))
    assert call(make(fake, "openai/gpt-5-pro", api="chat"), driver, False, "hi").text == "chat"
    assert fake.requests[0].path == "/chat/completions"


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_compatible_providers_opt_in_to_responses(driver: str, fake: FakeProvider) -> None:
    fake.add(rsp.text_reply("from vllm"))
    answer = call(make(fake, "vllm/openai/gpt-oss-20b", prices=_FREE), driver, False, "hi")
    assert fake.requests[0].path == "/responses"
    assert answer.text == "from vllm"


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_azure_responses_use_the_v1_surface_with_the_deployment_as_model(
    driver: str, fake: FakeProvider,
) -> None:
    fake.add(rsp.text_reply("azure"))
    model = tollway.Model("azure/my-gpt5-pro", api_key=KEY, api_base=fake.url, api="responses",
                          ledger=False, config=False)
    assert call(model, driver, False, "hi").text == "azure"
    sent = fake.requests[0]
    assert sent.path == "/openai/v1/responses"  # no deployment segment, no api-version
    assert sent.json["model"] == "my-gpt5-pro"
    assert sent.headers["api-key"] == KEY


@pytest.mark.parametrize(("target", "api", "words"), [
    ("anthropic/claude-sonnet-4-5", "responses", "does not apply to provider 'anthropic'"),
    ("openai/gpt-4o", "completions", "api must be one of chat, responses"),
])
def test_a_wrong_api_is_a_config_error_that_says_why(target: str, api: str, words: str) -> None:
    with pytest.raises(errors.ConfigError, match=words):
        tollway.Model(target, api_key=KEY, api=api, ledger=False, config=False)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tollway.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_tollway_yaml_api_key_sends_a_deployment_to_responses(
    driver: str, tmp_path: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_RESPONSES_KEY", KEY)
    path = _write(tmp_path, f"""
        models:
          smart:
            - model: openai/gpt-4.1
              api: responses
              api_base: {fake.url}
              api_key: env:TEST_RESPONSES_KEY
        ledger: false
        """)
    fake.add(rsp.text_reply("configured"))
    assert call(tollway.Model("smart", config=path), driver, False, "hi").text == "configured"
    assert fake.requests[0].path == "/responses"


@pytest.mark.parametrize(("target", "api", "words"), [
    ("openai/gpt-4.1", "assistants", "'chat' or 'responses'"),
    ("gemini/gemini-2.5-flash", "responses", "does not apply to provider 'gemini'"),
])
def test_a_bad_api_in_tollway_yaml_names_file_line_and_key(
    tmp_path: Path, target: str, api: str, words: str
) -> None:
    path = tmp_path / "tollway.yaml"
    path.write_text(f"models:\n  smart:\n    - model: {target}\n      api: {api}\n")
    from tollway.core.config import load_config

    with pytest.raises(errors.ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert (err.file, err.key) == (str(path), "models.smart[0].api"), str(err)
    assert err.line == 4
    assert words in str(err)


# --------------------------------------------------------------------------- tool turns


@pytest.mark.parametrize(("driver", "streamed"), DRIVES, ids=DRIVE_IDS)
def test_two_tool_rounds_send_the_encrypted_reasoning_back(
    driver: str, streamed: bool, fake: FakeProvider
) -> None:
    usage = Usage(input_tokens=400, output_tokens=90, cache_read_tokens=256, reasoning_tokens=64)
    fake.add(
        reply(streamed, "tool_call", [("get_weather", {"city": "Oslo"})], usage=usage,
              reasoning="Checking the weather first."),
        reply(streamed, "tool_call", [("get_weather", {"city": "Bergen"})], usage=usage,
              reasoning=True),
    )
    if streamed:
        fake.add(rsp.text_stream(["Both ", "sunny."], usage=usage))
    else:
        fake.add(rsp.text_reply("Both sunny.", usage=usage))
    model = make(fake)
    history: list[Any] = [Message.system("Be brief."), Message.user("Oslo and Bergen?")]
    for city in ("Oslo", "Bergen"):
        turn = call(model, driver, streamed, history, tools=[WEATHER])
        assert turn.finish_reason == "tool_calls"
        (tool_call,) = turn.tool_calls
        assert tool_call.arguments == {"city": city}
        history += [turn.to_message(), Message.tool(tool_call.id, f"Sunny in {city}")]
    final = call(model, driver, streamed, history, tools=[WEATHER])
    assert final.text == "Both sunny."
    assert final.usage == usage

    first, second, third = (r.json for r in fake.requests)
    assert first["instructions"] == "Be brief."
    assert first["store"] is False
    assert first["include"] == ["reasoning.encrypted_content"]
    assert first["tools"][0]["name"] == "get_weather" and first["tools"][0]["strict"] is False
    seed1 = "calls:" + repr([("get_weather", {"city": "Oslo"})])
    reasoning_in = [i for i in second["input"] if i.get("type") == "reasoning"]
    assert reasoning_in == [{
        "id": reasoning_in[0]["id"], "type": "reasoning",
        "encrypted_content": rsp.encrypted(seed1),
        "summary": [{"type": "summary_text", "text": "Checking the weather first."}],
    }]
    kinds = [i.get("type", i.get("role")) for i in third["input"]]
    assert kinds == ["user", "reasoning", "function_call", "function_call_output",
                     "reasoning", "function_call", "function_call_output"]
    seed2 = "calls:" + repr([("get_weather", {"city": "Bergen"})])
    assert third["input"][4]["encrypted_content"] == rsp.encrypted(seed2)
    outputs = [i for i in third["input"] if i.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == ["Sunny in Oslo", "Sunny in Bergen"]
    calls = [i for i in third["input"] if i.get("type") == "function_call"]
    assert [c["call_id"] for c in calls] == [o["call_id"] for o in outputs]
    assert all(c["id"].startswith("fc_") for c in calls)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_stream_yields_reasoning_summary_deltas_before_the_text(
    driver: str, fake: FakeProvider
) -> None:
    fake.add(rsp.text_stream(["Hel", "lo"], reasoning="Say hello."))
    model = make(fake)

    async def collect() -> list[Any]:
        async with model.astream("hi") as stream:
            return [event async for event in stream]

    if driver == "sync":
        with model.stream("hi") as stream:
            events = list(stream)
    else:
        events = asyncio.run(collect())
    thinking = [e for e in events if isinstance(e, ThinkingDelta)]
    assert [e.text for e in thinking] == ["Say h", "ello.", ""]  # the fake splits in half
    item = thinking[-1].provider_data["openai_responses"]["item"]  # type: ignore[index]
    assert item["encrypted_content"].startswith("gAAAAAB")  # arrives with output_item.done
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert max(i for i, e in enumerate(events) if isinstance(e, ThinkingDelta)) < first_text
    final = events[-1].response
    assert (final.thinking, final.text) == ("Say hello.", "Hello")


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(("driver", "streamed"), DRIVES, ids=DRIVE_IDS)
def test_rate_limit_is_typed_with_retry_after(driver: str, streamed: bool, fake: FakeProvider) -> None:
    fake.add(rsp.error_reply(429, "Rate limit reached for gpt-5-mini", retry_after=7))
    with pytest.raises(errors.RateLimitError) as caught:
        call(make(fake), driver, streamed, "hi")
    assert caught.value.retry_after == 7
    assert caught.value.status == 429
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(("driver", "streamed"), DRIVES, ids=DRIVE_IDS)
def test_server_error_is_typed(driver: str, streamed: bool, fake: FakeProvider) -> None:
    fake.add(rsp.error_reply(500, "The server had an error processing your request."))
    with pytest.raises(errors.ServerError) as caught:
        call(make(fake), driver, streamed, "hi")
    assert caught.value.status == 500


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_connection_cut_mid_stream_raises_instead_of_passing_as_complete(
    driver: str, fake: FakeProvider
) -> None:
    fake.add(rsp.text_stream(["Hel", "lo", " there"], cut_after=6))
    with pytest.raises((errors.StreamError, errors.ConnectionError)):
        call(make(fake), driver, True, "hi")


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_stream_that_ends_without_response_completed_is_a_stream_error(
    driver: str, fake: FakeProvider
) -> None:
    whole = rsp.text_stream(["Hel", "lo"])
    assert whole.chunks is not None and b"response.completed" in whole.chunks[-1]
    fake.add(Reply(200, chunks=whole.chunks[:-1]))
    with pytest.raises(errors.StreamError, match="ended before"):
        call(make(fake), driver, True, "hi")


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize(("code", "kind"), [
    ("rate_limit_exceeded", errors.RateLimitError),
    ("server_error", errors.ServerError),
    ("context_length_exceeded", errors.ContextWindowExceededError),
])
def test_response_failed_mid_stream_raises_the_typed_error(
    driver: str, code: str, kind: type[errors.ProviderError], fake: FakeProvider
) -> None:
    fake.add(rsp.failed_stream(code, f"failed with {code}", after_text="Par"))
    with pytest.raises(kind, match=f"failed with {code}"):
        call(make(fake), driver, True, "hi")


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_an_error_event_raises_the_typed_error(driver: str, fake: FakeProvider) -> None:
    fake.add(rsp.error_event_stream("rate_limit_exceeded", "Too many requests in flight"))
    with pytest.raises(errors.RateLimitError, match="Too many requests"):
        call(make(fake), driver, True, "hi")


@pytest.mark.parametrize(("driver", "streamed"), [("sync", False), ("async", False)])
def test_an_incomplete_response_finishes_with_length(
    driver: str, streamed: bool, fake: FakeProvider
) -> None:
    fake.add(rsp.text_reply("Partial", incomplete="max_output_tokens"))
    answer = call(make(fake), driver, streamed, "hi", max_tokens=5)
    assert answer.finish_reason == "length"
    assert fake.requests[0].json["max_output_tokens"] == 5


# --------------------------------------------------------------------------- cost


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_cost_with_cached_input_reasoning_and_web_search_equals_genai_prices(
    driver: str, fake: FakeProvider
) -> None:
    from decimal import Decimal

    from genai_prices import Usage as GenaiUsage
    from genai_prices import calc_price

    usage = Usage(input_tokens=12_594, output_tokens=1_150, cache_read_tokens=3_200,
                  reasoning_tokens=1_088)
    fake.add(rsp.web_search_reply("Floods in Mexico.", ["mexico news", "mexico floods"],
                                  usage=usage, model="gpt-5-2025-08-07"))
    answer = call(make(fake, "openai/gpt-5"), driver, False, "News?",
                  extra={"tools": [{"type": "web_search"}]})
    assert answer.usage.units == {"web_search": 2}
    assert answer.usage.cache_read_tokens == 3_200 and answer.usage.reasoning_tokens == 1_088
    expected = calc_price(
        GenaiUsage(input_tokens=12_594, cache_read_tokens=3_200, output_tokens=1_150,
                   web_searches=2),
        "gpt-5", provider_id="openai",
    ).total_price
    assert answer.cost == expected
    assert expected > Decimal("0.02")  # the two searches ($0.02) are in it
    assert fake.requests[0].json["tools"] == [{"type": "web_search"}]


def test_check_config_shows_the_api_each_deployment_speaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tollway.cli import main as cli_main

    path = _write(tmp_path, """
        models:
          smart:
            - {model: openai/gpt-4.1, api: responses, api_key: env:TEST_UNSET_KEY}
            - {model: openai/gpt-5-pro, name: pro, api_key: env:TEST_UNSET_KEY}
            - {model: openai/gpt-4o, name: plain, api_key: env:TEST_UNSET_KEY}
            - {model: anthropic/claude-sonnet-4-5, api_key: env:TEST_UNSET_KEY}
        """)
    assert cli_main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    blocks = out.split("    - ")[1:]
    apis = [next((line.split(": ")[1] for line in b.splitlines() if "api: " in line), None)
            for b in blocks]
    assert apis == ["responses", "responses", "chat", None]
