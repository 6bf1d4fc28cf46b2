"""TollwayChatModel against the loopback fake provider, in the OpenAI, Anthropic and
Gemini wire dialects: what LangChain sees (AIMessage, chunks, usage, metadata) and what
reaches the provider (tools, tool_choice, stop, images, round-tripped provider data)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

import tollway
from tests.adapters._lg_pai_fakes import KEY, USAGE_A, USAGE_B, Script, records, script
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway.adapters.langgraph import TollwayChatModel
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.errors import BudgetExceededError, RateLimitError
from tollway.core.stores.open import open_ledger
from tollway.core.transport import default_transport
from tollway.core.types import Usage

PNG = b"\x89PNG\r\n\x1a\n-fake-image-bytes"


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def dialect(request: pytest.FixtureRequest) -> Script:
    return script(request.param)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


def chat(d: Script, fake: FakeProvider, ledger: Ledger | bool, **kw: Any) -> TollwayChatModel:
    return TollwayChatModel(model=d.target, api_key=KEY, api_base=fake.url, ledger=ledger, **kw)


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


class Forecast(BaseModel):
    """A forecast for a city."""

    city: str
    high_c: int = Field(description="highest temperature")


def wire_tool_names(d: Script, body: dict[str, Any]) -> list[str]:
    if d.name == "gemini":
        return [f["name"] for t in body["tools"] for f in t["functionDeclarations"]]
    if d.name == "anthropic":
        return [t["name"] for t in body["tools"]]
    return [t["function"]["name"] for t in body["tools"]]


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


# --------------------------------------------------------------------------- answers


def test_invoke_returns_text_with_usage_metadata_and_cost_that_the_ledger_also_holds(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(dialect.text("Paris.", usage=USAGE_A))
    message = chat(dialect, fake, ledger).invoke("Capital of France?")

    assert isinstance(message, AIMessage)
    assert message.content == "Paris."
    assert message.usage_metadata == {
        "input_tokens": 1200, "output_tokens": 40, "total_tokens": 1240,
        "input_token_details": {"cache_read": 1000, "cache_creation": 0},
        "output_token_details": {"reasoning": 0},
    }
    meta = message.response_metadata
    assert meta["finish_reason"] == "stop"
    assert meta["model_name"].startswith(dialect.model.split("-")[0])
    assert meta["deployment"] == dialect.target
    assert meta["provider"] == dialect.name
    [row] = records(ledger)
    assert row.cost_nanos is not None and row.cost_nanos > 0
    assert meta["cost"] == pytest.approx(row.cost_nanos / 1e9)
    assert meta["cost_nanos"] == row.cost_nanos
    assert meta["trace_id"] == row.trace_id
    assert (row.usage.input_tokens, row.usage.output_tokens) == (1200, 40)
    assert row.framework == "langchain"  # called outside any graph


def test_usage_details_carry_cache_writes_and_reasoning_tokens(fake: FakeProvider) -> None:
    anthropic, gemini = script("anthropic"), script("gemini")
    fake.add(anthropic.text("a", usage=Usage(input_tokens=2000, output_tokens=50,
                                             cache_read_tokens=500, cache_write_tokens=300)),
             gemini.text("b", usage=Usage(input_tokens=900, output_tokens=300,
                                          reasoning_tokens=250)))
    first = chat(anthropic, fake, False).invoke("hi").usage_metadata
    second = chat(gemini, fake, False).invoke("hi").usage_metadata
    assert first is not None and second is not None
    assert (first["input_tokens"], first["total_tokens"]) == (2000, 2050)
    assert first["input_token_details"] == {"cache_read": 500, "cache_creation": 300}
    assert (second["output_tokens"], second["output_token_details"]) == (300, {"reasoning": 250})


def test_async_invoke_and_stream_never_hop_to_a_worker_thread(fake: FakeProvider) -> None:
    """LangChain's default _agenerate / _astream run the sync code in an executor; the
    adapter must use tollway's async transport instead."""

    class NoThreads(ThreadPoolExecutor):
        def submit(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a model call hopped to a worker thread")

    d = script("openai")
    fake.add(d.text("one"), d.text_stream("t", "wo"))
    model = chat(d, fake, False)

    async def run() -> tuple[AIMessage, list[AIMessageChunk]]:
        asyncio.get_running_loop().set_default_executor(NoThreads())
        answer = await model.ainvoke("hi")
        chunks = [c async for c in model.astream("hi")]
        await default_transport().aclose()  # this loop's pooled client
        return answer, chunks

    answer, chunks = asyncio.run(run())
    assert answer.content == "one"
    assert merge(chunks).content == "two"


def test_stream_yields_tokens_then_one_last_chunk_with_usage_and_cost(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    fake.add(dialect.text_stream("The capital ", "is ", "Paris.", usage=USAGE_B))
    chunks = list(chat(dialect, fake, ledger).stream("Capital of France?"))

    texts = [c.content for c in chunks if c.content]
    assert "".join(texts) == "The capital is Paris."
    assert len(texts) >= 2  # tokens arrive as they stream, not as one block
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    merged = merge(chunks)
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["input_tokens"] == 1500
    assert merged.usage_metadata["output_tokens"] == 25
    assert merged.usage_metadata["input_token_details"]["cache_read"] == 1024
    [row] = records(ledger)
    assert row.stream is True
    assert merged.response_metadata["cost_nanos"] == row.cost_nanos
    assert merged.response_metadata["finish_reason"] == "stop"


def test_streaming_true_makes_invoke_stream_and_still_return_one_message(
    fake: FakeProvider, ledger: Ledger
) -> None:
    d = script("gemini")
    fake.add(d.text_stream("Hel", "lo.", usage=USAGE_B))
    message = chat(d, fake, ledger, streaming=True).invoke("hi")
    assert isinstance(message, AIMessage) and message.content == "Hello."
    assert message.usage_metadata and message.usage_metadata["input_tokens"] == 1500
    assert ":streamGenerateContent" in fake.requests[0].path
    assert records(ledger)[0].stream is True


def test_streamed_tool_call_chunks_merge_into_the_same_tool_calls_as_invoke(
    dialect: Script, fake: FakeProvider
) -> None:
    calls = [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Bergen"})]
    fake.add(dialect.calls_stream(*calls), dialect.calls(*calls))
    model = chat(dialect, fake, False).bind_tools([get_weather])

    chunks = list(model.stream("weather in Oslo and Bergen?"))
    assert any(c.tool_call_chunks for c in chunks)
    streamed = merge(chunks)
    plain = model.invoke("weather in Oslo and Bergen?")

    def summary(m: AIMessage) -> list[tuple[str, dict[str, Any], str]]:
        return [(c["name"], c["args"], c["id"] or "") for c in m.tool_calls]

    assert [(n, a) for n, a, _ in summary(streamed)] == [
        ("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Bergen"})]
    assert summary(streamed) == summary(plain)
    assert all(i for _, _, i in summary(streamed))
    assert streamed.response_metadata["finish_reason"] == "tool_calls"


# --------------------------------------------------------------------------- tools


CHOICES: dict[str, dict[str, Any]] = {
    "any": {"openai": "required", "anthropic": {"type": "any"},
            "gemini": {"functionCallingConfig": {"mode": "ANY"}}},
    "required": {"openai": "required", "anthropic": {"type": "any"},
                 "gemini": {"functionCallingConfig": {"mode": "ANY"}}},
    "true": {"openai": "required", "anthropic": {"type": "any"},
             "gemini": {"functionCallingConfig": {"mode": "ANY"}}},
    "name": {"openai": {"type": "function", "function": {"name": "get_weather"}},
             "anthropic": {"type": "tool", "name": "get_weather"},
             "gemini": {"functionCallingConfig": {"mode": "ANY",
                                                  "allowedFunctionNames": ["get_weather"]}}},
    "auto": {"openai": "auto", "anthropic": {"type": "auto"},
             "gemini": {"functionCallingConfig": {"mode": "AUTO"}}},
    "none": {"openai": "none", "anthropic": {"type": "none"},
             "gemini": {"functionCallingConfig": {"mode": "NONE"}}},
}


@pytest.mark.parametrize("choice", list(CHOICES))
def test_bind_tools_tool_choice_reaches_each_dialect_in_its_own_wire_form(
    dialect: Script, choice: str, fake: FakeProvider
) -> None:
    value: Any = {"true": True, "name": "get_weather"}.get(choice, choice)
    fake.add(dialect.text("ok"))
    chat(dialect, fake, False).bind_tools([get_weather, Forecast], tool_choice=value).invoke("hi")
    body = fake.requests[0].json
    wire = body.get("toolConfig") if dialect.name == "gemini" else body.get("tool_choice")
    assert wire == CHOICES[choice][dialect.name]
    assert wire_tool_names(dialect, body) == ["get_weather", "Forecast"]


def test_bind_tools_rejects_a_tool_choice_that_names_no_bound_tool(fake: FakeProvider) -> None:
    model = chat(script("openai"), fake, False)
    with pytest.raises(tollway.errors.BadRequestError, match="not among the bound tools"):
        model.bind_tools([get_weather], tool_choice="get_time")


def test_bind_tools_takes_langchain_tools_pydantic_models_functions_and_dicts(
    fake: FakeProvider,
) -> None:
    def lookup(term: str, limit: int = 3) -> str:
        """Look a term up."""
        return term

    raw = {"type": "function", "function": {"name": "raw_dict", "description": "raw",
                                            "parameters": {"type": "object", "properties": {
                                                "q": {"type": "string"}}}}}
    anthropic_style = {"name": "anthropic_style", "description": "a", "input_schema": {
        "type": "object", "properties": {"n": {"type": "integer"}}}}
    fake.add(oai.text_reply("ok"))
    model = chat(script("openai"), fake, False)
    model.bind_tools([get_weather, Forecast, lookup, raw, anthropic_style]).invoke("hi")
    tools = {t["function"]["name"]: t["function"] for t in fake.requests[0].json["tools"]}
    assert list(tools) == ["get_weather", "Forecast", "lookup", "raw_dict", "anthropic_style"]
    assert tools["get_weather"]["parameters"]["properties"] == {"city": {"type": "string"}}
    assert tools["Forecast"]["description"] == "A forecast for a city."
    assert set(tools["lookup"]["parameters"]["properties"]) == {"term", "limit"}
    assert tools["anthropic_style"]["parameters"]["properties"] == {"n": {"type": "integer"}}


def test_tool_call_with_broken_json_arguments_becomes_an_invalid_tool_call(
    fake: FakeProvider,
) -> None:
    reply = oai.tool_call_reply([("get_weather", {"city": "Oslo"})])
    assert isinstance(reply.body, dict)
    reply.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"city": '
    fake.add(reply)
    message = chat(script("openai"), fake, False).bind_tools([get_weather]).invoke("hi")
    assert message.tool_calls == []
    [bad] = message.invalid_tool_calls
    assert (bad["name"], bad["args"]) == ("get_weather", '{"city": ')
    assert bad["error"] and "not JSON" in bad["error"]


def test_tool_results_go_back_as_tool_messages_answering_their_call(
    dialect: Script, fake: FakeProvider
) -> None:
    fake.add(dialect.calls(("get_weather", {"city": "Oslo"})), dialect.text("Sunny."))
    model = chat(dialect, fake, False).bind_tools([get_weather])
    history: list[Any] = [HumanMessage("weather in Oslo?")]
    ai = model.invoke(history)
    [call] = ai.tool_calls
    history += [ai, ToolMessage("sunny in Oslo", tool_call_id=call["id"])]
    assert model.invoke(history).content == "Sunny."
    sent = json.dumps(fake.requests[1].json)
    assert "sunny in Oslo" in sent
    if dialect.name != "gemini":  # Gemini pairs results with calls by name, not id
        assert call["id"] in sent


# --------------------------------------------------------------------------- request fields


def test_stop_sequences_from_the_model_and_from_invoke_reach_the_wire(
    dialect: Script, fake: FakeProvider
) -> None:
    fake.add(dialect.text("a"), dialect.text("b"))
    model = chat(dialect, fake, False, stop=["END"])
    model.invoke("hi")
    model.invoke("hi", stop=["STOP", "HALT"])

    def stops(body: dict[str, Any]) -> Any:
        if dialect.name == "gemini":
            return body["generationConfig"]["stopSequences"]
        return body["stop_sequences" if dialect.name == "anthropic" else "stop"]

    assert stops(fake.requests[0].json) == ["END"]
    assert stops(fake.requests[1].json) == ["STOP", "HALT"]


def test_model_options_and_unknown_keywords_reach_the_request_body(fake: FakeProvider) -> None:
    fake.add(oai.text_reply("a"), oai.text_reply("b"))
    model = chat(script("openai"), fake, False, temperature=0.2, max_tokens=64,
                 frequency_penalty=0.5)
    assert model.model_kwargs == {"frequency_penalty": 0.5}
    model.invoke("hi")
    model.bind(logprobs=True, temperature=0.9).invoke("hi")
    first, second = fake.requests[0].json, fake.requests[1].json
    assert (first["temperature"], first["frequency_penalty"]) == (0.2, 0.5)
    assert first["max_completion_tokens"] == 64
    assert (second["temperature"], second["logprobs"]) == (0.9, True)


def test_image_blocks_in_every_langchain_shape_reach_the_provider(fake: FakeProvider) -> None:
    b64 = base64.b64encode(PNG).decode()
    content: list[Any] = [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "url": "https://example.com/a.png"},
        {"type": "image", "base64": b64, "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg", "detail": "low"}},
        {"type": "image", "source_type": "base64", "data": b64, "mime_type": "image/png"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}},
    ]
    fake.add(oai.text_reply("Same."))
    chat(script("openai"), fake, False).invoke([HumanMessage(content=content)])
    [user] = fake.requests[0].json["messages"]
    parts = user["content"]
    assert parts[0] == {"type": "text", "text": "Compare these."}
    urls = [p["image_url"]["url"] for p in parts[1:]]
    data_url = f"data:image/png;base64,{b64}"
    assert urls == ["https://example.com/a.png", data_url, "https://example.com/b.jpg",
                    data_url, data_url]
    assert parts[3]["image_url"]["detail"] == "low"


def test_image_blocks_reach_anthropic_as_image_content_blocks(fake: FakeProvider) -> None:
    d = script("anthropic")
    b64 = base64.b64encode(PNG).decode()
    fake.add(d.text("A cat."))
    chat(d, fake, False).invoke([HumanMessage(content=[
        {"type": "text", "text": "What is it?"},
        {"type": "image", "base64": b64, "mime_type": "image/png"},
        {"type": "image", "url": "https://example.com/cat.png"},
    ])])
    blocks = fake.requests[0].json["messages"][0]["content"]
    images = [b for b in blocks if b["type"] == "image"]
    assert images[0]["source"] == {"type": "base64", "media_type": "image/png", "data": b64}
    assert images[1]["source"] == {"type": "url", "url": "https://example.com/cat.png"}


def test_an_unknown_content_block_is_a_clear_error(fake: FakeProvider) -> None:
    model = chat(script("openai"), fake, False)
    with pytest.raises(tollway.errors.BadRequestError, match="'hologram' is not supported"):
        model.invoke([HumanMessage(content=[{"type": "hologram", "data": "x"}])])
    assert fake.requests == []


# --------------------------------------------------------------------------- round trips


def test_anthropic_thinking_comes_back_as_reasoning_and_is_sent_back_with_its_signature(
    fake: FakeProvider,
) -> None:
    d = script("anthropic")
    fake.add(d.replies.text_reply("42.", thinking="Six times seven.", signature="sig-abc=="),
             d.text("Yes."))
    model = chat(d, fake, False)
    first = model.invoke("What is 6x7?")
    assert first.content == [
        {"type": "reasoning", "reasoning": "Six times seven.",
         "extras": {"signature": "sig-abc==", "provider": "anthropic"}},
        {"type": "text", "text": "42."},
    ]
    assert first.text == "42."
    model.invoke([HumanMessage("What is 6x7?"), first, HumanMessage("Sure?")])
    assistant = fake.requests[1].json["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {"type": "thinking", "thinking": "Six times seven.",
                                       "signature": "sig-abc=="}


def test_streamed_thinking_merges_into_the_same_message_as_the_plain_answer(
    fake: FakeProvider,
) -> None:
    d = script("anthropic")
    fake.add(d.replies.text_stream(["4", "2."], thinking=["Six ", "times seven."],
                                   signature="sig-xyz=="),
             d.replies.text_reply("42.", thinking="Six times seven.", signature="sig-xyz=="))
    model = chat(d, fake, False)
    streamed = merge(list(model.stream("6x7?")))
    plain = model.invoke("6x7?")

    def blocks(m: AIMessage) -> list[dict[str, Any]]:
        assert isinstance(m.content, list)
        return [{k: v for k, v in b.items() if k != "index"} for b in m.content
                if isinstance(b, dict)]

    assert blocks(streamed) == blocks(plain)


def test_gemini_thought_signature_on_a_tool_call_is_sent_back_next_turn(
    fake: FakeProvider,
) -> None:
    d = script("gemini")
    fake.add(d.calls(("get_weather", {"city": "Oslo"})), d.text("Sunny."))
    model = chat(d, fake, False).bind_tools([get_weather])
    ai = model.invoke("weather in Oslo?")
    [call] = ai.tool_calls
    model.invoke([HumanMessage("weather in Oslo?"), ai,
                  ToolMessage("sunny", tool_call_id=call["id"])])
    model_turn = fake.requests[1].json["contents"][1]
    assert model_turn["role"] == "model"
    [part] = model_turn["parts"]
    assert part["functionCall"]["name"] == "get_weather"
    assert part["thoughtSignature"] == d.replies.SIGNATURE


def test_gemini_thought_and_text_signature_are_sent_back_next_turn(fake: FakeProvider) -> None:
    d = script("gemini")
    fake.add(d.replies.text_reply("Answer.", thinking="Let me think."), d.text("ok"))
    model = chat(d, fake, False)
    ai = model.invoke("q")
    assert ai.content[0] == {"type": "reasoning", "reasoning": "Let me think.",  # type: ignore[index]
                             "extras": {"provider": "gemini"}}
    model.invoke([HumanMessage("q"), ai, HumanMessage("more")])
    assert fake.requests[1].json["contents"][1]["parts"] == [
        {"text": "Let me think.", "thought": True},
        {"text": "Answer.", "thoughtSignature": d.replies.SIGNATURE},
    ]


# --------------------------------------------------------------------------- attribution


def test_explicit_attribution_reaches_the_ledger_and_an_enclosing_scope_overrides_it(
    fake: FakeProvider, ledger: Ledger
) -> None:
    d = script("openai")
    fake.add(d.text("a"), d.text("b"))
    model = chat(d, fake, ledger, org="acme", project="search", user="alice",
                 tags={"team": "retrieval"})
    model.invoke("hi")
    with tollway.attribute(user="bob", tags={"env": "test"}):
        model.invoke("hi")
    first, second = records(ledger)
    assert (first.org, first.project, first.user) == ("acme", "search", "alice")
    assert first.tags == {"team": "retrieval"}
    assert (second.org, second.user) == ("acme", "bob")
    assert second.tags == {"team": "retrieval", "env": "test"}
    assert model.tags == ["team=retrieval"]  # also LangChain tracing tags


def test_a_denying_budget_surfaces_budget_exceeded_error_and_calls_no_provider(
    dialect: Script, fake: FakeProvider, ledger: Ledger
) -> None:
    budget = Budgets([{"scope": {"org": "acme"}, "limit": 0, "period": "day"}])
    model = chat(dialect, fake, ledger, org="acme", guards=[budget])
    with pytest.raises(BudgetExceededError) as denied:
        model.invoke("hi")
    assert "org=acme" in str(denied.value)
    with pytest.raises(BudgetExceededError):
        list(model.stream("hi"))
    assert fake.requests == []
    assert [r.status for r in records(ledger)] == ["BudgetExceededError"] * 2


def test_provider_errors_surface_as_tollway_errors(fake: FakeProvider) -> None:
    fake.add(oai.error_reply(429, "slow down", retry_after=3))
    with pytest.raises(RateLimitError) as err:
        chat(script("openai"), fake, False).invoke("hi")
    assert err.value.retry_after == 3


# --------------------------------------------------------------------------- identity


def test_model_profile_and_identity_describe_the_tollway_model(fake: FakeProvider) -> None:
    model = chat(script("anthropic"), fake, False, temperature=0.1)
    assert model.profile is not None
    assert model.profile.get("structured_output") is True
    assert model.profile.get("tool_calling") is True
    assert model.profile.get("tool_call_streaming") is True
    assert model._llm_type == "tollway"
    assert model._identifying_params == {"model": "anthropic/claude-sonnet-4-5",
                                         "temperature": 0.1}
    assert model.model_name == "claude-sonnet-4-5"
    assert "sk-test" not in repr(model) and "sk-test" not in json.dumps(model.asdict())


def test_a_shared_tollway_model_can_be_passed_as_client(fake: FakeProvider) -> None:
    fake.add(oai.text_reply("hi"))
    client = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, ledger=False)
    model = TollwayChatModel(client=client)
    assert model.model == "openai/gpt-4o-mini"
    assert model.tollway_model is client
    assert model.invoke("hi").content == "hi"


def test_a_model_without_target_or_client_is_a_config_error() -> None:
    with pytest.raises(tollway.errors.ConfigError, match="needs a model"):
        TollwayChatModel()


# --------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_with_fallbacks_falls_back_while_the_primary_cools_down(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    """LangChain's ``with_fallbacks`` catches what the adapter raises: the primary's
    failure first, then, while its one deployment cools down, the router's
    AllDeploymentsFailedError without any attempt (the provider is not called)."""
    fake.default = lambda r: (oai.error_reply(500, "down") if r.path.startswith("/primary")
                              else oai.text_reply("from the backup"))
    monkeypatch.setenv("TOLLWAY_LC_KEY", KEY)
    config = {
        "models": {
            "primary": [{"model": "openai/gpt-4o-mini", "api_base": f"{fake.url}/primary",
                         "api_key": "env:TOLLWAY_LC_KEY"}],
            "backup": [{"model": "openai/gpt-4o-mini", "api_base": f"{fake.url}/backup",
                        "api_key": "env:TOLLWAY_LC_KEY"}],
        },
        "router": {"retries": 0, "allowed_fails": 1, "cooldown": 60},
        "ledger": False,
    }
    primary = TollwayChatModel(client=tollway.Model("primary", config=config))
    backup = TollwayChatModel(client=tollway.Model("backup", config=config))
    chain = primary.with_fallbacks([backup])

    def invoke(runnable: Any) -> Any:
        return runnable.invoke("hi") if driver == "sync" else asyncio.run(runnable.ainvoke("hi"))

    assert [invoke(chain).content for _ in range(3)] == ["from the backup"] * 3
    paths = [r.path.split("/")[1] for r in fake.requests]
    assert paths == ["primary", "backup", "backup", "backup"]  # cooling: never retried
    with pytest.raises(tollway.errors.AllDeploymentsFailedError, match="cooling down") as info:
        invoke(primary)
    assert info.value.attempts == []
