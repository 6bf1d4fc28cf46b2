"""A gateway request with an incoming W3C ``traceparent``: the call's span is a child of
the client's span, the upstream provider receives the context of that span (same
trace), and the ledger trace id the client gets back is the client's trace id. A real
uvicorn server, the loopback fake provider, the SDK's in-memory exporter; JSON and SSE."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.otel import Otel
from tests.fakes.server import FakeProvider

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def header(span: object) -> str:
    ctx = span.get_span_context()  # type: ignore[attr-defined]
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_incoming_traceparent_parents_the_call_and_reaches_the_provider(
    gateway_server, fake: FakeProvider, otel: Otel, stream: bool
) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(org="acme", project="search")
    fake.add(oai.text_stream(["Hi", "!"]) if stream else oai.text_reply("Hi!"))
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    reply = httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=10, headers={
        "authorization": f"Bearer {secret}", "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert reply.status_code == 200
    span = otel.span("chat")
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CLIENT_SPAN
    assert span.parent.is_remote
    sent = fake.requests[0].headers["traceparent"]
    assert sent == header(span) and sent.split("-")[1] == CLIENT_TRACE
    assert span.attributes["tollway.key"] == key.id
    assert span.attributes["tollway.org"] == "acme"
    assert span.attributes.get("gen_ai.request.stream", False) is stream
    if not stream:
        assert reply.headers["x-tollway-trace-id"] == CLIENT_TRACE
    assert not any(secret in str(v) for v in span.attributes.values())
    (row,) = gw.ledger_rows()
    assert row["trace_id"] == CLIENT_TRACE


def test_without_a_traceparent_the_call_starts_its_own_trace(
    gateway_server, fake: FakeProvider, otel: Otel
) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(org="acme")
    fake.add(oai.text_reply("Hi!"))
    reply = httpx.post(f"{gw.url}/v1/chat/completions", timeout=10,
                       headers={"authorization": f"Bearer {secret}"},
                       json={"model": "fast", "messages": [{"role": "user", "content": "hello"}]})
    assert reply.status_code == 200
    span = otel.span("chat")
    assert span.parent is None
    assert reply.headers["x-tollway-trace-id"] == f"{span.context.trace_id:032x}"
    assert fake.requests[0].headers["traceparent"] == header(span)
