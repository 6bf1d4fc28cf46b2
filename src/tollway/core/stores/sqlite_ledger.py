"""The embedded ledger: one SQLite file in WAL mode, shared by every process on a machine.

Durability (the default ``synchronous=NORMAL``): each row is its own transaction,
appended to the write-ahead log with ``write()`` before ``record`` returns. The row is
then in the operating system's page cache, so it SURVIVES the process being killed
(SIGKILL, OOM, a crash) at any later moment. It does NOT survive an operating-system
crash or power loss in the following second or so: the last transactions may be rolled
back (the file stays consistent). ``sqlite:///path?synchronous=full`` fsyncs every commit
and survives those too, at about a millisecond per row instead of tens of microseconds.

Concurrency: WAL lets readers run beside one writer; writers from many processes queue
on SQLite's lock (``busy_timeout``), and a retry loop with backoff absorbs the cases
where SQLite returns "database is locked" at once, so the caller never sees it.
Do not put the file on a network file system (WAL needs shared memory).

One connection per process (abandoned and re-opened in a forked child), shared by its
threads under a lock: SQLite serialises writers anyway, and a record takes ~25 us.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from tollway.core.cost.ledger import (
    COLUMNS,
    FIRST_COLUMNS,
    added_columns,
    format_time,
    record_from_values,
    row_values,
)
from tollway.core.cost.spend import SQLDialect, build_calls_sql, build_sql, rows_from_sql
from tollway.core.errors import ConfigError
from tollway.core.logs import logger
from tollway.core.stores._spool_owner import SpoolOwner
from tollway.core.stores._sqlite import is_busy, open_connection, retry_while_busy
from tollway.core.stores._sqlite_rows import (
    COLUMN_LIST,
    INSERT_ROW,
    TABLE,
    insert_row,
    insert_values,
)

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord
    from tollway.core.cost.spend import CallsQuery, SpendQuery, SpendRow

__all__ = ["INSERT_ROW", "SQLiteLedger", "insert_row", "insert_values"]


T = TypeVar("T")
_log = logger("tollway.ledger")

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            f'CREATE TABLE IF NOT EXISTS "{TABLE}" (id INTEGER PRIMARY KEY, '
            + ", ".join(f'"{c.name}" {c.sqlite}' for c in FIRST_COLUMNS)
            + ")",
            f'CREATE INDEX IF NOT EXISTS "{TABLE}_time" ON "{TABLE}" ("time")',
        ),
    ),
    (
        2,  # image tokens (embeddings and images); old rows read 0
        tuple(f'ALTER TABLE "{TABLE}" ADD COLUMN "{c.name}" {c.sqlite}' for c in added_columns(2)),
    ),
    (
        3,  # audio / video / cached-modality tokens and the service tier; old rows read 0 / NULL
        tuple(f'ALTER TABLE "{TABLE}" ADD COLUMN "{c.name}" {c.sqlite}' for c in added_columns(3)),
    ),
)
"""(version, statements): applied in order on first use; add, never edit."""
SCHEMA_VERSION = MIGRATIONS[-1][0]

_SYNC_MODES = ("off", "normal", "full", "extra")

_DIALECT = SQLDialect(
    table=f'"{TABLE}"',
    placeholder="?",
    hour='substr("time", 1, 13)',
    day='substr("time", 1, 10)',
    month='substr("time", 1, 7)',
    tag=lambda name: ('json_extract("tags", ?)', f'$."{name}"'),
    time_param=format_time,
)


_OPEN: weakref.WeakSet[SQLiteLedger] = weakref.WeakSet()


_ABANDONED: list[sqlite3.Connection] = []
"""Connections inherited over a fork: never used or closed in the child (SQLite forbids
carrying a connection across fork), only kept referenced."""


def _after_fork() -> None:
    """In a forked child, abandon the parent's connection and lock; the child opens its
    own connection on first use."""
    for ledger in list(_OPEN):
        if ledger._conn is not None:
            _ABANDONED.append(ledger._conn)
        ledger._conn = None
        ledger._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SQLiteLedger:
    """A ledger in one SQLite file (or ``":memory:"``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "normal",
        busy_timeout: float = 10.0,
        retry_for: float = 300.0,
    ) -> None:
        if synchronous.lower() not in _SYNC_MODES:
            raise ConfigError(
                f"synchronous must be one of {', '.join(_SYNC_MODES)}; got {synchronous!r}",
                key="ledger",
            )
        text = os.fspath(path)
        self.path = text if text == ":memory:" else str(Path(text).expanduser())
        self.synchronous = synchronous.lower()
        self.busy_timeout = busy_timeout
        self.retry_for = retry_for
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        _OPEN.add(self)
        with self._lock:
            self._retrying(lambda: self._connection())
        self._spool: _RowSpool | None = (
            _RowSpool(self.path, busy_timeout=max(busy_timeout, 30.0))
            if self.path != ":memory:" and self.synchronous in ("normal", "off") else None
        )

    @classmethod
    def from_url(cls, url: str) -> SQLiteLedger:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy's rule),
        ``sqlite:///~/ledger.db``; query: ``synchronous=normal|full``, ``busy_timeout``
        (seconds)."""
        path = cls.url_path(url)
        options = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        kwargs: dict[str, Any] = {}
        if "synchronous" in options:
            kwargs["synchronous"] = options.pop("synchronous")
        if "busy_timeout" in options:
            try:
                kwargs["busy_timeout"] = float(options.pop("busy_timeout"))
            except ValueError:
                raise ConfigError(
                    "busy_timeout must be a number of seconds", key="ledger"
                ) from None
        if options:
            raise ConfigError(
                f"unknown sqlite ledger options {sorted(options)}: use synchronous, busy_timeout",
                key="ledger",
            )
        return cls(path, **kwargs)

    @staticmethod
    def url_path(url: str) -> str:
        """The file a ``sqlite:`` URL names (``":memory:"`` for none)."""
        parts = urlsplit(url)
        path = unquote(parts.path)
        path = path[1:] if path.startswith("/") else path
        if parts.netloc:
            path = parts.netloc + ("/" + path if path else "")
        return path if path and path != ":memory:" else ":memory:"

    # ------------------------------------------------------------------ connection

    def _connection(self) -> sqlite3.Connection:
        """This process's connection (caller holds the lock)."""
        if self._conn is not None:
            return self._conn
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def setup(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            # The ledger is written, rarely read here: a small page cache keeps a
            # long-running process's memory flat (the default grows to 2 MB).
            conn.execute("PRAGMA cache_size = -256")
            _migrate(conn)

        self._conn = open_connection(self.path, busy_timeout=self.busy_timeout, setup=setup)
        return self._conn

    def _read(self) -> sqlite3.Connection:
        """The connection for a read, after applying every process's pending budget-store
        spool to this file (rows the SQLite budget store keeps there for a moment before
        they are in the table; see ``sqlite_budgets``), so a read sees every row written
        before it. A file without a spool costs one ``listdir`` (caller holds the lock)."""
        conn = self._connection()
        if self.path != ":memory:" and os.path.isdir(self.path + "-spool"):
            from tollway.core.stores._spool_apply import catch_up

            cursor = conn.cursor()
            try:
                catch_up(cursor, self.path)
            finally:
                cursor.close()
        return conn

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run ``action`` (lock held), retrying while SQLite reports the file busy."""
        return retry_while_busy(action, retry_for=self.retry_for)

    # ------------------------------------------------------------------ Ledger

    def record(self, row: CallRecord) -> None:
        """Write one row, durable against a killed process on return: one ``write()``
        to this process's spool (applied to the table in batches; every read applies
        what is pending first), or with ``synchronous=full|extra`` its own fsynced
        transaction. A spool that cannot be written (a full disk) is bypassed."""
        spool = self._spool
        if spool is not None:
            try:
                spool.append_row(row_values(row, text_time=True))
                return
            except OSError as exc:
                _log.warning("ledger %s: spool write failed (%s); writing the row in a "
                             "transaction instead", self.path, exc)
        sql, values = insert_row(row)
        with self._lock:
            try:
                (self._conn or self._connection()).execute(sql, values)
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
            self._retrying(lambda: self._connection().execute(sql, values))

    async def arecord(self, row: CallRecord) -> None:
        """Same as :meth:`record`: a local insert takes microseconds, so it is done
        inline rather than paying a thread hop per row."""
        self.record(row)

    def query(self, query: SpendQuery) -> list[SpendRow]:
        sql, params = build_sql(query, _DIALECT)
        with self._lock:
            rows = self._retrying(lambda: self._read().execute(sql, params).fetchall())
        return rows_from_sql(query, rows)

    def calls(self, query: CallsQuery) -> list[CallRecord]:
        sql, params = build_calls_sql(query, _DIALECT, COLUMNS)
        with self._lock:
            rows = self._retrying(lambda: self._read().execute(sql, params).fetchall())
        names = [c.name for c in COLUMNS]
        return [record_from_values(dict(zip(names, r, strict=True))) for r in rows]

    def records(self, *, limit: int | None = None) -> list[CallRecord]:
        """Stored rows as CallRecords, oldest first (for tools and tests)."""
        sql = f'SELECT {COLUMN_LIST} FROM "{TABLE}" ORDER BY id'
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._retrying(lambda: self._read().execute(sql).fetchall())
        names = [c.name for c in COLUMNS]
        return [record_from_values(dict(zip(names, r, strict=True))) for r in rows]

    def count(self) -> int:
        sql = f'SELECT COUNT(*) FROM "{TABLE}"'
        with self._lock:
            return int(self._retrying(lambda: self._read().execute(sql).fetchone()[0]))

    def close(self) -> None:
        """Apply this process's spool and close the connection."""
        if self._spool is not None:
            self._spool.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteLedger({self.path!r}, synchronous={self.synchronous!r})"


class _RowSpool(SpoolOwner):
    """The ledger's spool: rows appended with one ``write()`` each and applied to the
    table in batches (``_spool_owner``), what makes a row cost microseconds instead of a
    transaction's tens. The table exists: the ledger migrated it before."""

    what = "ledger"
    fix = "check the ledger path (ledger: in tollway.yaml, or $TOLLWAY_LEDGER)"
    config_key = "ledger"

    def append_row(self, values: Sequence[Any]) -> None:
        with self._lock:
            self._append(self._ready(), ("w", tuple(values)))


def _migrate(conn: sqlite3.Connection) -> None:
    """Create / upgrade the schema. Cheap when current; concurrent first opens from
    several processes serialise on BEGIN IMMEDIATE and the second finds nothing to do."""
    if _version(conn) >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = _version(conn)
        for version, statements in MIGRATIONS:
            if version > current:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    return int(row[0] or 0)
