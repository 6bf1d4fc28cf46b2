"""The SQLite budget store's spool and leases: exactly once whoever applies a spool,
nothing lost when its process is SIGKILLed, readers that see every row at once, leases
that never overshoot across processes and go back when idle or dead."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tollway.core.cost.budgets import Charge
from tollway.core.cost.records import CallRecord
from tollway.core.stores import _spool_owner, sqlite_budgets
from tollway.core.stores._spool import spool_dir, spools
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore
from tollway.core.stores.sqlite_ledger import SQLiteLedger

ROOT = Path(__file__).resolve().parents[3]
COST = 7
"""What each call spends; it reserves 10."""


def _charge(limit: int) -> Charge:
    return Charge("b|all|0", "b", "all", 0, None, limit, 10)


def _row(trace: str) -> CallRecord:
    return CallRecord(time=datetime.now(UTC), trace_id=trace, provider="openai",
                      model="gpt-4o-mini", cost_nanos=COST)


def _plain(db: Path, sql: str) -> list[tuple[object, ...]]:
    """What a plain SQLite reader sees (no spool applied)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


CHILD = """
import os, signal, sys, time
from datetime import UTC, datetime
from tollway.core.cost.budgets import Charge
from tollway.core.cost.records import CallRecord
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore
from tollway.core.stores.sqlite_ledger import SQLiteLedger

db, calls, limit, ending, cost = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                  int(sys.argv[5]))
store, ledger = SQLiteBudgetStore(db), SQLiteLedger(db)
charge = Charge("b|all|0", "b", "all", 0, None, limit, 10)
admitted = 0
for n in range(calls):
    hold = f"{os.getpid()}-{n}"
    if store.reserve(hold, [charge], time.time() + 600, time.time()) is None:
        row = CallRecord(time=datetime.now(UTC), trace_id=hold, provider="openai",
                         model="gpt-4o-mini", cost_nanos=cost)
        store.settle_and_record(hold, [charge], [cost], time.time(), ledger, row, spent=False)
        admitted += 1
if ending == "hold":  # one more call in flight when the process dies
    store.reserve("in-flight", [charge], time.time() + 600, time.time())
print(admitted, flush=True)
if ending in ("kill", "hold"):
    os.kill(os.getpid(), signal.SIGKILL)
if ending == "wait":
    sys.stdin.read()
store.close()
"""


def _child(db: Path, calls: int, limit: int, ending: str,
           cost: int = COST) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(calls), str(limit), ending, str(cost)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        # the flusher never runs in the child's life: everything stays spooled
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOLLWAY_SPOOL_FLUSH_SECONDS": "60"},
    )


def _admitted(child: subprocess.Popen[str]) -> int:
    assert child.stdout is not None
    return int(child.stdout.readline())


def test_a_sigkilled_process_loses_nothing_and_its_leases_go_back(tmp_path: Path) -> None:
    db = tmp_path / "tollway.db"
    child = _child(db, 30, 10_000, "hold")
    assert _admitted(child) == 30
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # Nothing reached the tables: every reservation, settle and row is in the spool...
    assert _plain(db, 'SELECT COUNT(*) FROM "calls"') == [(0,)]
    lease = min(10 * sqlite_budgets._LEASE_CALLS, 10_000 // sqlite_budgets._LEASE_SHARE)
    assert _plain(db, "SELECT spent, leased FROM budget_counters") == [(0, lease)]
    # ...and the first reader applies it: every row, every settle, the dead process's
    # lease given back, the call it had in flight held until its TTL.
    ledger = SQLiteLedger(db)
    assert ledger.count() == 30
    store = SQLiteBudgetStore(db)
    (c,) = store.counters(time.time())
    assert (c.spent, c.reserved, c.leased) == (30 * COST, 10, 0)
    assert c.reserved_total == c.spent + c.released_total + c.reserved
    assert spools(spool_dir(db)) == []
    (c,) = store.counters(time.time() + 601)
    assert (c.reserved, c.leased) == (0, 0)
    store.close()
    ledger.close()


def test_two_readers_apply_a_dead_spool_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "tollway.db"
    child = _child(db, 200, 10**9, "kill")
    assert _admitted(child) == 200
    child.wait(timeout=30)
    counts: list[int] = []
    start = threading.Barrier(4)

    def read() -> None:
        ledger = SQLiteLedger(db)
        start.wait()
        counts.append(ledger.count())
        ledger.close()

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [200] * 4
    assert _plain(db, "SELECT spent, reserved, reserved_total FROM budget_counters") == [
        (200 * COST, 0, 2000)]


def test_a_live_process_s_rows_are_visible_to_another_process_at_once(tmp_path: Path) -> None:
    db = tmp_path / "tollway.db"
    child = _child(db, 50, 10**9, "wait")
    try:
        assert _admitted(child) == 50  # its flusher is off: all 50 are in its spool
        ledger = SQLiteLedger(db)
        assert ledger.count() == 50
        store = SQLiteBudgetStore(db)
        (c,) = store.counters(time.time())
        assert (c.spent, c.reserved) == (50 * COST, 0)
        assert c.leased > 0  # the live process keeps its lease
        store.close()
        ledger.close()
    finally:
        assert child.stdin is not None
        child.stdin.close()  # it closes its store and exits
        child.wait(timeout=30)
    assert child.returncode == 0
    assert _plain(db, "SELECT leased FROM budget_counters") == [(0,)]
    assert spools(spool_dir(db)) == []


def test_four_processes_on_leases_never_overshoot(tmp_path: Path) -> None:
    """A budget worth 150 calls that spend what they reserve, 4 processes x 60 calls:
    the leases start large and shrink to one call near the limit, so never more than
    150 are admitted, and room another process had set aside costs only a few calls."""
    db = tmp_path / "tollway.db"
    SQLiteBudgetStore(db).close()
    children = [_child(db, 60, 1_500, "close", cost=10) for _ in range(4)]
    admitted = [_admitted(child) for child in children]
    for child in children:
        child.wait(timeout=60)
        assert child.returncode == 0
    assert 140 <= sum(admitted) <= 150
    assert SQLiteLedger(db).count() == sum(admitted)
    assert _plain(db, "SELECT spent, reserved, leased FROM budget_counters") == [
        (10 * sum(admitted), 0, 0)]


def test_a_torn_tail_ends_what_is_applied(tmp_path: Path) -> None:
    """A write cut short (a full disk) leaves a partial frame: the whole frames before it
    are applied, the partial one never."""
    db = tmp_path / "tollway.db"
    child = _child(db, 5, 10**9, "kill")
    assert _admitted(child) == 5
    child.wait(timeout=30)
    ((_, path),) = spools(spool_dir(db))
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x00\x00")  # a header promising 64 bytes, and no more
    assert SQLiteLedger(db).count() == 5


def test_an_idle_lease_goes_back_and_a_closed_store_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_budgets, "_IDLE_RETURN", 0.2)
    db = tmp_path / "tollway.db"
    store, ledger = SQLiteBudgetStore(db), SQLiteLedger(db)
    charge = _charge(10**6)
    assert store.reserve("h", [charge], time.time() + 600, time.time()) is None
    store.settle_and_record("h", [charge], [COST], time.time(), ledger, _row("t"), spent=False)
    assert _plain(db, "SELECT leased FROM budget_counters") == [(10 * sqlite_budgets._LEASE_CALLS,)]
    deadline = time.monotonic() + 10
    while _plain(db, "SELECT spent, leased FROM budget_counters") != [(COST, 0)]:
        assert time.monotonic() < deadline, "the flusher neither applied nor gave back"
        time.sleep(0.05)
    assert store.reserve("h2", [charge], time.time() + 600, time.time()) is None
    store.close()
    assert _plain(db, "SELECT reserved, leased FROM budget_counters") == [(10, 0)]
    assert _plain(db, "SELECT COUNT(*) FROM budget_leases") == [(0,)]
    assert spools(spool_dir(db)) == []
    ledger.close()


def test_a_new_generation_that_cannot_be_begun_counts_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool file due to rotate whose next generation cannot be created (out of file
    descriptors, a full disk) keeps growing: the record just appended is in it, so the
    call is not settled a second time in a transaction of its own."""
    monkeypatch.setattr(_spool_owner, "ROTATE_BYTES", 4096)
    db = tmp_path / "tollway.db"
    store, ledger = SQLiteBudgetStore(db), SQLiteLedger(db)
    charge = _charge(10**9)

    def call(n: int) -> None:
        assert store.reserve(f"h{n}", [charge], time.time() + 600, time.time()) is None
        store.settle_and_record(f"h{n}", [charge], [COST], time.time(), ledger, _row(f"t{n}"),
                                spent=False)

    call(0)
    real = _spool_owner.SpoolFile

    def no_descriptors(*args: object) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(_spool_owner, "SpoolFile", no_descriptors)
    for n in range(1, 60):
        call(n)
    assert store._side is not None and store._side.generation == 0
    assert store._side.file.size > 4096  # grew past its rotation size
    monkeypatch.setattr(_spool_owner, "SpoolFile", real)
    for n in range(60, 80):
        call(n)
    assert store._side.generation >= 1
    (c,) = store.counters(time.time())
    assert (c.spent, c.reserved) == (80 * COST, 0)
    assert ledger.count() == 80
    store.close()
    ledger.close()


def test_rotated_spool_files_are_applied_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spool_owner, "ROTATE_BYTES", 4096)
    db = tmp_path / "tollway.db"
    store, ledger = SQLiteBudgetStore(db), SQLiteLedger(db)
    charge = _charge(10**9)
    for n in range(300):
        assert store.reserve(f"h{n}", [charge], time.time() + 600, time.time()) is None
        store.settle_and_record(f"h{n}", [charge], [COST], time.time(), ledger, _row(f"t{n}"),
                                spent=False)
    assert store._side is not None and store._side.generation > 10
    assert ledger.count() == 300
    deadline = time.monotonic() + 10
    while len(spools(spool_dir(db))) > 1:  # the flusher removes what it retired
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (c,) = store.counters(time.time())
    assert (c.spent, c.reserved) == (300 * COST, 0)
    store.close()
    ledger.close()


async def test_async_calls_from_a_lease_are_exact(tmp_path: Path) -> None:
    import asyncio

    db = tmp_path / "tollway.db"
    store, ledger = SQLiteBudgetStore(db), SQLiteLedger(db)
    charge = _charge(20 * 10)  # room for exactly 20 reservations of 10
    now = time.time()
    results = await asyncio.gather(
        *(store.areserve(f"h{n}", [charge], now + 600, now) for n in range(50)))
    admitted = [n for n, denial in enumerate(results) if denial is None]
    assert len(admitted) == 20
    await asyncio.gather(*(
        store.asettle_and_record(f"h{n}", [charge], [COST], now, ledger, _row(f"t{n}"),
                                 spent=False) for n in admitted))
    (c,) = await store.acounters(time.time())
    assert (c.spent, c.reserved, c.reserved_total) == (20 * COST, 0, 200)
    assert ledger.count() == 20
    store.close()
    ledger.close()


def test_a_ledger_alone_spools_its_rows_and_every_read_sees_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger without a budget store: one write per row, no transaction; a read (this
    process's or another's) applies them first; close leaves no spool behind."""
    monkeypatch.setattr(_spool_owner, "FLUSH_EVERY", 60.0)  # only reads apply the spool
    db = tmp_path / "ledger.db"
    ledger = SQLiteLedger(db)
    for n in range(25):
        ledger.record(_row(f"t{n}"))
    assert _plain(db, 'SELECT COUNT(*) FROM "calls"') == [(0,)]
    other = SQLiteLedger(db)
    assert other.count() == 25
    assert [r.trace_id for r in other.records()] == [f"t{n}" for n in range(25)]
    other.close()
    ledger.close()
    assert _plain(db, 'SELECT COUNT(*) FROM "calls"') == [(25,)]
    assert spools(spool_dir(db)) == []


def test_a_ledger_with_synchronous_full_commits_each_row(tmp_path: Path) -> None:
    """``synchronous=full`` asks for an fsync per row: no spool, each row its own
    transaction, in the table when record returns."""
    db = tmp_path / "ledger.db"
    ledger = SQLiteLedger(db, synchronous="full")
    ledger.record(_row("t"))
    assert _plain(db, 'SELECT COUNT(*) FROM "calls"') == [(1,)]
    assert not spool_dir(db).exists()
    ledger.close()
