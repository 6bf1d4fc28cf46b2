"""Many processes opening a brand-new SQLite file at the same moment.

SQLite answers some of those opens with "database is locked" at once, without waiting
for its busy timeout (the switch of a fresh file to WAL). A CI run caught the budget
store passing that through as a ConfigError to 48 of 50 first calls; these rounds hit
the race most times on 2 cores, so a store that stops riding it out fails here.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tollway.core.cost.budgets import Charge
from tollway.core.cost.records import CallRecord
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore
from tollway.core.stores.sqlite_ledger import SQLiteLedger
from tollway.core.types import Usage

PROCESSES = 4
THREADS = 13
ROUNDS = 10


def _charge() -> Charge:
    return Charge(key="b|org:acme|0", budget="b", scope="org:acme", period_start=0,
                  period_end=None, limit=10_000, amount=1)


def first_use(kind: str, path: str, start_at: float) -> list[str]:
    """Child process body: open the store and use it from THREADS threads at once;
    returns the errors they met."""
    store: SQLiteBudgetStore | SQLiteLedger
    problems: list[str] = []
    while time.time() < start_at:
        time.sleep(0.0005)
    if kind == "budgets":
        store = SQLiteBudgetStore(path)

        def use() -> None:
            now = time.time()
            store.reserve(uuid.uuid4().hex, [_charge()], now + 60, now)  # type: ignore[union-attr]
    else:
        store = SQLiteLedger(path)

        def use() -> None:
            store.record(CallRecord(time=datetime.now(UTC), trace_id="t", provider="p",  # type: ignore[union-attr]
                                    model="m", usage=Usage(1, 1)))

    def guarded() -> None:
        try:
            use()
        except Exception as exc:  # the test reports every kind
            problems.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    return problems


@pytest.mark.parametrize("kind", ["budgets", "ledger"])
def test_first_uses_of_a_new_file_from_four_processes_all_succeed(
    tmp_path: Path, kind: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        for round_number in range(ROUNDS):
            path = tmp_path / f"round{round_number}" / "nested" / "store.db"
            start_at = time.time() + 0.3
            results = pool.starmap(first_use, [(kind, str(path), start_at)] * PROCESSES)
            problems = [p for result in results for p in result]
            assert problems == [], problems[:3]
            uses = PROCESSES * THREADS
            if kind == "budgets":
                store = SQLiteBudgetStore(path)
                (counter,) = store.counters(time.time())
                store.close()
                assert counter.reserved == uses
            else:
                with SQLiteLedger(path) as ledger:
                    assert ledger.count() == uses
