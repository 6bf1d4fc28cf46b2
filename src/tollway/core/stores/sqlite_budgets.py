"""Budget counters in a SQLite file: exact across every process on one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write
lock up front, so check-and-reserve on all counters of a call is atomic against every
other process and thread (no read-then-upgrade race, no deadlock). WAL journal mode
lets ``tollway budgets`` read while calls reserve; ``synchronous=NORMAL`` survives a
killed process (only an OS crash could lose the last commits, which the TTL sweep and
the ledger make harmless). The sync path waits for the lock with SQLite's busy
timeout and retries the refusals SQLite returns without waiting (``_sqlite``); the
async path never blocks its event loop: it tries the lock without waiting and, when
another process holds it, yields with ``asyncio.sleep`` before retrying.

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
from typing import Any, TypeVar

from tollway.core.cost.budgets import COUNTER_RETENTION, Charge, CounterState, Denial
from tollway.core.errors import ConfigError
from tollway.core.stores._sqlite import is_busy, open_connection, retry_while_busy

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
    "CREATE INDEX IF NOT EXISTS budget_holds_expires ON budget_holds (expires)",
)

_SWEEP_EVERY = 1.0
"""Seconds between sweeps of expired holds on the reserve path. A reservation that
finds no room always sweeps first and tries again, so a dead holder's expired hold
never causes a denial; between denials, sweeping once a second keeps the holds table
short without a sweep query on every call."""

_TAKE = (
    "INSERT INTO budget_counters (key, budget, scope, period_start, period_end, lim, "
    "reserved, reserved_total) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE ? <= ? "
    "ON CONFLICT (key) DO UPDATE SET reserved = reserved + excluded.reserved, "
    "reserved_total = reserved_total + excluded.reserved, lim = excluded.lim "
    "WHERE spent + reserved + excluded.reserved <= excluded.lim RETURNING 1"
)
"""Take ``amount`` on a counter if it has room (creating the counter when the amount
fits its limit); returns a row only when it did."""

_SETTLE = (
    "INSERT INTO budget_counters (key, budget, scope, period_start, period_end, lim, "
    "spent, reserved, released_total, overrun_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET spent = spent + excluded.spent, "
    "reserved = reserved + excluded.reserved, "
    "released_total = released_total + excluded.released_total, "
    "overrun_total = overrun_total + excluded.overrun_total RETURNING spent"
)
"""Move a settled call's hold to spent (the deltas as the inserted values)."""

_COLUMNS = (
    "key, budget, scope, period_start, period_end, lim, spent, reserved, reserved_total, "
    "released_total, overrun_total"
)


class _Denied(Exception):
    """A charge found no room: unwinds (and rolls back) the reservation."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial)
        self.denial = denial


class SQLiteBudgetStore:
    """The single-machine :class:`~tollway.core.cost.budgets.BudgetStore`."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._schema_ready = False
        self._next_cleanup = 0.0
        self._next_sweep = 0.0

    # ------------------------------------------------------------------ connections

    def _connect(self, *, wait: bool) -> sqlite3.Connection:
        def setup(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._schema_ready:
                self._run(conn, lambda c: [c.execute(statement) for statement in _SCHEMA])
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

    def _conn(self, *, wait: bool) -> sqlite3.Connection:
        """This thread's connection: ``wait`` ones use the busy timeout, the async path's
        ones fail fast so the event loop can yield instead."""
        local = self._local
        name = "sync" if wait else "nowait"
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            local.__dict__.clear()
            local.pid = pid
        conn = local.__dict__.get(name)
        if conn is None:
            conn = self._connect(wait=wait)
            local.__dict__[name] = conn
        return conn

    def _run(self, conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body`` in one write transaction; on any failure (a refused COMMIT included)
        it is rolled back, so running it again is safe."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _sync(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn(wait=True)
        try:
            return self._run(conn, body)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        return retry_while_busy(lambda: self._run(conn, body), retry_for=self.busy_timeout)

    async def _async(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn(wait=False)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.0005
        while True:
            try:
                return self._run(conn, body)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    # ------------------------------------------------------------------ transactions

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        """Give back expired holds (their holders died or hung) and drop old counters."""
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
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float,
        *, sweep: bool,
    ) -> Callable[[sqlite3.Connection], None]:
        """Reserve on every counter or on none: each charge is one conditional upsert
        (room checked and taken in the same statement); the first that finds no room
        raises :class:`_Denied`, which rolls the transaction back."""

        def body(conn: sqlite3.Connection) -> None:
            if sweep or now >= self._next_sweep:
                self._sweep(conn, now)
            for index, c in enumerate(charges):
                taken = conn.execute(
                    _TAKE, (c.key, c.budget, c.scope, c.period_start, c.period_end, c.limit,
                            c.amount, c.amount, c.amount, c.limit),
                ).fetchone()
                if taken is None:
                    row = conn.execute(
                        "SELECT spent, reserved FROM budget_counters WHERE key = ?", (c.key,)
                    ).fetchone()
                    raise _Denied(Denial(index, *(row or (0, 0))))
            conn.executemany(
                "INSERT INTO budget_holds (hold_id, key, amount, expires) VALUES (?, ?, ?, ?)",
                [(hold_id, c.key, c.amount, expires_at) for c in charges],
            )

        return body

    def _settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int]
    ) -> Callable[[sqlite3.Connection], list[int]]:
        def body(conn: sqlite3.Connection) -> list[int]:
            held = dict(conn.execute(
                "DELETE FROM budget_holds WHERE hold_id = ? RETURNING key, amount", (hold_id,)
            ).fetchall())
            spent: list[int] = []
            for charge, actual in zip(charges, actuals, strict=True):
                amount = held.get(charge.key)
                if amount is None:  # released or swept already: count the spend only
                    reserved_delta, released, overrun = 0, 0, actual
                else:
                    used = min(actual, amount)
                    reserved_delta, released, overrun = amount, amount - used, actual - used
                row = conn.execute(
                    _SETTLE,
                    (charge.key, charge.budget, charge.scope, charge.period_start,
                     charge.period_end, charge.limit, actual, -reserved_delta, released,
                     overrun),
                ).fetchone()
                spent.append(int(row[0]))
            return spent

        return body

    def _release(self, hold_id: str) -> Callable[[sqlite3.Connection], None]:
        def body(conn: sqlite3.Connection) -> None:
            held = conn.execute(
                "DELETE FROM budget_holds WHERE hold_id = ? RETURNING key, amount", (hold_id,)
            ).fetchall()
            if held:
                conn.executemany(
                    "UPDATE budget_counters SET reserved = reserved - ?, "
                    "released_total = released_total + ? WHERE key = ?",
                    [(amount, amount, key) for key, amount in held],
                )

        return body

    def _counters(self, now: float) -> Callable[[sqlite3.Connection], list[CounterState]]:
        def body(conn: sqlite3.Connection) -> list[CounterState]:
            self._sweep(conn, now)  # exact figures: expired holds are given back first
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
        try:
            self._sync(self._reserve(hold_id, charges, expires_at, now, sweep=False))
        except _Denied:  # never deny before expired holds are given back
            try:
                self._sync(self._reserve(hold_id, charges, expires_at, now, sweep=True))
            except _Denied as denied:
                return denied.denial
        return None

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
        try:
            await self._async(self._reserve(hold_id, charges, expires_at, now, sweep=False))
        except _Denied:
            try:
                await self._async(self._reserve(hold_id, charges, expires_at, now, sweep=True))
            except _Denied as denied:
                return denied.denial
        return None

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float
    ) -> list[int]:
        return await self._async(self._settle(hold_id, charges, actuals))

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        await self._async(self._release(hold_id))

    async def acounters(self, now: float) -> list[CounterState]:
        return await self._async(self._counters(now))

    def close(self) -> None:
        """Close this thread's connections (other threads' close when they exit)."""
        local: Any = self._local
        for name in ("sync", "nowait"):
            conn = local.__dict__.pop(name, None)
            if conn is not None:
                conn.close()
