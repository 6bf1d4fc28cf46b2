"""Streams through the gateway: a client hanging up cancels the upstream stream and what
was produced so far is priced and recorded as ``cancelled``; a shutdown lets streams in
flight finish."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.fakes import replies_anthropic as ant
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.clients import DRIVERS

PIECES = [f"word{i} " for i in range(30)]


def read_then_hang_up(driver: str, url: str, secret: str, body: dict[str, Any], lines: int) -> list[str]:
    """Open a streamed call, read ``lines`` SSE data lines, then close the connection."""
    headers = {"authorization": f"Bearer {secret}"}
    got: list[str] = []
    if driver == "sync":
        with httpx.Client(timeout=10) as client, client.stream(
            "POST", url + "/v1/chat/completions", json=body, headers=headers
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    got.append(line)
                    if len(got) >= lines:
                        break
        return got

    async def run() -> list[str]:
        async with httpx.AsyncClient(timeout=10) as client, client.stream(
            "POST", url + "/v1/chat/completions", json=body, headers=headers
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    got.append(line)
                    if len(got) >= lines:
                        break
        return got

    return asyncio.run(run())


def wait_for_rows(gw: Any, count: int, within: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + within
    while True:
        rows = gw.ledger_rows()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


@pytest.mark.parametrize("driver", DRIVERS)
def test_client_disconnect_cancels_the_upstream_and_records_what_was_used(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, key = gw.create_key()
    reply = ant.text_stream(PIECES)
    reply.chunk_delay = 0.1  # 30+ chunks: about 3.5 s if read to the end
    fake.add(reply)
    body = {"model": "claude", "stream": True, "messages": [{"role": "user", "content": "talk"}]}

    started = time.monotonic()
    got = read_then_hang_up(driver, gw.url, secret, body, lines=3)
    assert len(got) == 3
    [row] = wait_for_rows(gw, 1)

    assert row["status"] == "cancelled"
    assert row["key"] == key.id
    assert row["input_tokens"] == 212 + 1536  # reported by message_start before the hang-up
    assert row["cost_nanos"] > 0
    assert row["latency_ms"] < 2_000  # the upstream read stopped; it did not run to the end
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("driver", DRIVERS)
def test_budget_reservation_of_a_cancelled_stream_is_settled_not_leaked(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(budgets=["5 usd/day"])
    reply = ant.text_stream(PIECES)
    reply.chunk_delay = 0.1
    fake.add(reply)
    body = {"model": "claude", "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    read_then_hang_up(driver, gw.url, secret, body, lines=2)
    [row] = wait_for_rows(gw, 1)
    assert row["status"] == "cancelled"
    deadline = time.monotonic() + 3
    while True:
        [counter] = [c for c in gw.gateway.guard.store.counters(time.time()) if key.id in c.key]
        if counter.reserved == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert counter.reserved == 0
    assert counter.spent == row["cost_nanos"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_openai_stream_cut_by_the_client_is_charged_an_estimate(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    """OpenAI reports usage only in its last chunk: a hang-up before it leaves no usage
    to record, so the row carries the estimate (marked) and the budget is charged it."""
    from tollway.core.streams import ESTIMATED_MARK

    gw = gateway_server()
    secret, key = gw.create_key(budgets=["5 usd/day"])
    reply = oai.text_stream(PIECES)
    reply.chunk_delay = 0.1
    fake.add(reply)
    body = {"model": "fast", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "talk to me for a while"}]}
    got = read_then_hang_up(driver, gw.url, secret, body, lines=4)
    [row] = wait_for_rows(gw, 1)
    assert row["status"] == "cancelled"
    assert ESTIMATED_MARK in row["error"]
    received = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in got)
    assert received.startswith("word0 ")
    assert row["output_tokens"] >= -(-len(received) // 4)  # what reached the client, at least
    assert row["output_tokens"] < -(-len("".join(PIECES)) // 4)  # not the whole answer
    assert row["input_tokens"] > 0
    assert row["cost_nanos"] > 0
    deadline = time.monotonic() + 3
    while True:
        [counter] = [c for c in gw.gateway.guard.store.counters(time.time()) if key.id in c.key]
        if counter.reserved == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert (counter.reserved, counter.spent) == (0, row["cost_nanos"])


def test_shutdown_lets_a_stream_in_flight_finish(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    reply = oai.text_stream([f"p{i}" for i in range(10)])
    reply.chunk_delay = 0.1
    fake.add(reply)
    lines: list[str] = []
    first = threading.Event()

    def client() -> None:
        with httpx.stream("POST", gw.url + "/v1/chat/completions", timeout=10,
                          headers={"authorization": f"Bearer {secret}"},
                          json={"model": "fast", "stream": True,
                                "messages": [{"role": "user", "content": "go"}]}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    lines.append(line)
                    first.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert first.wait(5)
    gw.stop()  # graceful: the server stops accepting and waits for the stream
    thread.join(10)
    assert lines[-1] == "data: [DONE]"
    text = "".join(line for line in lines)
    assert all(f"p{i}" in text for i in range(10))
    with pytest.raises(httpx.ConnectError):
        httpx.get(gw.url + "/health/live")
