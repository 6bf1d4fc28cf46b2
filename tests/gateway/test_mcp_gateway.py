"""MCP at the gateway: chat clients with no tool code get MCP tool answers (the loop runs
in the gateway), and ``/mcp`` serves the permitted tools to MCP clients.

Real pieces throughout: uvicorn serving the gateway, the openai / anthropic / mcp SDK
clients, the fake providers scripted to call the tool, ``mcp-server-time`` over stdio
and the FastMCP toolbox over streamable HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import replies_anthropic as anth
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.clients import DRIVERS, anthropic_call, openai_call
from tests.mcp.conftest import BIN, RunningServer

TIME = {"command": str(BIN / "mcp-server-time"), "args": ["--local-timezone", "UTC"],
        "env": {"PATH": str(BIN)}}
UPSTREAM_TOKEN = "sk-upstream-mcp-token-0123456789"


def sections(web: RunningServer, **gateway: Any) -> dict[str, Any]:
    return {
        "mcp": {
            "time": TIME,
            "web": {"url": web.url, "bearer_token": UPSTREAM_TOKEN},
            "relay": {"url": web.url, "forward_authorization": True},
        },
        "gateway": {"mcp_aliases": {"fast": ["time"], "claude": ["time"]}, **gateway},
    }


def tool_rows(rows: list[Any]) -> list[Any]:
    return [r for r in rows if r["kind"] == "tool"]


def model_rows(rows: list[Any]) -> list[Any]:
    return [r for r in rows if r["kind"] != "tool"]


# --------------------------------------------------------------------------- chat


@pytest.mark.parametrize("driver", DRIVERS)
def test_openai_client_gets_the_time_tool_answer_run_by_the_gateway(
    driver: str, gateway_server, fake: FakeProvider, web: RunningServer
) -> None:
    gw = gateway_server(**sections(web))
    secret, key = gw.create_key(org="acme", models=["fast"], mcp=["time"])
    fake.add(oai.tool_call_reply([("time__get_current_time", {"timezone": "Europe/Oslo"})]),
             oai.text_reply("It is evening in Oslo."))

    reply = openai_call(driver, gw.url, secret, "chat.completions.with_raw_response.create",
                        model="fast", messages=[{"role": "user", "content": "Time in Oslo?"}])

    completion = reply.parse()
    assert completion.choices[0].message.content == "It is evening in Oslo."
    assert completion.choices[0].message.tool_calls is None
    assert reply.headers["x-tollway-mcp-rounds"] == "2"
    first, second = fake.requests[-2].json, fake.requests[-1].json
    assert sorted(t["function"]["name"] for t in first["tools"]) == [
        "time__convert_time", "time__get_current_time"]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"])["timezone"] == "Europe/Oslo"  # the real server ran
    rows = gw.ledger_rows()
    [tool] = tool_rows(rows)
    rounds = model_rows(rows)
    assert len(rounds) == 2
    assert (tool["tool_server"], tool["tool_name"], tool["status"], tool["key"], tool["org"]) == (
        "time", "get_current_time", "ok", key.id, "acme")
    assert {r["trace_id"] for r in rows} == {reply.headers["x-tollway-trace-id"]}
    assert all(r["key"] == key.id for r in rounds)


@pytest.mark.parametrize("driver", DRIVERS)
def test_openai_stream_streams_the_final_round(
    driver: str, gateway_server, fake: FakeProvider, web: RunningServer
) -> None:
    gw = gateway_server(**sections(web))
    secret, key = gw.create_key(models=["fast"], mcp=["time:get_current_time"])
    fake.add(oai.tool_call_stream([("time__get_current_time", {"timezone": "UTC"})]),
             oai.text_stream(["It is ", "noon ", "UTC."]))

    chunks = openai_call(driver, gw.url, secret, "chat.completions.create", model="fast",
                         messages=[{"role": "user", "content": "Time?"}], stream=True,
                         stream_options={"include_usage": True})

    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == ["It is ", "noon ", "UTC."]  # streamed piece by piece, not in one go
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None
    rows = gw.ledger_rows()
    assert len(model_rows(rows)) == 2 and len(tool_rows(rows)) == 1
    assert len({r["trace_id"] for r in rows}) == 1
    assert all(r["key"] == key.id for r in rows)
    offered = [t["function"]["name"] for t in fake.requests[-2].json["tools"]]
    assert offered == ["time__get_current_time"]  # the grant names one tool: convert_time is absent


@pytest.mark.parametrize("driver", DRIVERS)
def test_anthropic_client_gets_the_tool_answer_plain_and_streamed(
    driver: str, gateway_server, fake: FakeProvider, web: RunningServer
) -> None:
    gw = gateway_server(**sections(web))
    secret, key = gw.create_key(models=["claude"], mcp=["time"])
    fake.add(anth.tool_call_reply([("time__get_current_time", {"timezone": "Asia/Tokyo"})]),
             anth.text_reply("It is morning in Tokyo."))
    message = anthropic_call(driver, gw.url, secret, "messages.create", model="claude",
                             max_tokens=200, messages=[{"role": "user", "content": "Tokyo time?"}])
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "It is morning in Tokyo."
    sent = fake.requests[-1].json["messages"][-1]["content"][0]
    assert sent["type"] == "tool_result" and "Asia/Tokyo" in json.dumps(sent["content"])

    fake.add(anth.tool_call_stream([("time__get_current_time", {"timezone": "UTC"})]),
             anth.text_stream(["Noon ", "UTC."]))
    events = anthropic_call(driver, gw.url, secret, "messages.create", model="claude",
                            max_tokens=200, stream=True,
                            messages=[{"role": "user", "content": "Time?"}])
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"
              and e.delta.type == "text_delta"]
    assert deltas == ["Noon ", "UTC."]
    assert not any(e.type == "content_block_start" and e.content_block.type == "tool_use"
                   for e in events)
    rows = gw.ledger_rows()
    assert len(tool_rows(rows)) == 2 and len(model_rows(rows)) == 4
    assert all(r["key"] == key.id for r in rows)


def test_a_key_without_mcp_grants_gets_no_tools_and_the_log_says_why(
    gateway_server, fake: FakeProvider, web: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_server(**sections(web))
    secret, key = gw.create_key(models=["fast"])  # no --mcp: deny by default
    fake.add(oai.text_reply("I cannot look that up."))
    with caplog.at_level(logging.WARNING, logger="tollway.gateway.mcp"):
        reply = openai_call("sync", gw.url, secret, "chat.completions.create", model="fast",
                            messages=[{"role": "user", "content": "Time?"}])
    assert reply.choices[0].message.content == "I cannot look that up."
    assert "tools" not in fake.requests[-1].json
    assert any(key.id in r.getMessage() and "no MCP grant" in r.getMessage() for r in caplog.records)


def test_client_tools_come_back_to_the_client_and_a_name_collision_is_400(
    gateway_server, fake: FakeProvider, web: RunningServer
) -> None:
    gw = gateway_server(**sections(web))
    secret, _ = gw.create_key(models=["fast"], mcp=["time"])
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    fake.add(oai.tool_call_reply([("lookup", {"q": "x"}), ("time__get_current_time", {"timezone": "UTC"})]))
    reply = openai_call("sync", gw.url, secret, "chat.completions.create", model="fast",
                        messages=[{"role": "user", "content": "?"}], tools=[lookup])
    names = sorted(t["function"]["name"] for t in fake.requests[-1].json["tools"])
    assert names == ["lookup", "time__convert_time", "time__get_current_time"]
    [call] = reply.choices[0].message.tool_calls  # the MCP call of that answer is dropped
    assert call.function.name == "lookup"
    assert not tool_rows(gw.ledger_rows())

    clash = {"type": "function", "function": {"name": "time__get_current_time"}}
    with pytest.raises(openai.BadRequestError) as caught:
        openai_call("sync", gw.url, secret, "chat.completions.create", model="fast",
                    messages=[{"role": "user", "content": "?"}], tools=[clash])
    assert "time__get_current_time" in str(caught.value) and "rename" in str(caught.value)


def test_chat_tools_get_the_configured_credential_or_the_forwarded_one(
    gateway_server, fake: FakeProvider, web: RunningServer
) -> None:
    config = sections(web)
    config["gateway"]["mcp_aliases"] = {"fast": ["web", "relay"]}
    gw = gateway_server(**config)
    secret, _ = gw.create_key(models=["fast"], mcp=["web:whoami", "relay:whoami"])
    fake.add(oai.tool_call_reply([("web__whoami", {}), ("relay__whoami", {})]),
             oai.text_reply("ok"))
    openai_call("sync", gw.url, secret, "chat.completions.create", model="fast",
                messages=[{"role": "user", "content": "who?"}])
    seen = {m["tool_call_id"]: m["content"] for m in fake.requests[-1].json["messages"]
            if m["role"] == "tool"}
    assert sorted(seen.values()) == sorted([f"Bearer {UPSTREAM_TOKEN}", f"Bearer {secret}"])
    web_call = oai.call_id("web__whoami", 0)
    assert seen[web_call] == f"Bearer {UPSTREAM_TOKEN}"  # never the client's key


def test_key_budget_applies_to_every_round(
    gateway_server, fake: FakeProvider, web: RunningServer
) -> None:
    gw = gateway_server(**sections(web))
    secret, _ = gw.create_key(models=["fast"], mcp=["time"], budgets=["1 requests/day"])
    fake.add(oai.tool_call_reply([("time__get_current_time", {"timezone": "UTC"})]),
             oai.text_reply("never sent"))
    with pytest.raises(openai.RateLimitError):
        openai_call("sync", gw.url, secret, "chat.completions.create", model="fast",
                    messages=[{"role": "user", "content": "Time?"}])
    assert len(fake.requests) == 1  # the second round was refused before reaching the provider


def test_an_unreachable_mcp_server_is_a_502_naming_it_and_spares_other_aliases(
    gateway_server, fake: FakeProvider, web: RunningServer
) -> None:
    from tests.gateway.conftest import free_port

    config = sections(web)
    config["mcp"]["down"] = {"url": f"http://127.0.0.1:{free_port()}/mcp", "connect_timeout": 2}
    config["gateway"]["mcp_aliases"]["gem"] = ["down"]
    gw = gateway_server(**config)
    secret, _ = gw.create_key(models=["fast", "gem"], mcp=["*"])
    with pytest.raises(openai.APIStatusError) as caught:
        openai_call("sync", gw.url, secret, "chat.completions.create", model="gem",
                    messages=[{"role": "user", "content": "?"}])
    assert caught.value.status_code == 502 and "down" in str(caught.value)
    assert not fake.requests  # no model round was paid for
    fake.add(oai.text_reply("fine"))
    reply = openai_call("sync", gw.url, secret, "chat.completions.create", model="fast",
                        messages=[{"role": "user", "content": "?"}])
    assert reply.choices[0].message.content == "fine"


# --------------------------------------------------------------------------- /mcp


def mcp_session(url: str, key: str | None, action: Any) -> Any:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def run() -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        async with streamablehttp_client(f"{url}/mcp", headers=headers) as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await action(session)

    return asyncio.run(run())


def test_mcp_endpoint_lists_and_calls_the_permitted_tools(
    gateway_server, web: RunningServer
) -> None:
    gw = gateway_server(**sections(web))
    secret, key = gw.create_key(org="acme", mcp=["time", "web:echo", "web:whoami"])

    async def use(session: Any) -> Any:
        listed = await session.list_tools()
        echoed = await session.call_tool("web__echo", {"text": "hi"})
        now = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
        denied = await session.call_tool("web__add", {"a": 1, "b": 2})
        who = await session.call_tool("web__whoami", {})
        return listed, echoed, now, denied, who

    listed, echoed, now, denied, who = mcp_session(gw.url, secret, use)
    names = sorted(t.name for t in listed.tools)
    assert names == ["time__convert_time", "time__get_current_time", "web__echo", "web__whoami"]
    assert not echoed.isError and echoed.content[0].text == "[web] hi"
    assert json.loads(now.content[0].text)["timezone"] == "UTC"
    assert denied.isError and "no grant" in denied.content[0].text
    # the server entry's own token went upstream, never the client's key
    assert who.content[0].text == f"Bearer {UPSTREAM_TOKEN}"
    rows = tool_rows(gw.ledger_rows())
    assert [(r["tool_server"], r["tool_name"], r["key"], r["org"]) for r in rows] == [
        ("web", "echo", key.id, "acme"), ("time", "get_current_time", key.id, "acme"),
        ("web", "whoami", key.id, "acme")]


def test_mcp_endpoint_forwards_the_client_authorization_only_when_configured(
    gateway_server, web: RunningServer
) -> None:
    gw = gateway_server(**sections(web))
    secret, _ = gw.create_key(mcp=["relay:whoami"])

    async def use(session: Any) -> Any:
        listed = await session.list_tools()
        return listed, await session.call_tool("relay__whoami", {})

    listed, who = mcp_session(gw.url, secret, use)
    assert [t.name for t in listed.tools] == ["relay__whoami"]
    assert who.content[0].text == f"Bearer {secret}"


def test_mcp_endpoint_denies_by_default_and_needs_a_key(
    gateway_server, web: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_server(**sections(web))
    secret, key = gw.create_key()

    async def use(session: Any) -> Any:
        return await session.list_tools(), await session.call_tool("time__get_current_time",
                                                                    {"timezone": "UTC"})

    with caplog.at_level(logging.WARNING, logger="tollway.gateway.mcp"):
        listed, refused = mcp_session(gw.url, secret, use)
    assert listed.tools == []
    assert refused.isError and key.id in refused.content[0].text
    assert any("no MCP grant" in r.getMessage() for r in caplog.records)
    assert not tool_rows(gw.ledger_rows())

    no_key = httpx.post(f"{gw.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert no_key.status_code == 401
    assert "missing API key" in no_key.text


def test_mcp_grants_from_the_admin_api_and_old_keys_read_as_none(
    gateway_server, web: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tollway.gateway.keys import VirtualKey

    old = VirtualKey.from_spec(id="key_old", prefix="sk-tw-abcdef", spec={"models": None},
                               created_at=0.0, expires_at=None, revoked_at=None)
    assert old.mcp == () and not old.mcp_allows("time")
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", "sk-admin-test-0123456789")
    gw = gateway_server(**sections(web))
    headers = {"Authorization": "Bearer sk-admin-test-0123456789"}
    made = httpx.post(f"{gw.url}/admin/keys", headers=headers, json={"mcp": "time,web:echo"})
    assert made.status_code == 201, made.text
    assert made.json()["mcp"] == ["time", "web:echo"]
    bad = httpx.post(f"{gw.url}/admin/keys", headers=headers, json={"mcp": ["web:"]})
    assert bad.status_code == 400 and "server:tool" in bad.text

    listed = mcp_session(gw.url, made.json()["key"], lambda s: s.list_tools())
    assert sorted(t.name for t in listed.tools) == [
        "time__convert_time", "time__get_current_time", "web__echo"]
