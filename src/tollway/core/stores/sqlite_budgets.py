"""Budget counters in a SQLite file: exact across every process on one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write
lock up front, so check-and-reserve on all counters of a call is atomic against every
other process and thread (no read-then-upgrade race, no deadlock). WAL journal mode
lets ``tollway budgets`` read while calls reserve; ``synchronous=NORMAL`` survives a
killed process (only an OS crash could lose the last commits, which the TTL sweep and
the ledger make harmless). The sync path waits for the lock with SQLite's busy
timeout and retries the refusals SQLite returns without waiting (``_sqlite``); the
async path never blocks its event loop: it tries the lock without waiting and, when
another process holds it, yields to the loop before retrying. Async reserve, settle,
release and settle-and-row are group-committed (``_group_commit``): what one loop's
tasks submit in the same turn shares one transaction, each operation in its own
savepoint, each caller answered after the COMMIT.

Connections are per thread (and reopened after a fork); the file is created on first
use, with its parent directory. Opening rides out the same refusals, which many
processes opening a new file at once meet.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tollway.core.cost.budgets.contract import COUNTER_RETENTION, Charge, CounterState, Denial
from tollway.core.errors import ConfigError
from tollway.core.stores._group_commit import GroupCommit
from tollway.core.stores._sqlite import (
    is_busy,
    open_connection,
    retry_while_busy,
    run_transaction,
)
from tollway.core.stores.sqlite_ledger import insert_row

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord

__all__ = ["SQLiteBudgetStore"]

T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS budget_counters (
        key TEXT PRIMARY KEY,
        budget TEXT NOT NULL,
        scope TEXT NOT NULL,
        period_start INTEGER NOT NULL,
        period_end INTEGER,
        lim INTEGER NOT NULL,
        spent INTEGER NOT NULL DEFAULT 0,
        reserved INTEGER NOT NULL DEFAULT 0,
        reserved_total INTEGER NOT NULL DEFAULT 0,
        released_total INTEGER NOT NULL DEFAULT 0,
        overrun_total INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS budget_holds (
        hold_id TEXT NOT NULL,
        key TEXT NOT NULL,
        amount INTEGER NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (hold_id, key)
    ) WITHOUT ROWID""",
    # Holds are only the calls in flight: the sweep scans them, and an index on
    # ``expires`` would be one more B-tree page written by every reserve and settle.
    "DROP INDEX IF EXISTS budget_holds_expires",
)

_CREATE_COUNTER = (
    "INSERT OR IGNORE INTO budget_counters (key, budget, scope, period_start, period_end, lim) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_RESERVE_ONE = (
    "UPDATE budget_counters SET reserved = reserved + ?, reserved_total = reserved_total + ?, "
    "lim = ? WHERE key = ? AND spent + reserved + ? <= ?"
)
"""Check-and-reserve one existing counter in one statement (no change: absent or no
room). No statement here uses ``RETURNING``: SQLite buffers its rows in an ephemeral
table, which costs more than the statement (a DELETE ... RETURNING about twice a plain
DELETE); ``rowcount`` and a primary-key SELECT say the same for less."""
_INSERT_HOLD = "INSERT INTO budget_holds (hold_id, key, amount, expires) VALUES (?, ?, ?, ?)"
_DROP_HOLD = "DELETE FROM budget_holds WHERE hold_id = ?"
_HELD = "SELECT key, amount FROM budget_holds WHERE hold_id = ?"
_TAKE_EXACT = "DELETE FROM budget_holds WHERE hold_id = ? AND key = ? AND amount = ?"
"""End a hold's part on one counter when it holds what the charge says (what reserve
wrote): one statement, and its rowcount says whether it was still held."""
_HELD_ONE = "SELECT amount FROM budget_holds WHERE hold_id = ? AND key = ?"
_DROP_ONE = "DELETE FROM budget_holds WHERE hold_id = ? AND key = ?"
_SPENT = "SELECT spent FROM budget_counters WHERE key = ?"
_SETTLE_ONE = (
    "UPDATE budget_counters SET spent = spent + ?, reserved = reserved - ?, "
    "released_total = released_total + ?, overrun_total = overrun_total + ? "
    "WHERE key = ?"
)
_RELEASE_ONE = (
    "UPDATE budget_counters SET reserved = reserved - ?, "
    "released_total = released_total + ? WHERE key = ?"
)
_SWEEP_EVERY = 1.0
"""Seconds between sweeps of expired holds when every charge fits (a charge that does
not fit sweeps at once)."""

_COLUMNS = (
    "key, budget, scope, period_start, period_end, lim, spent, reserved, reserved_total, "
    "released_total, overrun_total"
)


class SQLiteBudgetStore:
    """The single-machine :class:`~tollway.core.cost.budgets.BudgetStore`."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._schema_ready = False
        self._next_cleanup = 0.0
        self._next_sweep = 0.0
        self._group = GroupCommit(lambda: self._conn(wait=False), self._sync,
                                  busy_timeout=busy_timeout)

    # ------------------------------------------------------------------ connections

    def _connect(self, *, wait: bool) -> sqlite3.Connection:
        def setup(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._schema_ready:
                run_transaction(conn.cursor(), lambda c: [c.execute(s) for s in _SCHEMA])
                self._schema_ready = True
            if not wait:
                conn.execute("PRAGMA busy_timeout=0")

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return retry_while_busy(
                lambda: open_connection(
                    str(self.path), busy_timeout=self.busy_timeout, setup=setup
                ),
                retry_for=self.busy_timeout,
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the budget store {str(self.path)!r}: {exc}; check the path "
                "under budget_store.path (or $TOLLWAY_BUDGETS_DB)", key="budget_store.path"
            ) from None

    def _conn(self, *, wait: bool) -> sqlite3.Cursor:
        """A cursor on this thread's connection: ``wait`` ones use the busy timeout, the
        async path's ones fail fast so the event loop can yield instead. One cursor per
        connection, reused by every transaction: ``Connection.execute`` would create and
        free one per statement (~1,000 instructions each, ten statements a call). Every
        transaction ends with a COMMIT or ROLLBACK on it, which resets its last query."""
        local = self._local
        name = "sync" if wait else "nowait"
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            local.__dict__.clear()
            local.pid = pid
        cursor = local.__dict__.get(name)
        if cursor is None:
            cursor = self._connect(wait=wait).cursor()
            local.__dict__[name] = cursor
        return cursor

    def _sync(self, body: Callable[[sqlite3.Cursor], T]) -> T:
        conn = self._conn(wait=True)
        try:
            return run_transaction(conn, body)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        return retry_while_busy(lambda: run_transaction(conn, body), retry_for=self.busy_timeout)

    async def _async(self, body: Callable[[sqlite3.Cursor], T]) -> T:
        conn = self._conn(wait=False)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.0005
        while True:
            try:
                return run_transaction(conn, body)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    # ------------------------------------------------------------------ transactions

    def _sweep(self, conn: sqlite3.Cursor, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY
        expired = conn.execute(
            "SELECT key, SUM(amount) FROM budget_holds WHERE expires <= ? GROUP BY key", (now,)
        ).fetchall()
        if expired:
            conn.executemany(
                "UPDATE budget_counters SET reserved = reserved - ?, "
                "released_total = released_total + ? WHERE key = ?",
                [(amount, amount, key) for key, amount in expired],
            )
            conn.execute("DELETE FROM budget_holds WHERE expires <= ?", (now,))
        if now >= self._next_cleanup:
            self._next_cleanup = now + 60
            conn.execute(
                "DELETE FROM budget_counters WHERE period_end IS NOT NULL AND period_end < ? "
                "AND reserved = 0",
                (now - COUNTER_RETENTION,),
            )

    def _reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Callable[[sqlite3.Cursor], Denial | None]:
        """Check-and-reserve. Expired holds are swept at most every ``_SWEEP_EVERY``
        seconds and whenever a charge would not fit (only then can a sweep change the
        answer), so the common call pays one conditional UPDATE and one INSERT."""

        def body(conn: sqlite3.Cursor) -> Denial | None:
            swept = now >= self._next_sweep
            if swept:
                self._sweep(conn, now)
            if len(charges) == 1:
                c = charges[0]
                if conn.execute(_RESERVE_ONE, (c.amount, c.amount, c.limit, c.key, c.amount,
                                               c.limit)).rowcount:
                    conn.execute(_INSERT_HOLD, (hold_id, c.key, c.amount, expires_at))
                    return None
            return self._reserve_all(conn, hold_id, charges, expires_at, now, swept)

        return body

    def _reserve_all(
        self, conn: sqlite3.Cursor, hold_id: str, charges: Sequence[Charge],
        expires_at: float, now: float, swept: bool,
    ) -> Denial | None:
        """The general reserve: create missing counters, check every charge (sweeping
        once before a denial), reserve all or none."""
        conn.executemany(_CREATE_COUNTER, [
            (c.key, c.budget, c.scope, c.period_start, c.period_end, c.limit) for c in charges
        ])
        while True:
            marks = ",".join("?" * len(charges))
            rows = conn.execute(
                f"SELECT key, spent, reserved FROM budget_counters WHERE key IN ({marks})",
                [c.key for c in charges],
            ).fetchall()
            found = {key: (spent, reserved) for key, spent, reserved in rows}
            denial = None
            for index, charge in enumerate(charges):
                spent, reserved = found[charge.key]
                if spent + reserved + charge.amount > charge.limit:
                    denial = Denial(index, spent, reserved)
                    break
            if denial is None:
                break
            if swept:
                return denial
            self._sweep(conn, now)
            swept = True
        conn.executemany(
            "UPDATE budget_counters SET reserved = reserved + ?, "
            "reserved_total = reserved_total + ?, lim = ? WHERE key = ?",
            [(c.amount, c.amount, c.limit, c.key) for c in charges],
        )
        conn.executemany(_INSERT_HOLD, [(hold_id, c.key, c.amount, expires_at) for c in charges])
        return None

    def _settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int],
        *, spent: bool = True,
    ) -> Callable[[sqlite3.Cursor], list[int]]:
        """The settle transaction; ``spent=False`` skips reading the counters' spent
        back (returns ``[]``) for a caller without soft thresholds."""

        def body(conn: sqlite3.Cursor) -> list[int]:
            execute = conn.execute
            after: list[int] = []
            for charge, actual in zip(charges, actuals, strict=True):
                key = charge.key
                amount: int | None = charge.amount
                if not execute(_TAKE_EXACT, (hold_id, key, amount)).rowcount:
                    # Expired and swept, already ended, or holding another amount.
                    held = execute(_HELD_ONE, (hold_id, key)).fetchone()
                    amount = None if held is None else held[0]
                    if amount is not None:
                        execute(_DROP_ONE, (hold_id, key))
                if amount is None:
                    reserved_delta, released, overrun = 0, 0, actual
                else:
                    used = min(actual, amount)
                    reserved_delta, released, overrun = amount, amount - used, actual - used
                values = (actual, reserved_delta, released, overrun, key)
                if not execute(_SETTLE_ONE, values).rowcount:
                    # Its counter was cleaned up meanwhile (a very late settle; a counter
                    # is only cleaned up with nothing reserved, so nothing was held).
                    execute(_CREATE_COUNTER, (
                        key, charge.budget, charge.scope, charge.period_start,
                        charge.period_end, charge.limit,
                    ))
                    execute(_SETTLE_ONE, values)
                if spent:
                    after.append(int(execute(_SPENT, (key,)).fetchone()[0]))
            return after

        return body

    def _release(self, hold_id: str) -> Callable[[sqlite3.Cursor], None]:
        def body(conn: sqlite3.Cursor) -> None:
            held = conn.execute(_HELD, (hold_id,)).fetchall()
            if held:
                conn.execute(_DROP_HOLD, (hold_id,))
                conn.executemany(_RELEASE_ONE, [(amount, amount, key) for key, amount in held])

        return body

    def _counters(self, now: float) -> Callable[[sqlite3.Cursor], list[CounterState]]:
        def body(conn: sqlite3.Cursor) -> list[CounterState]:
            self._sweep(conn, now)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM budget_counters "
                "WHERE period_end IS NULL OR period_end > ?",
                (now,),
            ).fetchall()
            return [CounterState(*row) for row in rows]

        return body

    # ------------------------------------------------------------------ contract

    def reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        return self._sync(self._reserve(hold_id, charges, expires_at, now))

    def settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float
    ) -> list[int]:
        return self._sync(self._settle(hold_id, charges, actuals))

    def release(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        self._sync(self._release(hold_id))

    def counters(self, now: float) -> list[CounterState]:
        return self._sync(self._counters(now))

    async def areserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        # skippable: a reservation whose caller was cancelled before it ran is not made
        denial = await self._group.run(self._reserve(hold_id, charges, expires_at, now),
                                       skippable=True)
        if denial is None:
            self._group.opened()
        return denial

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float
    ) -> list[int]:
        try:
            return await self._group.run(self._settle(hold_id, charges, actuals), ends_hold=True)
        finally:
            self._group.closed()

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        try:
            await self._group.run(self._release(hold_id), ends_hold=True)
        finally:
            self._group.closed()

    async def acounters(self, now: float) -> list[CounterState]:
        return await self._async(self._counters(now))

    # ------------------------------------------------------------------ the ledger's file

    def shares_database(self, ledger: object) -> bool:
        """True when ``ledger`` is a SQLite ledger on this store's file: then a hold's
        settle and the call's row are one transaction (:meth:`settle_and_record`)."""
        from tollway.core.stores.sqlite_ledger import SQLiteLedger

        if not isinstance(ledger, SQLiteLedger) or ledger.path == ":memory:":
            return False
        try:
            return os.path.samefile(ledger.path, self.path)
        except OSError:
            return Path(ledger.path).resolve() == self.path.resolve()

    def _with_row(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        row: CallRecord, spent: bool,
    ) -> Callable[[sqlite3.Cursor], list[int]]:
        end = (self._settle(hold_id, charges, actuals, spent=spent)
               if actuals is not None else None)
        release = self._release(hold_id) if actuals is None else None
        insert, values = insert_row(row)

        def body(conn: sqlite3.Cursor) -> list[int]:
            spent: list[int] = []
            if end is not None:
                spent = end(conn)
            elif release is not None:
                release(conn)
            conn.execute(insert, values)
            return spent

        return body

    def settle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: object, row: CallRecord, *, spent: bool = True,
    ) -> list[int]:
        """Settle (``actuals``) or release (None) and insert ``row`` in ONE transaction
        (``spent=False``: the counters' spent is not read back, ``[]`` returned)."""
        return self._sync(self._with_row(hold_id, charges, actuals, row, spent))

    async def asettle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: object, row: CallRecord, *, spent: bool = True,
    ) -> list[int]:
        try:
            return await self._group.run(self._with_row(hold_id, charges, actuals, row, spent),
                                         ends_hold=True)
        finally:
            self._group.closed()

    def close(self) -> None:
        """Close this thread's connections (other threads' close when they exit)."""
        local: Any = self._local
        for name in ("sync", "nowait"):
            cursor = local.__dict__.pop(name, None)
            if cursor is not None:
                cursor.connection.close()
