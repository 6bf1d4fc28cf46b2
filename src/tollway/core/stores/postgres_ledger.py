"""The shared ledger: PostgreSQL through psycopg 3, for many processes on many machines.

Each row is one autocommitted INSERT: it is committed (with PostgreSQL's default
``synchronous_commit=on``, flushed to the server's WAL) before ``record`` / ``arecord``
returns, so neither a killed client nor a crashed server loses it.

The tables live in their own schema (``?schema=NAME`` in the URL, default ``tollway``):
``calls`` and ``schema_version``; they are created and migrated on first use, under an
advisory lock so processes starting together do not race. Money is BIGINT nano-USD.

``psycopg`` is imported only when a PostgreSQL ledger is opened (``pip install
tollway[postgres]``). Connections come from bounded pools (``_postgres.py``;
``?pool_size=4&pool_timeout=30`` in the URL): a caller waits up to ``pool_timeout``
seconds for a free connection, then gets a StoreUnavailableError, never psycopg's
``too many clients``.
"""

from __future__ import annotations

import re
import threading
import zlib
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tollway.core.cost.ledger import (
    COLUMNS,
    FIRST_COLUMNS,
    added_columns,
    record_from_values,
    row_values,
)
from tollway.core.cost.spend import SQLDialect, build_calls_sql, build_sql, rows_from_sql
from tollway.core.errors import ConfigError
from tollway.core.stores._postgres import DEFAULT_POOL_TIMEOUT, PostgresPools

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord
    from tollway.core.cost.spend import CallsQuery, SpendQuery, SpendRow

__all__ = ["PostgresLedger"]

_POOL_SIZE = 4
"""Connections per process (and per event loop): inserts take a fraction of a
millisecond, so a few serve many concurrent calls."""

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
                + ", ".join(f'"{c.name}" {c.postgres}' for c in FIRST_COLUMNS)
                + ")",
                f'CREATE INDEX IF NOT EXISTS "calls_time" ON {table} ("time")',
            ),
        ),
        (
            2,  # image tokens (embeddings and images); old rows read 0
            tuple(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{c.name}" {c.postgres}'
                  for c in added_columns(2)),
        ),
        (
            3,  # audio / video / cached-modality tokens and the service tier
            tuple(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{c.name}" {c.postgres}'
                  for c in added_columns(3)),
        ),
    )


def _psycopg() -> Any:
    """The psycopg module, imported on first use."""
    import psycopg

    return psycopg


_OPTIONS = ("schema", "pool_size", "pool_timeout")


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL without tollway's own parameters (``schema``, ``pool_size``,
    ``pool_timeout``), and those parameters."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OPTIONS}
    rest = [(k, v) for k, v in query if k not in _OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


def _number(options: dict[str, str], name: str, kind: type, default: Any) -> Any:
    if name not in options:
        return default
    try:
        value = kind(options[name])
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise ConfigError(f"ledger option {name} must be a positive number; got "
                          f"{options[name]!r}", key="ledger")
    return value


class PostgresLedger:
    """A ledger in PostgreSQL (``postgresql://user@host:5432/db?schema=tollway``)."""

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: int = 10,
                 pool_size: int | None = None, pool_timeout: float | None = None) -> None:
        conninfo, options = _split_url(url)
        self.schema = schema or options.get("schema") or "tollway"
        if not _IDENTIFIER.match(self.schema):
            raise ConfigError(
                f"ledger schema must be a plain SQL identifier (letters, digits, _); got "
                f"{self.schema!r}",
                key="ledger",
            )
        self.pool_size = pool_size or _number(options, "pool_size", int, _POOL_SIZE)
        self.pool_timeout = pool_timeout or _number(
            options, "pool_timeout", float, DEFAULT_POOL_TIMEOUT
        )
        self._conninfo = conninfo
        connect_kwargs: dict[str, Any] = {}
        if "connect_timeout" not in conninfo:
            connect_kwargs["connect_timeout"] = connect_timeout
        table = f'"{self.schema}"."calls"'
        self._table = table
        self.insert_sql = (
            f"INSERT INTO {table} ({_COLUMN_LIST}) VALUES ({', '.join('%s' for _ in COLUMNS)})"
        )
        """The statement that writes one row (``row_values(row, text_time=False)``): the
        PostgreSQL budget store runs it inside its settle transaction when it shares the
        ledger's database."""
        self._dialect = SQLDialect(
            table=table,
            placeholder="%s",
            hour="to_char(\"time\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
            day="to_char(\"time\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            month="to_char(\"time\" AT TIME ZONE 'UTC', 'YYYY-MM')",
            tag=lambda name: ('("tags" ->> %s)', name),
            time_param=lambda value: value,
        )
        self._pools = PostgresPools(
            conninfo, name="postgres ledger", max_size=self.pool_size,
            timeout=self.pool_timeout, connect_kwargs=connect_kwargs,
        )
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._run(lambda conn: None)  # connect and migrate now: a bad URL fails here

    @property
    def conninfo(self) -> str:
        """The libpq connection string (without tollway's own URL parameters)."""
        return self._conninfo

    # ------------------------------------------------------------------ connections

    def _ensure_schema(self, conn: Any) -> None:
        if self._migrated:
            return
        with self._migrate_lock:
            if not self._migrated:
                self._migrate(conn)
                self._migrated = True

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
        """Run ``action(conn)`` on a pooled connection. If the connection turns out to be
        broken (server restart, network cut), run it once more on a fresh one: a single
        autocommitted statement on a dead connection has not committed, except in the
        rare case where the link died between the server's commit and its reply."""
        psycopg = _psycopg()
        for attempt in (1, 2):
            with self._pools.connection() as conn:
                try:
                    self._ensure_schema(conn)
                    return action(conn)
                except psycopg.OperationalError:
                    if not conn.closed or attempt == 2:
                        raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ Ledger

    def record(self, row: CallRecord) -> None:
        """Insert one row; committed when this returns."""
        values = row_values(row, text_time=False)
        self._run(lambda conn: conn.execute(self.insert_sql, values))

    async def arecord(self, row: CallRecord) -> None:
        """Insert one row on a connection of this event loop's pool; committed on return."""
        values = row_values(row, text_time=False)
        psycopg = _psycopg()
        if not self._migrated:
            self._run(lambda conn: None)  # the schema, once, on the sync pool
        for attempt in (1, 2):
            async with self._pools.aconnection() as conn:
                try:
                    await conn.execute(self.insert_sql, values)
                    return
                except psycopg.OperationalError:
                    if not conn.closed or attempt == 2:
                        raise

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
        """Close this event loop's pool (and the sync one)."""
        await self._pools.aclose()
        self.close()

    def close(self) -> None:
        """Close the sync pool and every async one (finishing a libpq connection does no
        waiting, so it is safe from outside their event loops)."""
        self._pools.close()

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
