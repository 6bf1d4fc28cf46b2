"""tollway.mcp.config: server configs in code and from tollway.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.core.errors import ConfigError
from tollway.mcp.config import (
    HTTPServer,
    MCPServer,
    SSEServer,
    StdioServer,
    server_from_dict,
    servers_from_config,
)


def test_transport_is_inferred_from_command_or_url() -> None:
    stdio = server_from_dict("time", {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]})
    http = server_from_dict("gh", {"url": "https://api.example.com/mcp"})
    sse = server_from_dict("old", {"url": "http://127.0.0.1:9000/sse"})
    assert isinstance(stdio, StdioServer) and stdio.args == ("--local-timezone", "UTC")
    assert type(http) is HTTPServer and type(sse) is SSEServer


def test_bearer_token_can_come_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_MCP_TOKEN", "ghp_secret_value_123456")
    server = server_from_dict("gh", {"url": "https://x.test/mcp", "bearer_token_env": "GH_MCP_TOKEN",
                                     "headers": {"X-Team": "core"}})
    assert isinstance(server, HTTPServer)
    assert server.request_headers() == {"X-Team": "core", "Authorization": "Bearer ghp_secret_value_123456"}
    monkeypatch.delenv("GH_MCP_TOKEN")
    with pytest.raises(ConfigError, match="GH_MCP_TOKEN"):
        server_from_dict("gh", {"url": "https://x.test/mcp", "bearer_token_env": "GH_MCP_TOKEN"})


def test_repr_never_shows_tokens_headers_or_env_values() -> None:
    http = HTTPServer(name="gh", url="https://x.test/mcp", bearer_token="tok-very-secret",
                      headers={"X-Api-Key": "key-very-secret"})
    stdio = StdioServer(name="db", command="db-mcp", env={"DB_PASSWORD": "pw-very-secret"})
    text = repr(http) + repr(stdio)
    assert "very-secret" not in text
    assert "X-Api-Key" in text and "DB_PASSWORD" in text and "https://x.test/mcp" in text


def test_unknown_settings_are_named_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        server_from_dict("time", {"command": "x", "url_path": "/mcp"})
    assert "url_path" in str(info.value) and "call_timeout" in str(info.value)
    assert info.value.key == "url_path"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"command": "x", "connect_timeout": 0}, "connect_timeout"),
        ({"command": "x", "call_timeout": "soon"}, "call_timeout"),
        ({"command": "x", "price_per_call": "cheap"}, "price"),
        ({"command": "x", "args": "--flag"}, "args must be a list"),
        ({"url": "ftp://x"}, "http:// or https://"),
        ({"transport": "websocket", "url": "http://x"}, "not one of stdio, http, sse"),
        ({}, "needs a 'command'"),
    ],
)
def test_invalid_settings_raise_config_errors_that_say_what_is_expected(spec: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        server_from_dict("srv", spec)


def test_server_names_must_be_usable_in_tool_names() -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        StdioServer(name="my server", command="x")
    with pytest.raises(TypeError):
        MCPServer(name="x")


def test_call_prices_are_integer_nanos_with_per_tool_overrides() -> None:
    server = StdioServer(name="s", command="x", price_per_call="0.002", tool_prices={"search": 0.01})
    assert server.call_price_nanos("read") == 2_000_000
    assert server.call_price_nanos("search") == 10_000_000
    assert StdioServer(name="free", command="x").call_price_nanos("read") == 0


def test_servers_from_a_plain_mapping() -> None:
    servers = servers_from_config({"mcp": {"a": {"command": "x"}, "b": {"url": "http://h/mcp"}}})
    assert [s.name for s in servers] == ["a", "b"]


def test_servers_from_tollway_yaml_report_file_line_and_key(tmp_path: Path) -> None:
    config = pytest.importorskip("tollway.core.config")
    good = tmp_path / "good.yaml"
    good.write_text(
        "mcp:\n"
        "  time:\n"
        "    command: mcp-server-time\n"
        "    allow: [get_current_time]\n"
        "    call_timeout: 5\n"
    )
    (server,) = servers_from_config(config.TollwaySettings.load(good))
    assert isinstance(server, StdioServer) and server.allow == ("get_current_time",)
    assert server.call_timeout == 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "mcp:\n"
        "  time:\n"
        "    command: mcp-server-time\n"
        "  web:\n"
        "    url: http://127.0.0.1/mcp\n"
        "    connect_timeout: -1\n"
    )
    with pytest.raises(ConfigError) as info:
        servers_from_config(config.TollwaySettings.load(bad))
    err = info.value
    assert err.file == str(bad) and err.line == 6 and err.key is not None
    assert "connect_timeout" in err.key and "positive" in str(err)
