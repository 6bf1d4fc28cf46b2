"""Applying the SQLite budget store's spools (``_spool``) to the database: exactly
once, in batches, by whoever gets there first.

Records: ``("w", row)`` a ledger row on its own (the SQLite ledger's spool);
``("r", hold, expires, parts)`` a reservation admitted from the writer's lease;
``("s", hold, now, parts, actuals, row)`` its settle; ``("x", hold, parts, row)`` its
release (``row``: the call's ledger row when the ledger shares the file, else None). A
batch folds what it can: a reservation ended in the same batch never writes a hold row,
every counter gets one UPDATE, and the rows one ``executemany`` per statement shape. A
record whose reservation was applied by an earlier batch ends that hold as a plain
settle or release would. The batch's offset is stored in the same transaction, which is
what makes it exactly once.

Kept apart from the store (``sqlite_budgets``): the SQLite ledger's reads apply spools
too (so they see every row at once) without opening a budget store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from tollway.core.cost.budgets.contract import Charge
from tollway.core.stores._spool import DONE, claim_if_dead, read_frames, spool_dir, spools
from tollway.core.stores._sqlite import run_transaction
from tollway.core.stores._sqlite_rows import insert_values

__all__ = [
    "CREATE_COUNTER", "LEASE_GRANT", "RELEASE_ONE", "SET_APPLIED", "SPENT", "Batch",
    "apply_file", "catch_up", "catch_up_all", "parts_of", "unlink",
]

_READ_BYTES = 4 << 20
"""At most this much of a spool is applied in one batch."""

CREATE_COUNTER = (
    "INSERT OR IGNORE INTO budget_counters (key, budget, scope, period_start, period_end, lim) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_HOLD = "INSERT INTO budget_holds (hold_id, key, amount, expires) VALUES (?, ?, ?, ?)"
_DROP_HOLD = "DELETE FROM budget_holds WHERE hold_id = ?"
_HELD = "SELECT key, amount FROM budget_holds WHERE hold_id = ?"
_TAKE_EXACT = "DELETE FROM budget_holds WHERE hold_id = ? AND key = ? AND amount = ?"
"""End a hold's part on one counter when it holds what the charge says (what reserve
wrote): one statement, and its rowcount says whether it was still held. No statement
here uses ``RETURNING``: SQLite buffers its rows in an ephemeral table, which costs more
than the statement; ``rowcount`` and a primary-key SELECT say the same for less."""
_HELD_ONE = "SELECT amount FROM budget_holds WHERE hold_id = ? AND key = ?"
_DROP_ONE = "DELETE FROM budget_holds WHERE hold_id = ? AND key = ?"
SPENT = "SELECT spent FROM budget_counters WHERE key = ?"
_SETTLE_ONE = (
    "UPDATE budget_counters SET spent = spent + ?, reserved = reserved - ?, "
    "released_total = released_total + ?, overrun_total = overrun_total + ? "
    "WHERE key = ?"
)
RELEASE_ONE = (
    "UPDATE budget_counters SET reserved = reserved - ?, "
    "released_total = released_total + ? WHERE key = ?"
)
_APPLY_DELTAS = (
    "UPDATE budget_counters SET reserved = reserved + ?, reserved_total = reserved_total + ?, "
    "leased = leased + ?, spent = spent + ?, released_total = released_total + ?, "
    "overrun_total = overrun_total + ? WHERE key = ?"
)
_LEASE_TAKE = "UPDATE budget_leases SET amount = amount - ? WHERE owner = ? AND key = ?"
LEASE_GRANT = (
    "INSERT INTO budget_leases (owner, key, amount) VALUES (?, ?, ?) "
    "ON CONFLICT (owner, key) DO UPDATE SET amount = amount + excluded.amount"
)
_APPLIED = "SELECT applied FROM spool_offsets WHERE spool = ?"
SET_APPLIED = (
    "INSERT INTO spool_offsets (spool, applied) VALUES (?, ?) "
    "ON CONFLICT (spool) DO UPDATE SET applied = excluded.applied"
)

Part = tuple[str, str, str, int, "int | None", int, int]
"""A charge as the spool keeps it: key, budget, scope, period start and end, limit,
amount."""


def parts_of(charges: Sequence[Charge]) -> tuple[Part, ...]:
    return tuple((c.key, c.budget, c.scope, c.period_start, c.period_end, c.limit, c.amount)
                 for c in charges)


def _charge(part: Sequence[Any]) -> Charge:
    return Charge(part[0], part[1], part[2], part[3], part[4], part[5], part[6])


class Batch:
    """Spool records applied in one transaction: a reservation settled or released in
    the same batch never writes a hold row; every counter gets one UPDATE."""

    __slots__ = ("conn", "deltas", "details", "holds", "owner", "rows", "taken")

    def __init__(self, conn: sqlite3.Cursor, owner: str) -> None:
        self.conn = conn
        self.owner = owner
        self.holds: dict[str, tuple[float, tuple[Part, ...]]] = {}
        self.deltas: dict[str, list[int]] = {}
        """key -> [reserved, reserved_total, leased, spent, released_total, overrun_total]"""
        self.details: dict[str, Part] = {}
        self.taken: dict[str, int] = {}
        self.rows: list[Sequence[Any]] = []

    def _delta(self, part: Part) -> list[int]:
        key = part[0]
        delta = self.deltas.get(key)
        if delta is None:
            delta = self.deltas[key] = [0, 0, 0, 0, 0, 0]
            self.details[key] = part
        return delta

    def add(self, record: tuple[Any, ...]) -> None:
        kind = record[0]
        if kind == "r":
            _, hold_id, expires, parts = record
            self.holds[hold_id] = (expires, parts)
            for part in parts:
                amount = part[6]
                delta = self._delta(part)
                delta[0] += amount
                delta[1] += amount
                self.taken[part[0]] = self.taken.get(part[0], 0) + amount
        elif kind == "s":
            _, hold_id, now, parts, actuals, row = record
            held = self.holds.pop(hold_id, None)
            if held is None:
                charges = [_charge(p) for p in parts]
                settle_body(hold_id, charges, actuals, spent=False)(self.conn)
            else:
                expired = now >= held[0]
                for part, actual in zip(parts, actuals, strict=True):
                    amount = part[6]
                    delta = self._delta(part)
                    delta[0] -= amount
                    delta[3] += actual
                    if expired:  # as if swept first: the room came back, all of it overran
                        delta[4] += amount
                        delta[5] += actual
                    else:
                        used = min(actual, amount)
                        delta[4] += amount - used
                        delta[5] += actual - used
            if row is not None:
                self.rows.append(row)
        elif kind == "w":  # a ledger row on its own (the ledger's spool)
            self.rows.append(record[1])
        elif kind == "x":
            _, hold_id, parts, row = record
            if self.holds.pop(hold_id, None) is None:
                release_body(hold_id)(self.conn)
            else:
                for part in parts:
                    delta = self._delta(part)
                    delta[0] -= part[6]
                    delta[4] += part[6]
            if row is not None:
                self.rows.append(row)

    def finish(self) -> None:
        conn = self.conn
        if self.holds:
            conn.executemany(_INSERT_HOLD, [
                (hold_id, part[0], part[6], expires)
                for hold_id, (expires, parts) in self.holds.items() for part in parts
            ])
        for key, amount in self.taken.items():
            if conn.execute(_LEASE_TAKE, (amount, self.owner, key)).rowcount:
                self.deltas[key][2] -= amount
        for key, delta in self.deltas.items():
            values = (*delta, key)
            if not conn.execute(_APPLY_DELTAS, values).rowcount:
                p = self.details[key]  # cleaned up meanwhile: a very late settle
                conn.execute(CREATE_COUNTER, p[:6])
                conn.execute(_APPLY_DELTAS, values)
        # Rows in the order they were written: one executemany per run of rows of the
        # same shape (the ids then follow the order of the calls).
        run_sql, run = "", cast(list[Sequence[Any]], [])
        for row in self.rows:
            sql, params = insert_values(row)
            if sql != run_sql and run:
                conn.executemany(run_sql, run)
                run = []
            run_sql = sql
            run.append(params)
        if run:
            conn.executemany(run_sql, run)


def _owner_of(name: str) -> str:
    return name.rsplit(".", 2)[0]


def apply_file(conn: sqlite3.Cursor, path: Path) -> int:
    """Apply what is left of one spool file; returns the offset it is applied to
    (``DONE`` for a retired one)."""
    name = path.name
    row = conn.execute(_APPLIED, (name,)).fetchone()
    offset = 0 if row is None else int(row[0])
    if offset == DONE:
        return DONE
    owner = _owner_of(name)
    while True:
        frames = read_frames(path, offset, limit=_READ_BYTES)
        if not frames.records:
            return offset
        batch = Batch(conn, owner)
        for record in frames.records:
            batch.add(record)
        batch.finish()
        offset = frames.end
        conn.execute(SET_APPLIED, (name, offset))


def _release_leases(conn: sqlite3.Cursor, owner: str) -> None:
    held = conn.execute(
        "SELECT key, amount FROM budget_leases WHERE owner = ?", (owner,)).fetchall()
    if held:
        conn.executemany("UPDATE budget_counters SET leased = leased - ? WHERE key = ?",
                         [(amount, key) for key, amount in held])
        conn.execute("DELETE FROM budget_leases WHERE owner = ?", (owner,))


def catch_up_all(conn: sqlite3.Cursor, directory: Path, own: str | None) -> list[Path]:
    """Apply every process's pending spool (``own``: this process's owner, never taken
    for dead). A dead process's spool is applied to its end and its leases given back;
    its files are returned, to remove after the COMMIT."""
    doomed: list[Path] = []
    by_owner: dict[str, list[Path]] = {}
    for owner, path in spools(directory):
        by_owner.setdefault(owner, []).append(path)
    leases = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budget_leases'"
    ).fetchone() is not None  # a ledger's file without a budget store has none
    lessees = {o for (o,) in conn.execute(
        "SELECT DISTINCT owner FROM budget_leases")} if leases else set()
    for owner in sorted(set(by_owner) | lessees):
        paths = by_owner.get(owner, [])
        if owner == own:
            for path in paths:
                apply_file(conn, path)
            continue
        with claim_if_dead(directory, owner) as dead:
            for path in paths:
                apply_file(conn, path)
            if dead:
                if leases:
                    _release_leases(conn, owner)
                for path in paths:
                    conn.execute(SET_APPLIED, (path.name, DONE))
                doomed.extend(paths)
    present = {path.name for paths in by_owner.values() for path in paths}
    finished = [name for (name,) in conn.execute(
        "SELECT spool FROM spool_offsets WHERE applied = ?", (DONE,))]
    gone = [(name,) for name in finished if name not in present]
    if gone:
        conn.executemany("DELETE FROM spool_offsets WHERE spool = ?", gone)
    return doomed


def unlink(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def catch_up(conn: sqlite3.Cursor, database: str | os.PathLike[str]) -> None:
    """Apply every process's pending spool of ``database`` on ``conn`` (a connection to
    it in autocommit mode): what the SQLite ledger's reads call first, so a row written
    a moment ago by any process is in what they read. Nothing to do, no transaction."""
    directory = spool_dir(Path(database))
    if not spools(directory):
        return
    unlink(run_transaction(conn, lambda c: catch_up_all(c, directory, None)))


def settle_body(
    hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], *, spent: bool = True,
) -> Callable[[sqlite3.Cursor], list[int]]:
    """A settle of a hold already in the database; ``spent=False`` skips reading the
    counters' spent back (returns ``[]``)."""

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
                execute(CREATE_COUNTER, (
                    key, charge.budget, charge.scope, charge.period_start,
                    charge.period_end, charge.limit,
                ))
                execute(_SETTLE_ONE, values)
            if spent:
                after.append(int(execute(SPENT, (key,)).fetchone()[0]))
        return after

    return body


def release_body(hold_id: str) -> Callable[[sqlite3.Cursor], None]:
    def body(conn: sqlite3.Cursor) -> None:
        held = conn.execute(_HELD, (hold_id,)).fetchall()
        if held:
            conn.execute(_DROP_HOLD, (hold_id,))
            conn.executemany(RELEASE_ONE, [(amount, amount, key) for key, amount in held])

    return body


