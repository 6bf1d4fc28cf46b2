"""Group commit on the SQLite budget store's async path: one transaction per loop turn,
exact, each operation failing alone, nothing paid for dropped by a cancellation."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tollway.core.cost.budgets import Charge
from tollway.core.cost.records import CallRecord
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore
from tollway.core.stores.sqlite_ledger import SQLiteLedger

CHARGE = Charge("b|all|0", "b", "all", 0, None, 20 * 5, 5)
"""Room for exactly 20 reservations of 5."""


def _row(trace: str) -> CallRecord:
    return CallRecord(time=datetime.now(UTC), trace_id=trace, provider="openai",
                      model="gpt-4o-mini", cost_nanos=3)


def _commits(store: SQLiteBudgetStore) -> list[str]:
    """Every COMMIT the store's async connection runs from now on (SQLite's own trace)."""
    statements: list[str] = []
    store._conn(wait=False).connection.set_trace_callback(statements.append)
    return statements


def _count_commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[SQLiteBudgetStore, SQLiteLedger]]:
    path = tmp_path / "tollway.db"
    ledger = SQLiteLedger(path)
    store = SQLiteBudgetStore(path)
    yield store, ledger
    store.close()
    ledger.close()


def test_concurrent_reservations_share_commits_and_stay_exact(
    files: tuple[SQLiteBudgetStore, SQLiteLedger]
) -> None:
    store, ledger = files

    async def main() -> list[object]:
        statements = _commits(store)
        now = time.time()
        results = await asyncio.gather(
            *(store.areserve(f"h{n}", [CHARGE], now + 600, now) for n in range(50)))
        settled = await asyncio.gather(
            *(store.asettle_and_record(f"h{n}", [CHARGE], [3], now, ledger, _row(f"t{n}"),
                                       spent=False)
              for n, denial in enumerate(results) if denial is None))
        assert len(settled) == 20
        # 70 operations in 5 transactions: the first reserve alone (no other hold open),
        # then per gather the first of the turn at once and one flush for the rest.
        assert _count_commits(statements) <= 6
        return results

    results = asyncio.run(main())
    assert sum(1 for r in results if r is None) == 20  # exactly the room there was
    (state,) = store.counters(time.time())
    assert (state.spent, state.reserved) == (20 * 3, 0)
    assert (state.reserved_total, state.released_total) == (20 * 5, 20 * 2)
    assert sorted(r.trace_id for r in ledger.records()) == sorted(
        f"t{n}" for n, r in enumerate(results) if r is None)


def test_an_operation_that_fails_in_a_batch_fails_alone(
    files: tuple[SQLiteBudgetStore, SQLiteLedger]
) -> None:
    store, _ = files

    def broken(cur: sqlite3.Cursor) -> None:
        cur.execute("UPDATE budget_counters SET spent = spent + 1")  # rolled back with it
        cur.execute("INSERT INTO no_such_table VALUES (1)")

    async def main() -> list[object]:
        now = time.time()
        return await asyncio.gather(
            store.areserve("a", [CHARGE], now + 600, now),
            store._group.run(broken),
            store.areserve("b", [CHARGE], now + 600, now),
            return_exceptions=True)

    first, failed, second = asyncio.run(main())
    assert first is None and second is None
    assert isinstance(failed, sqlite3.OperationalError) and "no_such_table" in str(failed)
    (state,) = store.counters(time.time())
    assert (state.spent, state.reserved) == (0, 10)  # both holds, not the broken update


def test_a_cancelled_reservation_is_not_made_but_a_cancelled_settle_is(
    files: tuple[SQLiteBudgetStore, SQLiteLedger]
) -> None:
    store, ledger = files
    now = time.time()

    async def main() -> None:
        for hold in ("first", "paid"):  # holds open on this loop: operations batch
            assert await store.areserve(hold, [CHARGE], now + 600, now) is None
        first = asyncio.create_task(store.asettle_and_record(  # runs at once: first of the turn
            "first", [CHARGE], [1], now, ledger, _row("first-row")))
        reserve = asyncio.create_task(store.areserve("unwanted", [CHARGE], now + 600, now))
        settle = asyncio.create_task(store.asettle_and_record(
            "paid", [CHARGE], [4], now, ledger, _row("paid-row")))
        await asyncio.sleep(0)  # all three submitted; the queued two not flushed yet
        assert first.done() and not reserve.done() and not settle.done()
        reserve.cancel()
        settle.cancel()
        for task in (reserve, settle):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await first == [1]

    asyncio.run(main())
    (state,) = store.counters(time.time())
    assert (state.spent, state.reserved) == (5, 0)  # both paid calls settled, no new hold
    assert sorted(r.trace_id for r in ledger.records()) == ["first-row", "paid-row"]


def test_while_another_connection_writes_the_loop_runs_and_a_cancelled_settle_still_lands(
    files: tuple[SQLiteBudgetStore, SQLiteLedger], tmp_path: Path
) -> None:
    """Another process's transaction holds the write lock: the batch waits without
    blocking the loop; a settle whose caller gives up meanwhile is applied inline."""
    store, ledger = files
    now = time.time()
    for hold in ("kept", "abandoned"):
        assert store.reserve(hold, [CHARGE], now + 600, now) is None
    other = sqlite3.connect(tmp_path / "tollway.db", isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        kept = asyncio.create_task(store.asettle_and_record(
            "kept", [CHARGE], [2], now, ledger, _row("kept-row"), spent=False))
        abandoned = asyncio.create_task(store.asettle_and_record(
            "abandoned", [CHARGE], [1], now, ledger, _row("abandoned-row"), spent=False))
        await asyncio.sleep(0.1)  # both waiting on the lock, the loop still turning
        assert ticks >= 5 and not kept.done()
        release.start()
        abandoned.cancel()  # its settle runs inline, waiting for the lock
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        assert await kept == []
        tick.cancel()
        return ticks

    try:
        asyncio.run(main())
    finally:
        release.join()
        other.close()
    (state,) = store.counters(time.time())
    assert (state.spent, state.reserved) == (3, 0)
    assert sorted(r.trace_id for r in ledger.records()) == ["abandoned-row", "kept-row"]
