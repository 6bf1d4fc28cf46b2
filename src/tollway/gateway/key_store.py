"""Where virtual keys live: SQLite (one machine, the default) or PostgreSQL (many).

Both keep one row per key (id, SHA-256 of the secret, prefix, spec JSON, times) and a
single *version* counter that every change (create, revoke, rotate) increments in the
same transaction. Gateway instances cache keys in memory and poll the version
(:mod:`tollway.gateway.key_cache`): one indexed read every quarter second is how a
revocation reaches every worker on every machine within a second, without Redis.

The store is synchronous (a handful of short statements); the gateway calls it from a
thread (``asyncio.to_thread``) so the event loop never waits on it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import zlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tollway.core.errors import ConfigError
from tollway.gateway.keys import PREFIX_LENGTH, VirtualKey, hash_secret, new_secret

__all__ = ["KeyNotFoundError", "KeyStore", "PostgresKeyStore", "SQLiteKeyStore", "open_key_store"]


class KeyNotFoundError(ConfigError):
    """An admin command named a key id that the store does not hold."""


class KeyStore(Protocol):
    def add(self, key: VirtualKey, secret_hash: str) -> None: ...

    def by_hash(self, secret_hash: str) -> VirtualKey | None: ...

    def get(self, key_id: str) -> VirtualKey: ...

    def list(self) -> list[VirtualKey]: ...

    def revoke(self, key_id: str) -> VirtualKey: ...

    def rotate(self, key_id: str) -> tuple[str, VirtualKey]:
        """A new secret for the key (same id, limits and counters); the old one stops
        working at once."""
        ...

    def version(self) -> int: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


_COLUMNS = "id, prefix, spec, created_at, expires_at, revoked_at"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _row_key(row: Any) -> VirtualKey:
    key_id, prefix, spec, created, expires, revoked = row
    return VirtualKey.from_spec(
        id=key_id, prefix=prefix, spec=json.loads(spec), created_at=float(created),
        expires_at=None if expires is None else float(expires),
        revoked_at=None if revoked is None else float(revoked),
    )


class _SQLKeyStore(ABC):
    """The statements both stores run; subclasses give ``_run`` (one transaction) and
    the placeholder style."""

    _table = "keys"
    _version_table = "key_version"
    _p = "?"

    @abstractmethod
    def _run(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Run ``statements`` in one transaction; the rows of the last one."""

    def _sql(self, text: str) -> str:
        return text.format(t=self._table, v=self._version_table).replace("?", self._p)

    def _bump(self) -> tuple[str, tuple[Any, ...]]:
        return self._sql("UPDATE {v} SET version = version + 1"), ()

    def add(self, key: VirtualKey, secret_hash: str) -> None:
        self._run([
            (self._sql("INSERT INTO {t} (id, hash, prefix, spec, created_at, expires_at, "
                       "revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
             (key.id, secret_hash, key.prefix, json.dumps(key.spec()), key.created_at,
              key.expires_at, key.revoked_at)),
            self._bump(),
        ])

    def by_hash(self, secret_hash: str) -> VirtualKey | None:
        rows = self._run([(self._sql(f"SELECT {_COLUMNS} FROM {{t}} WHERE hash = ?"), (secret_hash,))])
        return _row_key(rows[0]) if rows else None

    def get(self, key_id: str) -> VirtualKey:
        rows = self._run([(self._sql(f"SELECT {_COLUMNS} FROM {{t}} WHERE id = ?"), (key_id,))])
        if not rows:
            raise KeyNotFoundError(f"no key with id {key_id!r}; `tollway keys list` shows them")
        return _row_key(rows[0])

    def list(self) -> list[VirtualKey]:
        rows = self._run([(self._sql(f"SELECT {_COLUMNS} FROM {{t}} ORDER BY created_at"), ())])
        return [_row_key(row) for row in rows]

    def revoke(self, key_id: str) -> VirtualKey:
        self.get(key_id)
        self._run([
            (self._sql("UPDATE {t} SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
             (time.time(), key_id)),
            self._bump(),
        ])
        return self.get(key_id)

    def rotate(self, key_id: str) -> tuple[str, VirtualKey]:
        key = self.get(key_id)
        if key.revoked_at is not None:
            raise ConfigError(f"key {key_id} is revoked; create a new key instead")
        secret = new_secret()
        self._run([
            (self._sql("UPDATE {t} SET hash = ?, prefix = ? WHERE id = ?"),
             (hash_secret(secret), secret[:PREFIX_LENGTH], key_id)),
            self._bump(),
        ])
        return secret, self.get(key_id)

    def version(self) -> int:
        rows = self._run([(self._sql("SELECT version FROM {v}"), ())])
        return int(rows[0][0])

    def ping(self) -> None:
        self.version()


class SQLiteKeyStore(_SQLKeyStore):
    """Keys in a SQLite file (WAL; every process on the machine shares it)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._run([
            ("CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
             "prefix TEXT NOT NULL, spec TEXT NOT NULL, created_at REAL NOT NULL, "
             "expires_at REAL, revoked_at REAL)", ()),
            ("CREATE TABLE IF NOT EXISTS key_version (version INTEGER NOT NULL)", ()),
            ("INSERT INTO key_version (version) SELECT 0 WHERE NOT EXISTS "
             "(SELECT 1 FROM key_version)", ()),
        ])

    def __repr__(self) -> str:
        return f"SQLiteKeyStore({self.path!r})"

    def _run(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE" if len(statements) > 1 else "BEGIN")
            try:
                rows: list[Any] = []
                for sql, params in statements:
                    rows = conn.execute(sql, params).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return rows

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresKeyStore(_SQLKeyStore):
    """Keys in PostgreSQL (``postgresql://...?schema=NAME``, default schema ``tollway``):
    every gateway machine shares them."""

    _p = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "a PostgreSQL key store needs psycopg: pip install 'tollway[postgres]'"
            ) from None
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        schema = next((v for k, v in query if k == "schema"), "tollway")
        if not _IDENTIFIER.match(schema):
            raise ConfigError(f"key store schema must be a plain SQL identifier; got {schema!r}",
                              key="gateway.keys")
        self.url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
        self.schema = schema
        self._table = f'"{schema}"."gateway_keys"'
        self._version_table = f'"{schema}"."gateway_key_version"'
        self._lock = threading.Lock()
        self._conn = psycopg.connect(self.url, autocommit=True)
        t, v = self._table, self._version_table
        self._run([
            ("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"tollway-keys:{schema}".encode()),)),
            (f'CREATE SCHEMA IF NOT EXISTS "{schema}"', ()),
            (f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
             "prefix TEXT NOT NULL, spec TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
             "expires_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION)", ()),
            (f"CREATE TABLE IF NOT EXISTS {v} (version BIGINT NOT NULL)", ()),
            (f"INSERT INTO {v} (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {v})", ()),
        ])

    def __repr__(self) -> str:
        return "PostgresKeyStore(<url hidden>)"

    def _run(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        with self._lock:
            conn = self._conn
            if conn.closed or conn.broken:
                import psycopg

                conn = self._conn = psycopg.connect(self.url, autocommit=True)
            rows: list[Any] = []
            with conn.transaction(), conn.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
                    rows = cur.fetchall() if cur.description else []
            return rows

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_key_store(target: str) -> KeyStore:
    """A store from ``gateway.keys``: a PostgreSQL URL, ``memory``, or a SQLite path."""
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresKeyStore(target)
    if target in ("memory", ":memory:"):
        return SQLiteKeyStore(":memory:")
    return SQLiteKeyStore(Path(target.removeprefix("sqlite:///")).expanduser())
