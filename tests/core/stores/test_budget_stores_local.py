"""The store contract on the two stores that need no service: memory and SQLite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.core.cost.budgets.store_contract import StoreContract
from tollway.core.cost.budgets import Charge
from tollway.core.cost.budgets.guard import _new_hold_id as new_hold_id
from tollway.core.cost.budgets.memory import MemoryBudgetStore
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryBudgetStore:
        return MemoryBudgetStore()

    @pytest.fixture
    def store_spec(self) -> None:
        return None

    def test_settled_holds_do_not_pile_up_in_the_expiry_heap(self, store: MemoryBudgetStore) -> None:
        charge = Charge("b|all|0", "b", "all", 0, None, 10**12, 5)
        for n in range(10_000):
            assert store.reserve(f"h{n}", [charge], 1e12, 0.0) is None
            store.settle(f"h{n}", [charge], [3], 0.0)
        # Only calls in flight need an entry: 10,000 settled calls leave a handful.
        assert len(store._expiry) <= 64 + 2
        (state,) = store.counters(0.0)
        assert (state.spent, state.reserved, state.released_total) == (30_000, 0, 20_000)


def test_hold_ids_are_unique_and_differ_in_a_forked_child() -> None:
    ids = {new_hold_id() for _ in range(1000)}
    assert len(ids) == 1000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id, then leave without running pytest's exit
        os.write(write, new_hold_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_id = os.read(read, 200).decode()
    os.close(read)
    parent_prefix = new_hold_id().rsplit("-", 1)[0]
    assert child_id.rsplit("-", 1)[0] != parent_prefix


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "nested" / "budgets.db"

    @pytest.fixture
    def store(self, path: Path) -> Iterator[SQLiteBudgetStore]:
        store = SQLiteBudgetStore(path)
        yield store
        store.close()

    @pytest.fixture
    def store_spec(self, path: Path) -> dict[str, Any]:
        return {"backend": "sqlite", "path": str(path)}

    def test_a_file_with_the_old_holds_index_loses_it_and_keeps_its_holds(
        self, path: Path
    ) -> None:
        """Files written before the expiry index was dropped: the index goes, the holds
        stay, and they are still swept when they expire."""
        import sqlite3

        path.parent.mkdir(parents=True)
        old = SQLiteBudgetStore(path)
        charge = Charge("b|all|0", "b", "all", 0, None, 100, 60)
        assert old.reserve("old-hold", [charge], 1_000.0, 0.0) is None
        old.close()
        conn = sqlite3.connect(path)
        conn.execute("CREATE INDEX budget_holds_expires ON budget_holds (expires)")
        conn.commit()
        conn.close()

        store = SQLiteBudgetStore(path)
        try:
            assert store.reserve("new", [charge], 2_000.0, 10.0) is not None  # 60 + 60 > 100
            assert store.reserve("new", [charge], 2_000.0, 1_000.0) is None  # old one swept
            (state,) = store.counters(1_000.0)
            assert (state.reserved, state.released_total) == (60, 60)
        finally:
            store.close()
        conn = sqlite3.connect(path)
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'budget_holds'"
        ).fetchall()
        conn.close()
        assert ("budget_holds_expires",) not in indexes

    def test_an_idle_store_holds_no_read_snapshot_so_checkpoints_complete(
        self, store: SQLiteBudgetStore, path: Path
    ) -> None:
        """The store reuses one cursor per connection: after each operation (a denial
        and a status read included) nothing may stay open on it, or the WAL could never
        be checkpointed and would grow without end."""
        import sqlite3

        charge = Charge("b|all|0", "b", "all", 0, None, 100, 60)
        assert store.reserve("h1", [charge], 1_000.0, 0.0) is None
        assert store.reserve("h2", [charge], 1_000.0, 0.0) is not None  # denied
        store.counters(0.0)
        store.settle("h1", [charge], [10], 0.0)
        store.counters(0.0)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            busy, frames, done = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            other.close()
        assert busy == 0 and frames == done == 0  # truncated: nobody reads an old snapshot
