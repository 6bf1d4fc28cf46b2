"""A key's MCP grants: how they are written (CLI, code), read and matched (deny by
default), and the config checks of ``gateway.mcp_aliases``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.cli import main
from tollway.core.config import TollwaySettings
from tollway.core.errors import ConfigError
from tollway.gateway.key_store import SQLiteKeyStore
from tollway.gateway.keys import VirtualKey, new_key, parse_mcp_grant, parse_mcp_grants
from tollway.gateway.runtime import Gateway


def test_grants_name_servers_tools_and_patterns() -> None:
    _, key, _ = new_key(mcp="time, docs:search,files:read_*")
    assert key.mcp == ("time", "docs:search", "files:read_*")
    assert key.mcp_allows("time") and key.mcp_allows("time", "convert_time")
    assert key.mcp_allows("docs") and key.mcp_allows("docs", "search")
    assert not key.mcp_allows("docs", "delete")
    assert key.mcp_allows("files", "read_text") and not key.mcp_allows("files", "write")
    assert not key.mcp_allows("web") and not key.mcp_allows("web", "echo")
    assert new_key(mcp=["*"])[1].mcp_allows("anything", "at_all")


def test_no_grant_allows_nothing() -> None:
    _, key, _ = new_key()
    assert key.mcp == () and not key.mcp_allows("time") and not key.mcp_allows("time", "x")


@pytest.mark.parametrize("text", ["docs:", ":search", "a b", "docs:search:extra", "x/y"])
def test_unreadable_grants_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigError, match="server:tool"):
        parse_mcp_grant(text)
    with pytest.raises(ConfigError):
        new_key(mcp=[text])


def test_grants_survive_the_store_and_older_rows_have_none(tmp_path: Path) -> None:
    store = SQLiteKeyStore(tmp_path / "keys.db")
    _, key, digest = new_key(mcp=parse_mcp_grants("time,docs:search"))
    store.add(key, digest)
    assert store.get(key.id).mcp == ("time", "docs:search")
    old = VirtualKey.from_spec(id="key_old", prefix="sk-tw-abcdef", spec={"budgets": []},
                               created_at=0.0, expires_at=None, revoked_at=None)
    assert old.mcp == ()
    store.close()


def test_cli_creates_a_key_with_grants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "keys.db"
    assert main(["keys", "--store", str(db), "create", "--mcp", "time,docs:search"]) == 0
    [key] = SQLiteKeyStore(db).list()
    assert key.mcp == ("time", "docs:search")
    assert main(["keys", "--store", str(db), "list"]) == 0
    assert "mcp time,docs:search" in capsys.readouterr().out


def test_mcp_aliases_must_name_configured_servers(tmp_path: Path) -> None:
    settings = TollwaySettings.from_dict({
        "models": {"fast": {"model": "openai/gpt-4o-mini", "api_key": "env:NOPE"}},
        "mcp": {"time": {"command": "mcp-server-time"}},
        "gateway": {"keys": str(tmp_path / "keys.db"), "mcp_aliases": {"fast": ["time", "docs"]}},
    })
    with pytest.raises(ConfigError, match="docs"):
        Gateway(settings)


def test_forward_authorization_is_an_http_setting_only() -> None:
    from tollway.mcp.config import server_from_dict

    assert server_from_dict("web", {"url": "http://127.0.0.1:1/mcp",
                                    "forward_authorization": True}).forward_authorization  # type: ignore[attr-defined]
    assert not server_from_dict("web", {"url": "http://127.0.0.1:1/mcp"}).forward_authorization  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="forward_authorization"):
        server_from_dict("time", {"command": "mcp-server-time", "forward_authorization": True})
