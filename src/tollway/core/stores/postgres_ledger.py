"""The shared ledger: PostgreSQL through psycopg 3, for many processes on many machines.

Each row is one autocommitted INSERT: it is committed (with PostgreSQL's default
``synchronous_commit=on``, flushed to the server's WAL) before ``record`` / ``arecord``
returns, so neither a killed client nor a crashed server loses it.

The tables live in their own schema (``?schema=NAME`` in the URL, default ``tollway``):
``calls`` and ``schema_version``; they are created and migrated on first use, under an
advisory lock so processes starting together do not race. Money is BIGINT nano-USD.

``psycopg`` is imported only when a PostgreSQL ledger is opened (``pip install
tollway[postgres]``). Sync calls share one connection per process under a lock;
``arecord`` uses one AsyncConnection per event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import weakref
import zlib
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tollway.core.cost.ledger import COLUMNS, record_from_values, row_values
from tollway.core.cost.spend import SQLDialect, build_calls_sql, build_sql, rows_from_sql
from tollway.core.errors import ConfigError

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord
    from tollway.core.cost.spend import CallsQuery, SpendQuery, SpendRow

__all__ = ["PostgresLedger"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_COLUMN_LIST = ", ".join(f'"{c.name}"' for c in COLUMNS)


def _migrations(schema: str) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(version, statements) for ``schema``: applied in order; add, never edit."""
    table = f'"{schema}"."calls"'
    return (
        (
            1,
            (
                f"CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, "
                + ", ".join(f'"{c.name}" {c.postgres}' for c in COLUMNS)
                + ")",
                f'CREATE INDEX IF NOT EXISTS "calls_time" ON {table} ("time")',
            ),
        ),
    )


_OPEN: weakref.WeakSet[PostgresLedger] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child, drop the parent's connections (never close them: that would
    end the parent's sessions; psycopg itself only finishes a connection in the process
    that opened it) and its lock; the child connects on first use."""
    for ledger in list(_OPEN):
        ledger._conn = None
        ledger._aconns = {}
        ledger._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _psycopg() -> Any:
    """The psycopg module, imported on first use."""
    import psycopg

    return psycopg


def _finish(conn: Any) -> None:
    """Close an AsyncConnection from outside its event loop: libpq's finish does no
    waiting; marking it closed keeps psycopg from warning that it was left open."""
    conn._closed = True
    conn.pgconn.finish()


def _split_url(url: str) -> tuple[str, str | None]:
    """The libpq URL without tollway's own ``schema`` parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = [(k, v) for k, v in query if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


class PostgresLedger:
    """A ledger in PostgreSQL (``postgresql://user@host:5432/db?schema=tollway``)."""

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: int = 10) -> None:
        conninfo, url_schema = _split_url(url)
        self.schema = schema or url_schema or "tollway"
        if not _IDENTIFIER.match(self.schema):
            raise ConfigError(
                f"ledger schema must be a plain SQL identifier (letters, digits, _); got "
                f"{self.schema!r}",
                key="ledger",
            )
        self._conninfo = conninfo
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo:
            self._connect_kwargs["connect_timeout"] = connect_timeout
        table = f'"{self.schema}"."calls"'
        self._table = table
        self._insert = (
            f"INSERT INTO {table} ({_COLUMN_LIST}) VALUES ({', '.join('%s' for _ in COLUMNS)})"
        )
        self._dialect = SQLDialect(
            table=table,
            placeholder="%s",
            hour="to_char(\"time\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
            day="to_char(\"time\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            month="to_char(\"time\" AT TIME ZONE 'UTC', 'YYYY-MM')",
            tag=lambda name: ('("tags" ->> %s)', name),
            time_param=lambda value: value,
        )
        self._lock = threading.Lock()
        self._conn: Any = None
        self._aconns: dict[asyncio.AbstractEventLoop, tuple[asyncio.Lock, Any]] = {}
        _OPEN.add(self)
        with self._lock:
            self._connection()

    # ------------------------------------------------------------------ connections

    def _connection(self) -> Any:
        """This process's sync connection (caller holds the lock), migrated on first use."""
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        import psycopg

        conn = psycopg.connect(self._conninfo, **self._connect_kwargs)
        try:
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _migrate(self, conn: Any) -> None:
        lock_key = zlib.crc32(f"tollway-ledger:{self.schema}".encode())
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{self.schema}"."schema_version" '
                "(version INTEGER NOT NULL)"
            )
            row = conn.execute(
                f'SELECT MAX(version) FROM "{self.schema}"."schema_version"'
            ).fetchone()
            current = int(row[0] or 0)
            for version, statements in _migrations(self.schema):
                if version > current:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(
                        f'INSERT INTO "{self.schema}"."schema_version" (version) VALUES (%s)',
                        (version,),
                    )

    def _run(self, action: Any) -> Any:
        """Run ``action(conn)`` under the lock. If the connection turns out to be broken
        (server restart, network cut), reconnect and run it once more: a single
        autocommitted statement on a dead connection has not committed, except in the
        rare case where the link died between the server's commit and its reply."""
        import psycopg

        with self._lock:
            conn = self._connection()
            try:
                return action(conn)
            except psycopg.OperationalError:
                if not conn.closed:
                    raise
            return action(self._connection())

    # ------------------------------------------------------------------ Ledger

    def record(self, row: CallRecord) -> None:
        """Insert one row; committed when this returns."""
        values = row_values(row, text_time=False)
        self._run(lambda conn: conn.execute(self._insert, values))

    async def arecord(self, row: CallRecord) -> None:
        """Insert one row on this event loop's AsyncConnection; committed on return."""
        values = row_values(row, text_time=False)
        loop = asyncio.get_running_loop()
        entry = self._aconns.get(loop)
        if entry is None:
            self._forget_closed_loops()
            entry = (asyncio.Lock(), None)
            self._aconns[loop] = entry
        lock = entry[0]
        async with lock:
            conn = self._aconns[loop][1]
            if conn is None or conn.closed:
                import psycopg

                with self._lock:  # the schema exists once the sync connection is up
                    self._connection()
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, **self._connect_kwargs
                )
                self._aconns[loop] = (lock, conn)
            try:
                await conn.execute(self._insert, values)
            except _psycopg().OperationalError:
                if not conn.closed:
                    raise
                conn = await _psycopg().AsyncConnection.connect(
                    self._conninfo, **self._connect_kwargs
                )
                self._aconns[loop] = (lock, conn)
                await conn.execute(self._insert, values)

    def _forget_closed_loops(self) -> None:
        """Close the connections of event loops that have ended (``asyncio.run`` per
        request, pytest loops...) so they neither leak nor linger."""
        for loop in [lp for lp in self._aconns if lp.is_closed()]:
            _lock, conn = self._aconns.pop(loop)
            if conn is not None and not conn.closed:
                _finish(conn)

    def query(self, query: SpendQuery) -> list[SpendRow]:
        sql, params = build_sql(query, self._dialect)
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        return rows_from_sql(query, rows)

    def calls(self, query: CallsQuery) -> list[CallRecord]:
        sql, params = build_calls_sql(query, self._dialect, COLUMNS)
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        names = [c.name for c in COLUMNS]
        return [record_from_values(dict(zip(names, r, strict=True))) for r in rows]

    def records(self, *, limit: int | None = None) -> list[CallRecord]:
        """Stored rows as CallRecords, oldest first (for tools and tests)."""
        sql = f"SELECT {_COLUMN_LIST} FROM {self._table} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._run(lambda conn: conn.execute(sql).fetchall())
        names = [c.name for c in COLUMNS]
        out = []
        for r in rows:
            out.append(record_from_values(dict(zip(names, r, strict=True))))
        return out

    def count(self) -> int:
        sql = f"SELECT COUNT(*) FROM {self._table}"
        return int(self._run(lambda conn: conn.execute(sql).fetchone()[0]))

    async def aclose(self) -> None:
        """Close this event loop's async connection (and the sync one)."""
        loop = asyncio.get_running_loop()
        entry = self._aconns.pop(loop, None)
        if entry is not None and entry[1] is not None:
            await entry[1].close()
        self.close()

    def close(self) -> None:
        """Close the sync connection and every async one (closing a libpq connection
        does no waiting, so it is safe from outside their event loops)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        for _lock, conn in list(self._aconns.values()):
            if conn is not None and not conn.closed:
                _finish(conn)
        self._aconns = {}

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresLedger(schema={self.schema!r})"
