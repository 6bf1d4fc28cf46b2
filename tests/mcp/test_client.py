"""MCPClient against real servers: the FastMCP toolbox over stdio, streamable HTTP and
SSE, a server that answers with JSON-RPC errors (2.x style), and mcp-server-time.

Most tests share one client (module-scoped: the servers take a second to start); the
tests that kill or crash a server get their own.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.mcp.conftest import (
    RunningServer,
    free_port,
    process_alive,
    rpc_errors,
    spawn_toolbox,
    time_server,
    toolbox,
)
from tollway.core.cost.attribution import attribute
from tollway.core.stores.open import open_ledger
from tollway.core.tracing import trace
from tollway.core.types import Image
from tollway.mcp import (
    HTTPServer,
    MCPClient,
    MCPConnectionError,
    MCPProtocolError,
    MCPTimeoutError,
    MCPUnknownToolError,
    StdioServer,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "mcp-token-0123456789abcdef"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(http_toolbox: RunningServer, sse_toolbox: RunningServer) -> AsyncIterator[MCPClient]:
    servers = [
        toolbox("toolbox", page_size=3),
        toolbox("other", allow=["echo", "count", "pid", "f*"], deny=["fail"]),
        toolbox("slow", allow=["hang", "echo"], call_timeout=0.5),
        rpc_errors(),
        http_toolbox.config(bearer_token=TOKEN),
        sse_toolbox.config(headers={"Authorization": "Bearer sse-header-value"}),
    ]
    async with MCPClient(servers) as mcp:
        yield mcp


async def test_lists_every_page_of_tools_and_applies_allow_and_deny(client: MCPClient) -> None:
    names = {t.exposed_name for t in await client.list_tools()}
    toolbox_tools = {n.removeprefix("toolbox__") for n in names if n.startswith("toolbox__")}
    assert toolbox_tools == {
        "echo", "add", "count", "pid", "hang", "fail", "crash", "describe", "picture",
        "stats", "grow", "whoami",
    }  # 12 tools served 3 per page
    assert {n for n in names if n.startswith("other__")} == {"other__echo", "other__count", "other__pid"}
    assert {n for n in names if n.startswith("slow__")} == {"slow__hang", "slow__echo"}
    assert {"web__echo", "legacy__echo", "rpc__ping", "rpc__vanished"} <= names


async def test_catalog_tools_have_self_contained_schemas(client: MCPClient) -> None:
    catalog = await client.catalog()
    describe = catalog.get("toolbox__describe")
    assert describe is not None and describe.server == "toolbox" and describe.name == "describe"
    params = describe.tool.parameters
    assert "$ref" not in json.dumps(params) and "$defs" not in params
    person = params["properties"]["person"]
    assert person["properties"]["home"]["properties"]["city"]["type"] == "string"
    assert catalog.get("toolbox__count").tool.parameters == {  # type: ignore[union-attr]
        "type": "object", "properties": {}, "additionalProperties": False,
    }


async def test_two_servers_with_the_same_tool_name_both_work(client: MCPClient) -> None:
    first, second = await asyncio.gather(
        client.call_tool("toolbox__echo", {"text": "hi"}),
        client.call_tool("other__echo", {"text": "hi"}),
    )
    assert (first.text, second.text) == ("[toolbox] hi", "[other] hi")
    assert (first.server, second.server) == ("toolbox", "other")


@pytest.mark.parametrize("server", ["toolbox", "web", "legacy"], ids=["stdio", "http", "sse"])
async def test_one_session_is_kept_so_server_state_survives_between_calls(
    client: MCPClient, server: str
) -> None:
    first = await client.call_tool(f"{server}__count")
    second = await client.call_tool(f"{server}__count")
    assert not first.is_error and int(second.text) == int(first.text) + 1
    assert client.connections()[server] == 1


async def test_http_servers_get_the_bearer_token_and_headers(client: MCPClient) -> None:
    assert (await client.call_tool("web__whoami")).text == f"Bearer {TOKEN}"
    assert (await client.call_tool("legacy__whoami")).text == "Bearer sse-header-value"


async def test_a_tool_that_raises_returns_an_is_error_result(client: MCPClient) -> None:
    output = await client.call_tool("toolbox__fail", {"message": "disk full"})
    assert output.is_error and output.status == "tool_error"
    assert "disk full" in output.text
    assert (await client.call_tool("toolbox__add", {"a": 2, "b": 3})).text == "5"


async def test_json_rpc_errors_from_2x_style_servers_become_error_results(client: MCPClient) -> None:
    output = await client.call_tool("rpc__vanished")
    assert output.is_error and output.status == "MCPProtocolError"
    assert isinstance(output.error, MCPProtocolError) and output.error.code == -32602
    assert "Unknown tool: vanished" in output.text
    assert (await client.call_tool("rpc__ping")).text == "pong"


async def test_a_hanging_tool_times_out_and_the_session_keeps_working(client: MCPClient) -> None:
    started = time.perf_counter()
    output = await client.call_tool("slow__hang", {"seconds": 30})  # server call_timeout 0.5
    assert time.perf_counter() - started < 5
    assert output.is_error and isinstance(output.error, MCPTimeoutError)
    assert "timed out after 0.5 s" in output.text
    override = await client.call_tool("toolbox__hang", {"seconds": 30}, timeout=0.2)
    assert isinstance(override.error, MCPTimeoutError) and "0.2 s" in override.text
    assert (await client.call_tool("slow__echo", {"text": "still here"})).text == "[slow] still here"
    assert client.connections()["slow"] == 1


async def test_unknown_and_denied_tools_are_error_results_not_exceptions(client: MCPClient) -> None:
    unknown = await client.call_tool("nope__nothing")
    assert isinstance(unknown.error, MCPUnknownToolError) and "toolbox__echo" in unknown.text
    denied = await client.call_server_tool("other", "fail")
    assert denied.is_error and "not allowed" in denied.text
    with pytest.raises(MCPUnknownToolError):
        denied.raise_for_error()


async def test_images_and_structured_content_come_back_as_parts(client: MCPClient) -> None:
    picture = await client.call_tool("toolbox__picture")
    (image,) = picture.content
    assert isinstance(image, Image) and image.media_type == "image/png"
    assert image.data is not None and image.data.startswith(b"\x89PNG")
    stats = await client.call_tool("web__stats", {"values": [1, 2, 6]})
    assert stats.structured == {"min": 1.0, "max": 6.0, "mean": 3.0}


async def test_each_call_writes_a_tool_row_under_the_current_trace(client: MCPClient) -> None:
    ledger = open_ledger("memory")
    with trace("feedfacefeedfacefeedfacefeedface"), attribute(org="acme", project="mcp"):
        ok = await client.call_tool("toolbox__echo", {"text": "x"}, ledger=ledger, call_id="call_1")
        bad = await client.call_tool("toolbox__fail", ledger=ledger)
    rows = ledger.records()  # type: ignore[attr-defined]
    assert [(r.kind, r.tool_server, r.tool_name, r.status) for r in rows] == [
        ("tool", "toolbox", "echo", "ok"), ("tool", "toolbox", "fail", "tool_error"),
    ]
    assert {r.trace_id for r in rows} == {"feedfacefeedfacefeedfacefeedface"}
    assert rows[0].request_id == "call_1" and rows[0].org == "acme" and rows[0].project == "mcp"
    assert rows[0].latency_ms == pytest.approx(ok.latency_ms) and rows[0].cost_nanos == 0
    assert rows[1].error is not None and "boom" in rows[1].error and bad.is_error


# --------------------------------------------------------------------------- lifecycles


async def test_a_server_that_dies_mid_call_is_reported_and_restarted() -> None:
    async with MCPClient([toolbox("box", price_per_call="0.001")]) as mcp:
        first_pid = int((await mcp.call_tool("box__pid")).text)
        await mcp.call_tool("box__count")
        crashed = await mcp.call_tool("box__crash")
        assert crashed.is_error and isinstance(crashed.error, MCPConnectionError)
        assert "disconnected during the call to 'crash'" in crashed.text
        assert [d.server for d in mcp.disconnects] == ["box"]
        after = await mcp.call_tool("box__count")
        assert not after.is_error and after.text == "1"  # a new process, a new session
        assert (crashed.cost_nanos, after.cost_nanos) == (0, 1_000_000)  # priced when it ran
        assert int((await mcp.call_tool("box__pid")).text) != first_pid
        assert mcp.connections() == {"box": 2}


async def test_a_server_killed_between_calls_is_restarted_on_the_next_call() -> None:
    async with MCPClient([toolbox("box")]) as mcp:
        pid = int((await mcp.call_tool("box__pid")).text)
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):  # the client notices the EOF
            if mcp.disconnects:
                break
            await asyncio.sleep(0.02)
        assert [d.server for d in mcp.disconnects] == ["box"]
        output = await mcp.call_tool("box__echo", {"text": "back"})
        assert output.text == "[box] back" and mcp.connections() == {"box": 2}


async def test_closing_the_client_stops_stdio_server_processes() -> None:
    # errlog without a file descriptor (a notebook's stderr): the server's stderr is dropped
    async with MCPClient([toolbox("box")], errlog=io.StringIO()) as mcp:
        pid = int((await mcp.call_tool("box__pid")).text)
        assert process_alive(pid)
    for _ in range(100):
        if not process_alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not process_alive(pid)
    closed = await mcp.call_tool("box__pid")
    assert isinstance(closed.error, MCPConnectionError) and "closed" in closed.text


async def test_an_http_server_that_restarts_gets_a_new_session() -> None:
    port = free_port()
    server = RunningServer(spawn_toolbox("http", port, "web"), port, "http", "web")
    try:
        async with MCPClient([server.config()]) as mcp:
            assert (await mcp.call_tool("web__count")).text == "1"
            server.stop()
            down = await mcp.call_tool("web__count")
            assert down.is_error and isinstance(down.error, MCPConnectionError)
            server.start()
            assert (await mcp.call_tool("web__count")).text == "1"
            assert mcp.connections() == {"web": 2} and len(mcp.disconnects) == 1
    finally:
        server.stop()


async def test_a_server_that_cannot_start_raises_a_connection_error_naming_it() -> None:
    missing = StdioServer(name="ghost", command="/nonexistent/mcp-server")
    with pytest.raises(MCPConnectionError, match="ghost"):
        async with MCPClient([missing]):
            pass
    mute = StdioServer(name="mute", command=sys.executable,
                       args=["-c", "import time; time.sleep(60)"], connect_timeout=0.5)
    started = time.perf_counter()
    with pytest.raises(MCPConnectionError, match=r"mute.*within 0.5 s"):
        await MCPClient([mute]).connect()
    assert time.perf_counter() - started < 10
    refused = HTTPServer(name="nobody", url=f"http://127.0.0.1:{free_port()}/mcp", connect_timeout=5)
    with pytest.raises(MCPConnectionError, match="nobody"):
        await MCPClient([refused]).connect()


async def test_a_tools_list_changed_notification_refreshes_the_catalog() -> None:
    async with MCPClient([toolbox("box", allow=["grow", "extra"])]) as mcp:
        assert [t.exposed_name for t in await mcp.list_tools()] == ["box__grow"]
        assert (await mcp.call_tool("box__grow")).text == "grown"
        for _ in range(100):
            if "box__extra" in {t.name for t in await mcp.tools()}:
                break
            await asyncio.sleep(0.02)
        assert "box__extra" in mcp.snapshot()
        assert (await mcp.call_tool("box__extra")).text == "extra!"


async def test_mcp_server_time_from_pypi_over_stdio() -> None:
    async with MCPClient([time_server()]) as mcp:
        tools = {t.exposed_name: t for t in await mcp.list_tools()}
        assert set(tools) == {"time__get_current_time", "time__convert_time"}
        assert tools["time__get_current_time"].read_only is True
        now = await mcp.call_tool("time__get_current_time", {"timezone": "Europe/Oslo"})
        assert json.loads(now.text)["timezone"] == "Europe/Oslo"
        converted = await mcp.call_tool(
            "time__convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
        )
        assert "T21:00:00" in json.loads(converted.text)["target"]["datetime"]
        bad = await mcp.call_tool("time__get_current_time", {"timezone": "Mars/Olympus"})
        assert bad.is_error and bad.status == "tool_error"  # 1.x style: isError content


# --------------------------------------------------------------------------- where rows go


async def test_a_client_given_no_ledger_records_in_the_default_ledger(default_ledger) -> None:
    async with MCPClient([toolbox("box")]) as mcp:
        with trace("0123456789abcdef0123456789abcdef"), attribute(project="mcp", agent="a1"):
            await mcp.call_tool("box__echo", {"text": "x"})
    (row,) = default_ledger()
    assert (row.kind, row.tool_server, row.tool_name, row.status) == ("tool", "box", "echo", "ok")
    assert (row.trace_id, row.project, row.agent) == ("0123456789abcdef0123456789abcdef", "mcp", "a1")


async def test_a_client_records_in_the_ledger_of_the_config_a_model_would_use(
    default_ledger, tmp_path
) -> None:
    """./tollway.yaml names a ledger: the client writes there, like a Model would, and
    nothing goes to the default ledger; ``config=`` names a file elsewhere."""
    (tmp_path / "tollway.yaml").write_text(f"ledger: {tmp_path / 'team.db'}\n")
    async with MCPClient([toolbox("box")]) as mcp:
        await mcp.call_tool("box__echo", {"text": "x"})
    other = tmp_path / "other"
    other.mkdir()
    (other / "tollway.yaml").write_text(f"ledger: {other / 'other.db'}\n")
    async with MCPClient([toolbox("box")], config=str(other / "tollway.yaml")) as mcp:
        await mcp.call_tool("box__count")
    assert default_ledger() == []
    team = open_ledger(tmp_path / "team.db")
    elsewhere = open_ledger(other / "other.db")
    try:
        assert [r.tool_name for r in team.records()] == ["echo"]  # type: ignore[attr-defined]
        assert [r.tool_name for r in elsewhere.records()] == ["count"]  # type: ignore[attr-defined]
    finally:
        team.close()
        elsewhere.close()


async def test_ledger_false_records_no_tool_call_and_a_target_names_one(
    default_ledger, tmp_path
) -> None:
    async with MCPClient([toolbox("box")], ledger=False) as mcp:
        assert mcp.ledger is None
        explicit = open_ledger("memory")
        await mcp.call_tool("box__echo", {"text": "x"})
        await mcp.call_tool("box__echo", {"text": "x"}, ledger=explicit)  # off means off
    assert default_ledger() == [] and explicit.records() == []  # type: ignore[attr-defined]
    async with MCPClient([toolbox("box")], ledger=str(tmp_path / "mine.db")) as mcp:
        await mcp.call_tool("box__echo", {"text": "y"})
    from tollway.core.stores.open import shared_ledger

    assert [r.tool_name for r in shared_ledger(tmp_path / "mine.db").records()] == ["echo"]  # type: ignore[attr-defined]
    assert default_ledger() == []


async def test_a_bad_config_fails_the_connect_not_a_tool_call(default_ledger, tmp_path) -> None:
    from tollway.core.errors import ConfigError

    (tmp_path / "tollway.yaml").write_text("ledger: {bogus: 1}\n")
    with pytest.raises(ConfigError):
        async with MCPClient([toolbox("box")]):
            pass
