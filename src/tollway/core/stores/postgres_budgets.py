"""Budget counters in PostgreSQL: exact across many machines, one transaction per step.

Every operation is one READ COMMITTED transaction that locks the counter rows it
touches with ``SELECT ... FOR UPDATE`` in key order (so two calls sharing counters
queue instead of deadlocking), checks, and updates. Expired holds are swept with ``FOR
UPDATE SKIP LOCKED`` so sweeping never waits behind a settle. New counters are created
with ``INSERT ... ON CONFLICT DO NOTHING`` in key order before the lock. A deadlock or
serialization failure (possible only with foreign writers) is retried.

Tables (``<schema>.budget_counters`` and ``<schema>.budget_holds``, schema ``tollway``
by default) are created on first use. Each commit waits for the WAL flush by default;
``synchronous_commit=False`` skips that wait (several times faster per step on a disk
with slow fsync), at the price that a PostgreSQL *server* crash may forget the last
fraction of a second of reservations and settles (the ledger keeps the money record).

Connections come from bounded pools (``_postgres.py``): ``pool_size`` per process and
per event loop, a wait of up to ``pool_timeout`` seconds for a free one, then a typed
StoreUnavailableError; async calls use ``psycopg.AsyncConnection`` (no thread per call).
When the ledger is in the same database, a hold's settle and the call's row are one
transaction (:meth:`PostgresBudgetStore.settle_and_record`). ``psycopg`` is imported on
first use.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from tollway.core.cost.budgets.contract import COUNTER_RETENTION, Charge, CounterState, Denial
from tollway.core.cost.ledger import row_values
from tollway.core.errors import ConfigError
from tollway.core.stores._postgres import DEFAULT_POOL_TIMEOUT, PostgresPools, same_database

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord

__all__ = ["PostgresBudgetStore"]

T = TypeVar("T")
Steps = Generator[tuple[str, Any], Any, T]
"""An operation: yields ``(sql, params)``, is sent the fetched rows, returns its result."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_RETRIES = 5
_POOL_SIZE = 8

# Each operation is written once, as a generator that yields ``(sql, params)`` and is
# sent back the fetched rows; ``_run`` (sync) and ``_arun`` (async) drive it inside one
# transaction, so both paths run exactly the same statements.


def _commit_async(conn: Any) -> None:
    conn.execute("SET synchronous_commit = off")


async def _acommit_async(conn: Any) -> None:
    await conn.execute("SET synchronous_commit = off")


_SCHEMA_LOCK = 0x746F6C6C  # "toll": serializes concurrent first-use schema creation


def _schema_sql(s: str) -> list[str]:
    return [
        f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})",
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.budget_counters (
            key TEXT PRIMARY KEY,
            budget TEXT NOT NULL,
            scope TEXT NOT NULL,
            period_start BIGINT NOT NULL,
            period_end BIGINT,
            lim BIGINT NOT NULL,
            spent BIGINT NOT NULL DEFAULT 0,
            reserved BIGINT NOT NULL DEFAULT 0,
            reserved_total BIGINT NOT NULL DEFAULT 0,
            released_total BIGINT NOT NULL DEFAULT 0,
            overrun_total BIGINT NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.budget_holds (
            hold_id TEXT NOT NULL,
            key TEXT NOT NULL,
            amount BIGINT NOT NULL,
            expires DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (hold_id, key))""",
        f"CREATE INDEX IF NOT EXISTS budget_holds_expires ON {s}.budget_holds (expires)",
    ]


class PostgresBudgetStore:
    """The many-machine :class:`~tollway.core.cost.budgets.BudgetStore` on PostgreSQL.

    At most ``pool_size`` connections per process (and per event loop); a call that
    finds them all busy waits up to ``pool_timeout`` seconds, then gets a
    StoreUnavailableError (``core/stores/_postgres.py``)."""

    def __init__(
        self, url: str, *, schema: str = "tollway", pool_size: int = _POOL_SIZE,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT, synchronous_commit: bool = True,
    ) -> None:
        if not _IDENT.match(schema):
            raise ConfigError(
                f"schema {schema!r} is not a plain SQL identifier (letters, digits, _)",
                key="budget_store.schema",
            )
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be a whole number >= 1; got {pool_size!r}",
                              key="budget_store.pool_size")
        if isinstance(pool_timeout, bool) or not isinstance(pool_timeout, int | float) \
                or pool_timeout <= 0:
            raise ConfigError(f"pool_timeout must be a positive number of seconds; got "
                              f"{pool_timeout!r}", key="budget_store.pool_timeout")
        self.url = url
        self.schema = schema
        self.pool_size = pool_size
        self.pool_timeout = float(pool_timeout)
        self.synchronous_commit = synchronous_commit
        self._t_counters = f"{schema}.budget_counters"
        self._t_holds = f"{schema}.budget_holds"
        self._ready = False
        self._schema_lock = threading.Lock()
        self._pools = PostgresPools(
            url, name="postgres budget store", max_size=pool_size, timeout=self.pool_timeout,
            configure=None if synchronous_commit else _commit_async,
            aconfigure=None if synchronous_commit else _acommit_async,
        )
        self._next_cleanup = 0.0

    # ------------------------------------------------------------------ connections

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        with self._pools.connection() as conn:
            if not self._ready:
                with self._schema_lock:
                    if not self._ready:
                        with conn.transaction():
                            for sql in _schema_sql(self.schema):
                                conn.execute(sql)
                        self._ready = True
            yield conn

    @asynccontextmanager
    async def _aconn(self) -> AsyncIterator[Any]:
        async with self._pools.aconnection() as conn:
            if not self._ready:
                async with conn.transaction():
                    for sql in _schema_sql(self.schema):
                        await conn.execute(sql)
                self._ready = True
            yield conn

    def _run(self, steps: Callable[[], Steps[T]]) -> T:
        import psycopg.errors as pe

        for attempt in range(_RETRIES):
            gen = steps()
            try:
                with self._conn() as conn, conn.transaction():
                    rows: Any = None
                    while True:
                        try:
                            sql, params = gen.send(rows)
                        except StopIteration as done:
                            result = done.value
                            break
                        cur = conn.execute(sql, params)
                        rows = cur.fetchall() if cur.description else None
                return result
            except (pe.DeadlockDetected, pe.SerializationFailure):
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _arun(self, steps: Callable[[], Steps[T]]) -> T:
        import psycopg.errors as pe

        for attempt in range(_RETRIES):
            gen = steps()
            try:
                async with self._aconn() as conn, conn.transaction():
                    rows: Any = None
                    while True:
                        try:
                            sql, params = gen.send(rows)
                        except StopIteration as done:
                            result = done.value
                            break
                        cur = await conn.execute(sql, params)
                        rows = await cur.fetchall() if cur.description else None
                return result
            except (pe.DeadlockDetected, pe.SerializationFailure):
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ statements

    def _create_cte(self, charges: Sequence[Charge]) -> tuple[str, tuple[Any, ...]]:
        """A CTE creating missing counters, in key order (so concurrent creators queue
        on the same first key instead of deadlocking)."""
        ordered = sorted(charges, key=lambda c: c.key)
        return (
            f"ins AS (INSERT INTO {self._t_counters} "
            f"(key, budget, scope, period_start, period_end, lim) "
            f"SELECT * FROM unnest(%s::TEXT[], %s::TEXT[], %s::TEXT[], %s::BIGINT[], "
            f"%s::BIGINT[], %s::BIGINT[]) ORDER BY 1 ON CONFLICT (key) DO NOTHING)",
            ([c.key for c in ordered], [c.budget for c in ordered], [c.scope for c in ordered],
             [c.period_start for c in ordered], [c.period_end for c in ordered],
             [c.limit for c in ordered]),
        )

    def _sweep(self, now: float, charges: Sequence[Charge] = ()) -> Steps[dict[str, int]]:
        """Take expired holds back (and create the charges' counters, same statement).
        Yields the statement; returns {counter: amount swept}."""
        h = self._t_holds
        sql = (
            f"WITH gone AS (DELETE FROM {h} AS h USING ("
            f"SELECT hold_id, key FROM {h} WHERE expires <= %s FOR UPDATE SKIP LOCKED) AS e "
            f"WHERE h.hold_id = e.hold_id AND h.key = e.key RETURNING h.key, h.amount)"
        )
        params: tuple[Any, ...] = (now,)
        if charges:
            cte, cte_params = self._create_cte(charges)
            sql += ", " + cte
            params += cte_params
        rows = yield (sql + " SELECT key, SUM(amount)::BIGINT FROM gone GROUP BY key", params)
        return {key: int(amount) for key, amount in rows or ()}

    def _lock_rows(self, keys: Sequence[str]) -> Steps[dict[str, tuple[int, int]]]:
        rows = yield (
            f"SELECT key, spent, reserved FROM {self._t_counters} WHERE key = ANY(%s) "
            f"ORDER BY key FOR UPDATE",
            (sorted(keys),),
        )
        return {key: (int(spent), int(reserved)) for key, spent, reserved in rows or ()}

    def _apply(
        self, deltas: dict[str, list[int]], limits: dict[str, int], hold: tuple[Any, ...] | None
    ) -> tuple[str, Any]:
        """One statement: add ``[reserved, reserved_total, released_total]`` deltas to the
        locked counters and, when ``hold`` = (hold_id, expires, keys, amounts), record
        the new hold."""
        keys = list(deltas)
        sql = (
            f"WITH d AS (SELECT * FROM unnest(%s::TEXT[], %s::BIGINT[], %s::BIGINT[], "
            f"%s::BIGINT[], %s::BIGINT[]) AS d(key, r, rt, rel, lim)), "
            f"u AS (UPDATE {self._t_counters} AS c SET reserved = c.reserved + d.r, "
            f"reserved_total = c.reserved_total + d.rt, "
            f"released_total = c.released_total + d.rel, lim = COALESCE(d.lim, c.lim) "
            f"FROM d WHERE c.key = d.key RETURNING c.key) "
        )
        params: tuple[Any, ...] = (
            keys, [deltas[k][0] for k in keys], [deltas[k][1] for k in keys],
            [deltas[k][2] for k in keys], [limits.get(k) for k in keys],
        )
        if hold is None:
            return sql + "SELECT count(*) FROM u", params
        sql += (
            f"INSERT INTO {self._t_holds} (hold_id, key, amount, expires) "
            f"SELECT %s, k, a, %s FROM unnest(%s::TEXT[], %s::BIGINT[]) AS h(k, a)"
        )
        return sql, params + hold

    def _reserve_steps(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Callable[[], Steps[Denial | None]]:
        def steps() -> Steps[Denial | None]:
            swept = yield from self._sweep(now, charges)
            found = yield from self._lock_rows([*(c.key for c in charges), *swept])
            denial: Denial | None = None
            for index, charge in enumerate(charges):
                spent, reserved = found[charge.key]
                reserved -= swept.get(charge.key, 0)
                if spent + reserved + charge.amount > charge.limit:
                    denial = Denial(index, spent, reserved)
                    break
            deltas = {key: [-amount, 0, amount] for key, amount in swept.items()}
            hold = None
            if denial is None and charges:
                for c in charges:
                    delta = deltas.setdefault(c.key, [0, 0, 0])
                    delta[0] += c.amount
                    delta[1] += c.amount
                hold = (hold_id, expires_at, [c.key for c in charges],
                        [c.amount for c in charges])
            if deltas:
                yield self._apply(deltas, {c.key: c.limit for c in charges}, hold)
            return denial

        return steps

    def _settle_steps(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int]
    ) -> Callable[[], Steps[list[int]]]:
        def steps() -> Steps[list[int]]:
            cte, cte_params = self._create_cte(charges)
            held_rows = yield (
                f"WITH h AS (DELETE FROM {self._t_holds} WHERE hold_id = %s "
                f"RETURNING key, amount), {cte} SELECT key, amount FROM h",
                (hold_id, *cte_params),
            )
            held = {key: int(amount) for key, amount in held_rows or ()}
            yield from self._lock_rows([c.key for c in charges])
            keys: list[str] = []
            actual_l: list[int] = []
            reserved_l: list[int] = []
            released_l: list[int] = []
            overrun_l: list[int] = []
            for charge, actual in zip(charges, actuals, strict=True):
                amount = held.get(charge.key)
                keys.append(charge.key)
                actual_l.append(actual)
                if amount is None:
                    reserved_l.append(0)
                    released_l.append(0)
                    overrun_l.append(actual)
                else:
                    used = min(actual, amount)
                    reserved_l.append(amount)
                    released_l.append(amount - used)
                    overrun_l.append(actual - used)
            rows = yield (
                f"UPDATE {self._t_counters} AS c SET spent = c.spent + d.actual, "
                f"reserved = c.reserved - d.held, released_total = c.released_total + d.rel, "
                f"overrun_total = c.overrun_total + d.over "
                f"FROM unnest(%s::TEXT[], %s::BIGINT[], %s::BIGINT[], %s::BIGINT[], "
                f"%s::BIGINT[]) AS d(key, actual, held, rel, over) "
                f"WHERE c.key = d.key RETURNING c.key, c.spent",
                (keys, actual_l, reserved_l, released_l, overrun_l),
            )
            spent = {key: int(value) for key, value in rows or ()}
            return [spent[c.key] for c in charges]

        return steps

    def _release_steps(self, hold_id: str) -> Callable[[], Steps[None]]:
        def steps() -> Steps[None]:
            held_rows = yield (
                f"DELETE FROM {self._t_holds} WHERE hold_id = %s RETURNING key, amount",
                (hold_id,),
            )
            held = {key: int(amount) for key, amount in held_rows or ()}
            if held:
                yield from self._lock_rows(list(held))
                yield self._apply({k: [-a, 0, a] for k, a in held.items()}, {}, None)
            return None

        return steps

    def _counter_steps(self, now: float) -> Callable[[], Steps[list[CounterState]]]:
        def steps() -> Steps[list[CounterState]]:
            swept = yield from self._sweep(now)
            if swept:
                yield from self._lock_rows(list(swept))
                yield self._apply({k: [-a, 0, a] for k, a in swept.items()}, {}, None)
            if now >= self._next_cleanup:
                self._next_cleanup = now + 60
                yield (
                    f"DELETE FROM {self._t_counters} WHERE key IN (SELECT key FROM "
                    f"{self._t_counters} WHERE period_end < %s AND reserved = 0 "
                    f"ORDER BY key FOR UPDATE SKIP LOCKED)",
                    (int(now) - COUNTER_RETENTION,),
                )
            rows = yield (
                f"SELECT key, budget, scope, period_start, period_end, lim, spent, reserved, "
                f"reserved_total, released_total, overrun_total FROM {self._t_counters} "
                f"WHERE period_end IS NULL OR period_end > %s",
                (now,),
            )
            return [
                CounterState(r[0], r[1], r[2], int(r[3]), None if r[4] is None else int(r[4]),
                             *(int(v) for v in r[5:]))
                for r in rows or ()
            ]

        return steps

    # ------------------------------------------------------------------ the ledger's database

    def shares_database(self, ledger: object) -> bool:
        """True when ``ledger`` is a PostgreSQL ledger in this store's database (any
        schema): then a hold's settle and the call's row are one transaction."""
        from tollway.core.stores.postgres_ledger import PostgresLedger

        return isinstance(ledger, PostgresLedger) and same_database(ledger.conninfo, self.url)

    def _with_row(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        ledger: Any, row: CallRecord,
    ) -> Callable[[], Steps[list[int]]]:
        values = row_values(row, text_time=False)
        end = (self._settle_steps(hold_id, charges, actuals) if actuals is not None
               else self._release_steps(hold_id))

        def steps() -> Steps[list[int]]:
            spent = yield from end()
            yield (ledger.insert_sql, values)
            return spent or []

        return steps

    def settle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: Any, row: CallRecord, *, spent: bool = True,
    ) -> list[int]:
        """Settle (``actuals``) or release (None) and insert ``row`` into ``ledger``'s
        table in ONE transaction (``spent`` is accepted for the contract; the settle
        reads it back in the same statement anyway)."""
        return self._run(self._with_row(hold_id, charges, actuals, ledger, row))

    async def asettle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: Any, row: CallRecord, *, spent: bool = True,
    ) -> list[int]:
        return await self._arun(self._with_row(hold_id, charges, actuals, ledger, row))

    # ------------------------------------------------------------------ contract

    def reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        return self._run(self._reserve_steps(hold_id, charges, expires_at, now))

    def settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        return self._run(self._settle_steps(hold_id, charges, actuals))

    def release(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        self._run(self._release_steps(hold_id))

    def counters(self, now: float) -> list[CounterState]:
        return self._run(self._counter_steps(now))

    async def areserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        return await self._arun(self._reserve_steps(hold_id, charges, expires_at, now))

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        return await self._arun(self._settle_steps(hold_id, charges, actuals))

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        await self._arun(self._release_steps(hold_id))

    async def acounters(self, now: float) -> list[CounterState]:
        return await self._arun(self._counter_steps(now))

    def close(self) -> None:
        self._pools.close()

    async def aclose(self) -> None:
        """Close the pooled async connections of the running event loop."""
        await self._pools.aclose()

    def drop(self) -> None:
        """Drop this store's schema and everything in it (tests, resets)."""
        self.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self._ready = False
