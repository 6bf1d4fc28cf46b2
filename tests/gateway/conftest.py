"""Fixtures for gateway tests: a real uvicorn server on a free loopback port, serving the
gateway app over fake providers (OpenAI, Anthropic and Gemini dialects) from tests/fakes.

``gateway_server(**config)`` starts one and returns a :class:`RunningGateway` with its
URL, the Gateway object (its key store, ledger) and ``create_key(...)`` which goes
through the same store the CLI uses. Every server is stopped by the test that started it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.server import FakeProvider
from tollway.core.config import TollwaySettings
from tollway.gateway.app import create_app
from tollway.gateway.keys import VirtualKey, new_key
from tollway.gateway.runtime import Gateway

UPSTREAM_KEY = "sk-upstream-test-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningGateway:
    def __init__(self, gateway: Gateway, port: int, server: Any, thread: threading.Thread) -> None:
        self.gateway = gateway
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = server
        self._thread = thread

    def create_key(self, **options: Any) -> tuple[str, VirtualKey]:
        assert self.gateway.keys is not None
        secret, key, digest = new_key(**options)
        self.gateway.keys.store.add(key, digest)
        return secret, key

    def ledger_rows(self) -> list[Any]:
        """Every ledger row written so far (the config's SQLite ledger, read directly
        after applying the gateway's pending spool, as every tollway reader does)."""
        import sqlite3

        from tollway.core.stores._spool_apply import catch_up

        path = self.gateway.settings.ledger_target
        assert isinstance(path, str)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            catch_up(conn.cursor(), path)
            return list(conn.execute("SELECT * FROM calls ORDER BY rowid"))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # nothing written yet
            raise
        finally:
            conn.close()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def start_uvicorn(app: Any) -> tuple[int, Any, threading.Thread]:
    """Serve an ASGI app on a free loopback port in a thread: ``(port, server, thread)``;
    stop it with ``server.should_exit = True`` and ``thread.join()``."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", loop="asyncio", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    return port, server, thread


def serve(gateway: Gateway) -> RunningGateway:
    port, server, thread = start_uvicorn(create_app(gateway=gateway))
    return RunningGateway(gateway, port, server, thread)


def settings_for(tmp_path: Path, upstream: FakeProvider, **sections: Any) -> TollwaySettings:
    """A config with aliases on each dialect, all served by ``upstream``; ledger, keys
    and budget counters in ``tmp_path``."""
    base = upstream.url
    data: dict[str, Any] = {
        "models": {
            "fast": {"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "env:TOLLWAY_TEST_UPSTREAM_KEY"},
            "claude": {"model": "anthropic/claude-sonnet-4-5-20250929", "api_base": base,
                       "api_key": "env:TOLLWAY_TEST_UPSTREAM_KEY"},
            "gem": {"model": "gemini/gemini-2.5-flash", "api_base": base,
                    "api_key": "env:TOLLWAY_TEST_UPSTREAM_KEY"},
        },
        "ledger": str(tmp_path / "ledger.db"),
        "gateway": {"keys": str(tmp_path / "keys.db"),
                    "budget_store": {"backend": "sqlite", "path": str(tmp_path / "budgets.db")}},
    }
    for name, value in sections.items():
        if name == "gateway":
            data["gateway"] = {**data["gateway"], **value}
        else:
            data[name] = value
    return TollwaySettings.from_dict(data)


@pytest.fixture
def upstream_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOLLWAY_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    monkeypatch.delenv("TOLLWAY_ADMIN_KEY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def gateway_server(tmp_path: Path, fake: FakeProvider, upstream_env: None) -> Iterator[Callable[..., RunningGateway]]:
    started: list[RunningGateway] = []

    def start(**sections: Any) -> RunningGateway:
        settings = settings_for(tmp_path, fake, **sections)
        running = serve(Gateway(settings))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def web() -> Iterator[Any]:
    """The FastMCP toolbox over streamable HTTP on loopback, named ``web`` (the MCP
    gateway tests' upstream server; its ``whoami`` tool echoes the Authorization header)."""
    from tests.mcp.conftest import serve_toolbox

    yield from serve_toolbox("http", name="web")
