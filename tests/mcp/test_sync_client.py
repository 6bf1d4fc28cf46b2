"""SyncMCPClient: the async client driven from synchronous code and other threads."""

from __future__ import annotations

import threading

from tests.mcp.conftest import toolbox
from tollway.core.stores.open import open_ledger
from tollway.core.tracing import trace
from tollway.mcp import MCPClient, MCPError, SyncMCPClient


def test_sync_client_runs_sessions_on_its_own_thread_and_propagates_the_trace() -> None:
    ledger = open_ledger("memory")
    with SyncMCPClient([toolbox("box")], ledger=ledger) as mcp:
        assert "box__echo" in {t.name for t in mcp.tools()}
        with trace("0123456789abcdef0123456789abcdef"):
            results: list[str] = []
            threads = [threading.Thread(target=lambda: results.append(mcp.call_tool("box__count").text))
                       for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            direct = mcp.call_tool("box__echo", {"text": "sync"})
        assert sorted(results) == ["1", "2", "3", "4"] and direct.text == "[box] sync"
        loop_thread = mcp._thread
        assert loop_thread is not None and loop_thread.is_alive()
    assert not loop_thread.is_alive()
    rows = ledger.records()  # type: ignore[attr-defined]
    assert len(rows) == 5
    assert rows[-1].trace_id == "0123456789abcdef0123456789abcdef"


def test_sync_calls_on_the_clients_own_loop_are_refused_instead_of_deadlocking() -> None:
    import asyncio

    from tollway.mcp.client import run_sync

    async def main() -> str:
        async with MCPClient([toolbox("box")]) as mcp:
            coro = mcp.call_tool("box__echo", {"text": "x"})
            try:
                run_sync(mcp, coro)
            except MCPError as exc:
                return str(exc)
            return "no error"

    assert "would block it forever" in asyncio.run(main())
