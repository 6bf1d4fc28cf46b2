"""Budget counters in a SQLite file: exact across every process on one machine, with
about one write transaction per thirty calls instead of two per call.

Three ideas, each measured (README, "Speed"):

- **Leases.** A process sets room aside on a counter for its next calls (up to
  ``_LEASE_CALLS`` calls' worth, at most ``1/_LEASE_SHARE`` of the room left, never
  less than the call needs) in one ``BEGIN IMMEDIATE`` transaction, and admits the
  calls that fit in it in memory. Every check for room counts every process's leases
  (``spent + reserved + leased + amount <= limit``), so 0 overshoot holds across
  processes exactly as with one transaction per call. Near the limit a lease is only
  what the call needs: the store then behaves as it did without leases. A lease unused
  for ``_IDLE_RETURN`` seconds goes back, so one process's idle room can hold up
  another's call for about a second at most; a dead process's leases go back as soon as
  another process notices it is dead.
- **A spool.** What a call does to the counters (its reservation, its settle or
  release) and its ledger row, when the ledger shares this file, are appended to this
  process's spool (``_spool``): one ``write()``, durable against a killed process on
  return like a WAL commit at ``synchronous=NORMAL``. A flusher thread applies the spool
  every ``_FLUSH_EVERY`` seconds in one transaction, exactly once (the applied offset is
  stored in that transaction). A reservation and its settle applied in the same batch
  become one UPDATE per counter: no hold row is written at all.
- **Readers catch up.** ``counters`` (``tollway budgets``, the dashboard, the gateway's
  key budgets) and the SQLite ledger's reads first apply every process's pending spool,
  so what they show is exact, not up to a flush late. A soft threshold needs the
  counter's spent after each settle: a guard with one settles through the spool and
  applies it at once (one transaction, as before).

The transactions themselves: each is one ``BEGIN IMMEDIATE`` transaction (SQLite's
single write lock taken up front: no read-then-upgrade race, no deadlock). WAL lets
readers run beside the writer; ``synchronous=NORMAL`` survives a killed process. The
sync path waits for the lock with SQLite's busy timeout and retries the refusals SQLite
returns without waiting (``_sqlite``); the async path never blocks its event loop on
another process's lock: it tries without waiting and yields to the loop before
retrying. Connections are per thread (and reopened after a fork).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tollway.core.cost.budgets.contract import COUNTER_RETENTION, Charge, CounterState, Denial
from tollway.core.logs import logger
from tollway.core.stores._spool_apply import (
    CREATE_COUNTER,
    LEASE_GRANT,
    RELEASE_ONE,
    SPENT,
    Batch,
    catch_up_all,
    parts_of,
)
from tollway.core.stores._spool_owner import SPOOL_OFFSETS, Applied, Side, SpoolOwner

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord

__all__ = ["SQLiteBudgetStore"]

T = TypeVar("T")
_log = logger("tollway.budgets")

_LEASE_CALLS = 128
"""A lease covers at most this many of the calls that asked for it."""
_LEASE_SHARE = 8
"""...and at most this share of the room left on the counter (1/8)."""
_IDLE_RETURN = 1.0
"""Seconds a lease may go unused before it is given back."""
_RECOVER_EVERY = 5.0
"""Seconds between looks for dead processes' spools and leases on the reserve path (a
reservation that would be denied looks at once)."""

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
        overrun_total INTEGER NOT NULL DEFAULT 0,
        leased INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS budget_holds (
        hold_id TEXT NOT NULL,
        key TEXT NOT NULL,
        amount INTEGER NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (hold_id, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS budget_leases (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (owner, key)
    ) WITHOUT ROWID""",
    SPOOL_OFFSETS,
    # Holds are only the calls in flight: the sweep scans them, and an index on
    # ``expires`` would be one more B-tree page written by every reserve and settle.
    "DROP INDEX IF EXISTS budget_holds_expires",
)

_SWEEP_EVERY = 1.0
"""Seconds between sweeps of expired holds when every charge fits (a charge that does
not fit sweeps at once)."""

_COLUMNS = (
    "key, budget, scope, period_start, period_end, lim, spent, reserved, reserved_total, "
    "released_total, overrun_total, leased"
)

# =========================================================================== this process


class SQLiteBudgetStore(SpoolOwner):
    """The single-machine :class:`~tollway.core.cost.budgets.BudgetStore`."""

    what = "budget store"
    fix = "check the path under budget_store.path (or $TOLLWAY_BUDGETS_DB)"
    config_key = "budget_store.path"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        super().__init__(path, busy_timeout=busy_timeout)
        self._next_cleanup = 0.0
        self._next_sweep = 0.0

    def __repr__(self) -> str:
        return f"SQLiteBudgetStore({str(self.path)!r})"

    def _create_schema(self, conn: sqlite3.Cursor) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(budget_counters)")}
        if "leased" not in columns:  # a file made before leases
            conn.execute(
                "ALTER TABLE budget_counters ADD COLUMN leased INTEGER NOT NULL DEFAULT 0")

    def _before_close(self, side: Side) -> None:
        self._return_leases(side, None)

    def _flush(self, side: Side) -> None:
        """The flusher's pass: apply the spool; give back leases unused for a while."""
        super()._flush(side)
        cutoff = time.monotonic() - _IDLE_RETURN
        with self._lock:
            if side is self._side and any(
                    lease[2] < cutoff for lease in side.leases.values()):
                self._return_leases(side, cutoff)

    def _return_leases(self, side: Side, cutoff: float | None) -> None:
        """Give back the leases unused since ``cutoff`` (all of them: None), after
        applying the spool, so each lease's row holds exactly its free room (caller
        holds the lock)."""
        idle = [key for key, lease in side.leases.items() if cutoff is None or lease[2] < cutoff]
        applied = Applied()

        def body(conn: sqlite3.Cursor) -> None:
            self._apply_own(conn, side, applied)
            for key in idle:
                free = side.leases[key][0]
                conn.execute("UPDATE budget_counters SET leased = leased - ? WHERE key = ?",
                             (free, key))
                conn.execute("DELETE FROM budget_leases WHERE owner = ? AND key = ?",
                             (side.owner, key))

        self._sync(body)
        self._finish(side, applied)
        for key in idle:
            del side.leases[key]

    # ------------------------------------------------------------------ reserve

    def _admit(self, side: Side, hold_id: str, charges: Sequence[Charge],
               expires_at: float) -> bool:
        """Admit the call from this process's leases if they hold room for every charge
        (caller holds the lock): one spool record, no transaction."""
        leases = side.leases
        for c in charges:
            lease = leases.get(c.key)
            if lease is None or lease[0] < c.amount or lease[1] != c.limit:
                return False
        self._append(side, ("r", hold_id, expires_at, parts_of(charges)))
        used = time.monotonic()
        for c in charges:
            lease = leases[c.key]
            lease[0] -= c.amount
            lease[2] = used
        return True

    def _sweep(self, conn: sqlite3.Cursor, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY
        expired = conn.execute(
            "SELECT key, SUM(amount) FROM budget_holds WHERE expires <= ? GROUP BY key", (now,)
        ).fetchall()
        if expired:
            conn.executemany(RELEASE_ONE, [(amount, amount, key) for key, amount in expired])
            conn.execute("DELETE FROM budget_holds WHERE expires <= ?", (now,))
        if now >= self._next_cleanup:
            self._next_cleanup = now + 60
            conn.execute(
                "DELETE FROM budget_counters WHERE period_end IS NOT NULL AND period_end < ? "
                "AND reserved = 0 AND leased = 0",
                (now - COUNTER_RETENTION,),
            )

    def _refill(
        self, side: Side, charges: Sequence[Charge], now: float, applied: Applied,
    ) -> Callable[[sqlite3.Cursor], Denial | dict[str, int]]:
        """The lease transaction (caller holds the lock): apply this process's spool,
        then grow each lease that lacks room for its charge, or deny. The grants are
        returned and added to the leases after the COMMIT (a rolled-back transaction
        changes nothing here)."""

        def body(conn: sqlite3.Cursor) -> Denial | dict[str, int]:
            applied.doomed = []
            self._apply_own(conn, side, applied)
            swept = now >= self._next_sweep
            if swept:
                self._sweep(conn, now)
            caught_up = time.monotonic() >= side.next_recovery
            if caught_up:
                self._recover(conn, side, applied)
            conn.executemany(CREATE_COUNTER, [
                (c.key, c.budget, c.scope, c.period_start, c.period_end, c.limit)
                for c in charges
            ])
            marks = ",".join("?" * len(charges))
            select = (f"SELECT key, spent, reserved, leased FROM budget_counters "
                      f"WHERE key IN ({marks})")
            while True:
                found = {key: (spent, reserved, leased) for key, spent, reserved, leased
                         in conn.execute(select, [c.key for c in charges])}
                grants: dict[str, int] = {}
                denial = None
                for index, c in enumerate(charges):
                    spent, reserved, leased = found[c.key]
                    lease = side.leases.get(c.key)
                    free = lease[0] if lease is not None else 0
                    need = c.amount - free
                    if need <= 0:
                        continue
                    room = c.limit - spent - reserved - leased
                    if need > room:
                        # Others' leases are room set aside, not spent: count them as
                        # reserved in what the denial says.
                        denial = Denial(index, spent, reserved + leased - free)
                        break
                    grants[c.key] = max(need, min(c.amount * _LEASE_CALLS, room // _LEASE_SHARE))
                if denial is None:
                    break
                if swept and caught_up:
                    return denial
                self._sweep(conn, now)
                self._recover(conn, side, applied)
                swept = caught_up = True
            conn.executemany(
                "UPDATE budget_counters SET leased = leased + ?, lim = ? WHERE key = ?",
                [(grants.get(c.key, 0), c.limit, c.key) for c in charges],
            )
            if grants:
                conn.executemany(LEASE_GRANT,
                                 [(side.owner, key, grant) for key, grant in grants.items()])
            return grants

        return body

    def _recover(self, conn: sqlite3.Cursor, side: Side, applied: Applied) -> None:
        side.next_recovery = time.monotonic() + _RECOVER_EVERY
        applied.doomed += catch_up_all(conn, self._directory, side.owner)

    def _granted(self, side: Side, charges: Sequence[Charge], grants: dict[str, int]) -> None:
        used = time.monotonic()
        for c in charges:
            lease = side.leases.get(c.key)
            if lease is None:
                lease = side.leases[c.key] = [0, c.limit, used]
            lease[0] += grants.get(c.key, 0)
            lease[1] = c.limit

    def _from_lease(self, hold_id: str, charges: Sequence[Charge], expires_at: float
                    ) -> tuple[Side, bool]:
        """This process's side, and whether its leases admitted the call."""
        with self._lock:
            side = self._ready()
            return side, self._admit(side, hold_id, charges, expires_at)

    def reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        with self._lock:  # held through the refill too (re-entrant)
            side, admitted = self._from_lease(hold_id, charges, expires_at)
            if admitted:
                return None
            applied = Applied()
            result = self._sync(self._refill(side, charges, now, applied))
            return self._after_refill(side, result, applied, hold_id, charges, expires_at)

    async def areserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        side, admitted = self._from_lease(hold_id, charges, expires_at)
        if admitted:
            return None
        applied = Applied()
        return await self._async(
            self._refill(side, charges, now, applied), locked=True,
            then=lambda result: self._after_refill(side, result, applied, hold_id, charges,
                                                   expires_at),
        )

    def _after_refill(self, side: Side, result: Denial | dict[str, int], applied: Applied,
                      hold_id: str, charges: Sequence[Charge], expires_at: float
                      ) -> Denial | None:
        """After the lease transaction's COMMIT (lock held): add the grants, admit."""
        self._finish(side, applied)
        if isinstance(result, Denial):
            return result
        self._granted(side, charges, result)
        if not self._admit(side, hold_id, charges, expires_at):  # the grants cover it
            raise AssertionError("a lease grant did not cover its own charge")
        return None

    # ------------------------------------------------------------------ settle / release

    def _end(self, record: tuple[Any, ...], keys: Sequence[str] | None) -> list[int]:
        """Spool the end of a hold (lock held). ``keys``: read these counters' spent back
        after applying the spool at once (a soft threshold needs it). A spool that
        cannot be written (a full disk) is bypassed: the record is applied in a
        transaction of its own, so nothing paid for waits on a file that failed."""
        side = self._ready()
        try:
            self._append(side, record)
        except OSError as exc:
            _log.warning("budget store %s: spool write failed (%s); settling in a "
                         "transaction instead", self.path, exc)
            applied = Applied()
            spent = self._sync(self._direct(side, record, keys, applied))
            self._finish(side, applied)
            return spent
        if keys is None:
            return []
        applied = Applied()
        spent = self._sync(self._direct(side, None, keys, applied))
        self._finish(side, applied)
        return spent

    def _direct(self, side: Side, record: tuple[Any, ...] | None, keys: Sequence[str] | None,
                applied: Applied) -> Callable[[sqlite3.Cursor], list[int]]:
        """Apply this process's spool (and ``record``, one the spool could not take) at
        once; read ``keys``' spent back."""

        def body(conn: sqlite3.Cursor) -> list[int]:
            self._apply_own(conn, side, applied)
            if record is not None:
                batch = Batch(conn, side.owner)
                batch.add(record)
                batch.finish()
            if keys is None:
                return []
            return [int(conn.execute(SPENT, (key,)).fetchone()[0]) for key in keys]

        return body

    def _settled(self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int],
                 now: float, row: Sequence[Any] | None, spent: bool) -> list[int]:
        record = ("s", hold_id, now, parts_of(charges), tuple(actuals), row)
        with self._lock:
            return self._end(record, [c.key for c in charges] if spent else None)

    def _released(self, hold_id: str, charges: Sequence[Charge],
                  row: Sequence[Any] | None) -> None:
        with self._lock:
            self._end(("x", hold_id, parts_of(charges), row), None)

    def settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        return self._settled(hold_id, charges, actuals, now, None, spent)

    def release(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        self._released(hold_id, charges, None)

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        # One write() (or, for a soft threshold, one local transaction): done inline,
        # and a cancellation cannot interrupt it half-way.
        return self._settled(hold_id, charges, actuals, now, None, spent)

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        self._released(hold_id, charges, None)

    # ------------------------------------------------------------------ counters

    def _counters(self, now: float, applied: Applied) -> Callable[
            [sqlite3.Cursor], list[CounterState]]:
        def body(conn: sqlite3.Cursor) -> list[CounterState]:
            side = self._own_side()
            applied.doomed = catch_up_all(conn, self._directory, side.owner if side else None)
            self._sweep(conn, now)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM budget_counters "
                "WHERE period_end IS NULL OR period_end > ?",
                (now,),
            ).fetchall()
            return [CounterState(*row) for row in rows]

        return body

    def counters(self, now: float) -> list[CounterState]:
        """Every current counter, after applying every process's pending spool."""
        applied = Applied()
        with self._lock:
            states = self._sync(self._counters(now, applied))
            self._finish(None, applied)
        return states

    async def acounters(self, now: float) -> list[CounterState]:
        applied = Applied()

        def finish(states: list[CounterState]) -> list[CounterState]:
            self._finish(None, applied)
            return states

        return await self._async(self._counters(now, applied), locked=True, then=finish)

    # ------------------------------------------------------------------ the ledger's file

    def shares_database(self, ledger: object) -> bool:
        """True when ``ledger`` is a SQLite ledger on this store's file: then a hold's
        settle and the call's row are one spool record, applied in one transaction
        (:meth:`settle_and_record`)."""
        from tollway.core.stores.sqlite_ledger import SQLiteLedger

        if not isinstance(ledger, SQLiteLedger) or ledger.path == ":memory:":
            return False
        try:
            return os.path.samefile(ledger.path, self.path)
        except OSError:
            return Path(ledger.path).resolve() == self.path.resolve()

    def settle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: object, row: CallRecord, *, spent: bool = True,
    ) -> list[int]:
        """Settle (``actuals``) or release (None) and write ``row``: ONE spool record,
        so both are durable together or neither is (``spent=False``: the counters'
        spent is not read back, ``[]`` returned)."""
        from tollway.core.cost.ledger import row_values

        values = row_values(row, text_time=True)
        if actuals is None:
            self._released(hold_id, charges, values)
            return []
        return self._settled(hold_id, charges, actuals, now, values, spent)

    async def asettle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: object, row: CallRecord, *, spent: bool = True,
    ) -> list[int]:
        return self.settle_and_record(hold_id, charges, actuals, now, ledger, row, spent=spent)

