"""Model facade end to end against the loopback fake provider (OpenAI dialect)."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

import tollway
from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Reply, sse
from tollway import errors
from tollway.core.types import StreamEnd, TextDelta, ToolCallDelta, Usage

KEY = "sk-test-secret-key-0123456789"


def make(fake: FakeProvider, **kw: object) -> tollway.Model:
    kw.setdefault("ledger", False)
    return tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, **kw)


def test_complete_sends_openai_body_with_auth_and_returns_text_and_usage(
    fake: FakeProvider, driver: Driver
) -> None:
    usage = Usage(input_tokens=120, output_tokens=7, cache_read_tokens=100)
    fake.add(oai.text_reply("Paris.", usage=usage))
    response = driver.complete(make(fake), "Capital of France?", temperature=0)
    sent = fake.requests[0]
    assert sent.path == "/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert sent.json["temperature"] == 0
    assert response.text == "Paris."
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.cache_read_tokens) == (120, 100)
    assert response.usage.output_tokens == 7
    assert response.provider == "openai"
    assert response.deployment == "openai/gpt-4o-mini"
    assert response.latency > 0
    assert response.cost is not None and response.cost > 0


async def test_acomplete_matches_complete(fake: FakeProvider) -> None:
    fake.add(oai.text_reply("one"), oai.text_reply("one"))
    model = make(fake)
    sync = await asyncio.to_thread(model.complete, "hi")
    asyncd = await model.acomplete("hi")
    assert (sync.text, sync.usage, sync.cost_nanos) == (asyncd.text, asyncd.usage, asyncd.cost_nanos)


def test_collected_stream_equals_non_streamed_response(fake: FakeProvider, driver: Driver) -> None:
    usage = Usage(input_tokens=50, output_tokens=3)
    fake.add(oai.text_stream(["Hel", "lo", "!"], usage=usage), oai.text_reply("Hello!", usage=usage))
    model = make(fake)
    stream = driver.stream_collect(model, "hi")
    events = stream.events
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", "!"]
    assert isinstance(events[-1], StreamEnd)
    streamed = events[-1].response
    plain = driver.complete(model, "hi")
    assert fake.requests[0].json["stream"] is True
    assert fake.requests[0].json["stream_options"] == {"include_usage": True}
    assert (streamed.text, streamed.usage, streamed.finish_reason) == (
        plain.text, plain.usage, plain.finish_reason
    )
    assert streamed.cost_nanos == plain.cost_nanos
    assert streamed.time_to_first_token is not None
    assert stream.response is streamed


def test_stream_yields_tool_call_deltas_and_parsed_calls(fake: FakeProvider, driver: Driver) -> None:
    fake.add(oai.tool_call_stream([("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "CET"})]))
    model = make(fake)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    stream = driver.stream_collect(model, "weather?", tools=[tool])
    events = stream.events
    assert any(isinstance(e, ToolCallDelta) for e in events)
    response = stream.response
    assert response is not None
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert response.finish_reason == "tool_calls"


def test_missing_key_is_an_authentication_error_before_any_request(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(errors.AuthenticationError, match="OPENAI_API_KEY"):
        tollway.Model("openai/gpt-4o-mini", api_base=fake.url, ledger=False)
    assert fake.requests == []


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(errors.UnknownModelError, match="openai"):
        tollway.Model("nosuch/model", ledger=False)


def test_rate_limit_carries_retry_after_and_never_the_key(fake: FakeProvider, driver: Driver) -> None:
    fake.add(oai.error_reply(429, f"slow down {KEY}", retry_after=3))
    with pytest.raises(errors.RateLimitError) as info:
        driver.complete(make(fake), "hi")
    assert info.value.retry_after == 3
    assert info.value.status == 429
    assert KEY not in str(info.value)
    assert info.value.deployment == "openai/gpt-4o-mini"


def test_server_error_and_non_json_body_are_server_errors(fake: FakeProvider, driver: Driver) -> None:
    fake.add(Reply(502, b"<html>bad gateway</html>"), Reply(200, b"not json"))
    model = make(fake)
    with pytest.raises(errors.ServerError):
        driver.complete(model, "hi")
    with pytest.raises(errors.ServerError, match="not JSON"):
        driver.complete(model, "hi")


def test_a_hanging_server_times_out(fake: FakeProvider, driver: Driver) -> None:
    fake.add(Reply(hang=2.0, body=oai.text_reply("late").body))
    with pytest.raises(errors.TimeoutError):
        driver.complete(make(fake, timeout=0.3), "hi")


def test_total_timeout(fake: FakeProvider, driver: Driver) -> None:
    fake.add(Reply(hang=2.0, body=oai.text_reply("late").body))
    with pytest.raises(errors.TimeoutError):
        driver.complete(make(fake, timeout={"connect": 1, "read": 5, "total": 0.3}), "hi")


def test_stream_cut_mid_way_raises_instead_of_passing_as_complete(
    fake: FakeProvider, driver: Driver
) -> None:
    reply = oai.text_stream(["a", "b", "c", "d"])
    reply.cut_after = 3
    fake.add(reply)
    with pytest.raises((errors.StreamError, errors.ConnectionError)):
        driver.stream_collect(make(fake), "hi")


def test_malformed_sse_json_is_a_stream_error(fake: FakeProvider, driver: Driver) -> None:
    fake.add(Reply(chunks=sse("{not json", "[DONE]")))
    with pytest.raises(errors.StreamError):
        driver.stream_collect(make(fake), "hi")


def test_parsed_returns_the_validated_pydantic_object(fake: FakeProvider, driver: Driver) -> None:
    class City(BaseModel):
        name: str
        population: int

    fake.add(oai.text_reply(json.dumps({"name": "Oslo", "population": 709000})))
    response = driver.complete(make(fake), "Oslo?", response_format=City)
    assert response.parsed == City(name="Oslo", population=709000)
    sent = fake.requests[0].json["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "City"


def test_ledger_rows_for_success_failure_and_early_close(fake: FakeProvider, driver: Driver) -> None:
    ledger_mod = pytest.importorskip("tollway.core.stores.open")
    ledger = ledger_mod.open_ledger("memory")
    fake.add(oai.text_reply("ok"), oai.error_reply(500, "boom"), oai.text_stream(["x"] * 20))
    model = make(fake, ledger=ledger)
    with tollway.attribute(org="acme", project="search", user="alice"):
        driver.complete(model, "hi")
        with pytest.raises(errors.ServerError):
            driver.complete(model, "hi")
        driver.stream_collect(model, "hi", take=1)
    rows = ledger.records()
    assert [r.status for r in rows] == ["ok", "ServerError", "cancelled"]
    assert all((r.org, r.project, r.user) == ("acme", "search", "alice") for r in rows)
    assert rows[0].cost_nanos and rows[0].usage.input_tokens == oai.DEFAULT_USAGE.input_tokens
    assert rows[2].stream is True
    assert all(KEY not in (r.error or "") for r in rows)
