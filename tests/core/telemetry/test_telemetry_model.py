"""Model calls as OpenTelemetry GenAI spans and metrics, against the loopback fake
provider, recorded by the SDK's in-memory exporter and reader (both drivers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tollway
from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.otel import Otel, otel_session
from tests.fakes.server import FakeProvider
from tollway import errors
from tollway.core.config import TollwaySettings
from tollway.core.types import StreamEnd, TextDelta, Usage

KEY = "sk-test-secret-key-0123456789"
USAGE = Usage(input_tokens=120, output_tokens=7, cache_read_tokens=100)


def make(fake: FakeProvider, **kw: Any) -> tollway.Model:
    kw.setdefault("ledger", False)
    return tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=fake.url, **kw)


def traceparent(span: Any) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def no_secret_in(span: Any) -> None:
    values = [str(v) for v in span.attributes.values()]
    values += [str(v) for e in span.events for v in e.attributes.values()]
    assert not any(KEY in v for v in values)


def test_a_chat_call_is_one_client_span_with_the_conventions_attributes(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    fake.add(oai.text_reply("Paris.", usage=USAGE))
    with tollway.attribute(org="acme", project="search", user="alice", tags={"team": "ml"}):
        response = driver.complete(make(fake), "Capital of France?", temperature=0.2,
                                   max_tokens=50, seed=7)
    span = otel.span("chat")
    from opentelemetry.trace import SpanKind, StatusCode

    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    a = span.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == oai.MODEL
    assert a["gen_ai.response.id"] == response.id and response.id.startswith("chatcmpl-")
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.max_tokens"],
            a["gen_ai.request.seed"]) == (0.2, 50, 7)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"],
            a["gen_ai.usage.cache_read.input_tokens"]) == (120, 7, 100)
    assert response.cost is not None
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(float(response.cost))
    assert a["gen_ai.usage.cost.currency"] == "USD"
    assert a["tollway.cost.nanos_usd"] == response.cost_nanos
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", fake.port)
    assert a["tollway.deployment"] == "openai/gpt-4o-mini"
    assert (a["tollway.org"], a["tollway.project"], a["tollway.user"], a["tollway.tag.team"]) == (
        "acme", "search", "alice", "ml")
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    # tollway's trace id (the ledger's) is the span's trace id; the provider got its context
    assert response.trace_id == a["tollway.trace_id"] == f"{span.context.trace_id:032x}"
    assert fake.requests[0].headers["traceparent"] == traceparent(span)
    no_secret_in(span)


def test_a_chat_call_records_token_usage_and_duration_metrics(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    fake.add(oai.text_reply("Paris.", usage=USAGE))
    driver.complete(make(fake), "Capital of France?")
    tokens = {p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")}
    assert (tokens["input"].sum, tokens["output"].sum) == (120, 7)
    assert tokens["input"].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert tokens["input"].attributes["gen_ai.provider.name"] == "openai"
    assert tokens["input"].explicit_bounds[:3] == (1, 4, 16)
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1 and 0 < duration.sum < 5
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert "error.type" not in duration.attributes
    (cost,) = otel.points("tollway.client.cost")
    assert cost.value > 0


def test_the_span_is_a_child_of_the_callers_current_span(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    fake.add(oai.text_reply("ok"))
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("request handler") as outer:
        response = driver.complete(make(fake), "hi")
    span = otel.span("chat")
    assert span.parent is not None and span.parent.span_id == outer.get_span_context().span_id
    assert span.context.trace_id == outer.get_span_context().trace_id
    assert response.trace_id == f"{outer.get_span_context().trace_id:032x}"


def test_an_explicit_tollway_trace_id_is_kept_and_linked(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    fake.add(oai.text_reply("ok"))
    with tollway.trace("feedfacefeedfacefeedfacefeedface"):
        response = driver.complete(make(fake), "hi")
    assert response.trace_id == "feedfacefeedfacefeedfacefeedface"
    assert otel.span("chat").attributes["tollway.trace_id"] == response.trace_id


def test_a_stream_span_ends_with_the_stream_and_has_time_to_first_chunk(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    fake.add(oai.text_stream(["Hel", "lo", "!"], usage=Usage(input_tokens=50, output_tokens=3)))
    seen_open: list[int] = []

    def note(event: Any) -> bool:
        seen_open.append(len(otel.spans("chat")))  # no finished span while streaming
        return False

    stream = driver.stream_collect(make(fake), "hi", until=note)
    assert stream.events[-1].__class__ is StreamEnd
    assert set(seen_open[:-1]) == {0}
    span = otel.span("chat")
    a = span.attributes
    assert a["gen_ai.request.stream"] is True
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (50, 3)
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(
        stream.response.time_to_first_token)
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < 5
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert fake.requests[0].headers["traceparent"] == traceparent(span)
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1


def test_a_stream_closed_early_ends_its_span_as_cancelled_not_as_an_error(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    reply = oai.text_stream(["a", "b", "c", "d"])
    reply.chunk_delay = 0.05
    fake.add(reply)
    driver.stream_collect(make(fake), "hi", until=lambda e: isinstance(e, TextDelta))
    span = otel.span("chat")
    from opentelemetry.trace import StatusCode

    assert span.attributes["tollway.cancelled"] is True
    assert span.attributes["error.type"] == "cancelled"
    assert span.status.status_code is not StatusCode.ERROR
    assert span.end_time is not None


def test_a_stream_cut_after_its_first_token_ends_its_span_as_an_error(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    reply = oai.text_stream(["a", "b", "c", "d"])
    reply.cut_after = 3
    fake.add(reply)
    with pytest.raises(errors.ConnectionError) as info:
        driver.stream_collect(make(fake), "hi")
    span = otel.span("chat")
    from opentelemetry.trace import StatusCode

    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(info.value).__name__ == "ConnectionError"
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "ConnectionError"


def test_failed_attempts_are_events_on_one_span_and_the_call_succeeds(
    servers: Callable[[], FakeProvider], driver: Driver, otel: Otel
) -> None:
    a, b = servers(), servers()
    for server in (a, b):
        server.add(oai.error_reply(500, "the server had an error"))
        server.default = oai.text_reply("fine")
    cfg = TollwaySettings.from_dict({
        "models": {"smart": [_deployment(a, "A"), _deployment(b, "B")]},
        "router": {"backoff": {"base": 0.01, "max": 0.02}},
    })
    response = driver.complete(tollway.Model("smart", config=cfg, ledger=False), "hi")
    assert response.text == "fine"
    (span,) = otel.spans("chat")
    failed = [e for e in span.events if e.name == "tollway.attempt_failed"]
    assert sorted(e.attributes["tollway.deployment"] for e in failed) == ["A", "B"]
    assert {e.attributes["error.type"] for e in failed} == {"ServerError"}
    assert {e.attributes["http.response.status_code"] for e in failed} == {500}
    a_ = span.attributes
    assert a_["tollway.failed_attempts"] == 2
    assert a_["tollway.deployment"] == response.deployment
    assert a_["tollway.alias"] == "smart"
    assert span.name == "chat gpt-4o-mini"
    assert "error.type" not in a_
    no_secret_in(span)


def test_a_call_that_fails_everywhere_is_an_error_span_with_error_type(
    servers: Callable[[], FakeProvider], driver: Driver, otel: Otel
) -> None:
    a = servers()
    a.default = oai.error_reply(500, "the server had an error")
    cfg = TollwaySettings.from_dict({
        "models": {"smart": [_deployment(a, "A")]},
        "router": {"retries": 1, "backoff": {"base": 0.01, "max": 0.02}},
    })
    with pytest.raises(errors.AllDeploymentsFailedError):
        driver.complete(tollway.Model("smart", config=cfg, ledger=False), "hi")
    span = otel.span("chat")
    from opentelemetry.trace import StatusCode

    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "AllDeploymentsFailedError"
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert len([e for e in span.events if e.name == "tollway.attempt_failed"]) == 2
    assert any(e.name == "exception" for e in span.events)
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "AllDeploymentsFailedError"
    no_secret_in(span)


def test_prompts_and_outputs_are_recorded_only_when_opted_in_and_known_secrets_masked(
    fake: FakeProvider, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add(oai.text_reply("Bonjour."))
    with otel_session(monkeypatch, capture_content=True) as otel:
        driver.complete(make(fake), [{"role": "system", "content": "Translate."},
                                     {"role": "user", "content": f"Hello, my key is {KEY}"}])
    a = otel.span("chat").attributes
    sent = json.loads(a["gen_ai.input.messages"])
    assert sent[0] == {"role": "system", "parts": [{"type": "text", "content": "Translate."}]}
    assert sent[1]["role"] == "user" and sent[1]["parts"][0]["content"].startswith("Hello, my key is")
    assert KEY not in a["gen_ai.input.messages"]
    out = json.loads(a["gen_ai.output.messages"])
    assert out == [{"role": "assistant", "parts": [{"type": "text", "content": "Bonjour."}],
                    "finish_reason": "stop"}]


def test_telemetry_off_sends_no_traceparent_and_records_nothing(
    fake: FakeProvider, driver: Driver, otel: Otel
) -> None:
    from tollway.core.telemetry import disable

    disable()
    fake.add(oai.text_reply("ok"))
    driver.complete(make(fake), "hi")
    assert "traceparent" not in fake.requests[0].headers
    assert otel.spans() == []


def test_propagation_can_be_turned_off(fake: FakeProvider, driver: Driver,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tollway.core.telemetry import enable

    with otel_session(monkeypatch) as otel:
        enable(propagate=False, tracer_provider=otel.tracer_provider)
        fake.add(oai.text_reply("ok"))
        driver.complete(make(fake), "hi")
        assert "traceparent" not in fake.requests[0].headers
        assert len(otel.spans("chat")) == 1


# --------------------------------------------------------------------------- switch


def test_a_call_with_telemetry_off_never_imports_opentelemetry(fake: FakeProvider) -> None:
    fake.add(oai.text_reply("ok"))
    script = (
        "import sys, tollway\n"
        f"m = tollway.Model('openai/gpt-4o-mini', api_key={KEY!r}, api_base={fake.url!r}, "
        "ledger=False, config=False)\n"
        "r = m.complete('hi')\n"
        "assert r.text == 'ok', r.text\n"
        "print(sorted(n for n in sys.modules if n.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_OTEL"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def restore_switch() -> Iterator[None]:
    from tollway.core.telemetry import switch

    before = (switch.current, switch.resolved)
    yield
    switch.current, switch.resolved = before


def test_the_config_section_turns_telemetry_on_and_tollway_otel_0_keeps_it_off(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, restore_switch: None
) -> None:
    from tollway.core.telemetry import switch

    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    cfg = {"models": {"fast": [{"model": "openai/gpt-4o-mini", "api_base": fake.url,
                                "api_key": "env:TW_TEST_KEY"}]},
           "telemetry": {"enabled": True, "capture_content": True}}
    monkeypatch.setenv("TW_TEST_KEY", KEY)
    switch.current, switch.resolved = None, True
    monkeypatch.setenv("TOLLWAY_OTEL", "0")
    tollway.Model("fast", config=TollwaySettings.from_dict(cfg), ledger=False)
    assert switch.current is None
    monkeypatch.delenv("TOLLWAY_OTEL")
    tollway.Model("fast", config=TollwaySettings.from_dict(cfg), ledger=False)
    assert switch.current is not None and switch.current.capture_content is True


def test_a_bad_switch_value_or_telemetry_key_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_switch: None
) -> None:
    from tollway.core.telemetry import resolve, switch

    switch.resolved = False
    monkeypatch.setenv("TOLLWAY_OTEL", "maybe")
    with pytest.raises(errors.ConfigError, match="TOLLWAY_OTEL='maybe'"):
        resolve()
    path = tmp_path / "tollway.yaml"
    path.write_text("models:\n  fast: openai/gpt-4o-mini\ntelemetry:\n  enabled: true\n"
                    "  capture_contents: true\n")
    with pytest.raises(errors.ConfigError) as info:
        TollwaySettings.load(path)
    assert "tollway.yaml:5" in str(info.value)
    assert "did you mean 'capture_content'" in str(info.value)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def servers() -> Iterator[Callable[[], FakeProvider]]:
    started: list[FakeProvider] = []

    def make_server() -> FakeProvider:
        server = FakeProvider().start()
        started.append(server)
        return server

    yield make_server
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOLLWAY_TEST_KEY", KEY)
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def _deployment(server: FakeProvider, name: str) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "api_base": server.url,
            "api_key": "env:TOLLWAY_TEST_KEY", "name": name}
