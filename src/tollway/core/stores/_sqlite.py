"""What the SQLite ledger and the SQLite budget store share: riding out "database is locked".

SQLite's busy timeout makes a connection wait for another's write lock, but some paths
return SQLITE_BUSY at once without calling the busy handler: switching a fresh file to
WAL while other connections open it, reading a WAL index another process is recovering,
a read transaction whose snapshot went stale. Fifty first calls from four processes on
a new file hit those paths every few runs. So every operation, the connection set-up
included, runs in :func:`retry_while_busy`: it retries with jittered, growing sleeps
until ``retry_for`` seconds have passed since the first refusal, then lets the error
out. The operations are whole transactions that roll back on failure, so a retry never
applies anything twice.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["is_busy", "open_connection", "retry_while_busy", "run_transaction"]

T = TypeVar("T")

_FIRST_DELAY = 0.001
_MAX_DELAY = 0.1


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """True when SQLite refused because another connection holds a lock."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry_while_busy(action: Callable[[], T], *, retry_for: float) -> T:
    """``action()``, retried while SQLite reports the file busy, for up to ``retry_for``
    seconds after the first refusal (the happy path pays one ``try``)."""
    deadline = 0.0
    delay = _FIRST_DELAY
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            now = time.monotonic()
            if not deadline:
                deadline = now + retry_for
            elif now > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, _MAX_DELAY)


def run_transaction(cur: sqlite3.Cursor, body: Callable[[sqlite3.Cursor], T]) -> T:
    """``body`` in one write transaction (``BEGIN IMMEDIATE``: SQLite's write lock taken
    up front); on any failure, a refused COMMIT included, it is rolled back, so running
    it again is safe."""
    cur.execute("BEGIN IMMEDIATE")
    try:
        result = body(cur)
        cur.execute("COMMIT")
    except BaseException:
        if cur.connection.in_transaction:
            cur.execute("ROLLBACK")
        raise
    return result


def open_connection(
    path: str, *, busy_timeout: float, setup: Callable[[sqlite3.Connection], None]
) -> sqlite3.Connection:
    """A connection in autocommit mode with ``setup`` (pragmas, schema) applied.

    A set-up that fails closes its connection, so the caller's retry starts clean.
    """
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        setup(conn)
    except BaseException:
        conn.close()
        raise
    return conn
