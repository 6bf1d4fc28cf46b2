"""What every owner of a spool on a SQLite file shares (``_spool``): this process's side
(its owner lock, its spool files, a flusher thread that applies them), per-thread
connections, the sync and async transaction runners, and a close that leaves nothing
behind. The budget store (leases, holds) and the ledger (rows) are spool owners.

A flusher thread per owner per process applies the spool every ``FLUSH_EVERY`` seconds
(``$TOLLWAY_SPOOL_FLUSH_SECONDS``, 0.001-60). It holds the owner only weakly: an owner
garbage-collected unclosed stops its flusher and lets go of its owner lock, so its spool
is then recovered like a dead process's. After a fork the child lets go of the parent's
descriptors and starts a side of its own on first use; at exit every owner is closed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tollway.core.errors import ConfigError
from tollway.core.logs import logger
from tollway.core.stores._spool import DONE, OwnerLock, SpoolFile, frame, spool_dir
from tollway.core.stores._spool_apply import SET_APPLIED, apply_file, unlink
from tollway.core.stores._sqlite import (
    is_busy,
    open_connection,
    retry_while_busy,
    run_transaction,
)

__all__ = ["FLUSH_EVERY", "Applied", "Side", "SpoolOwner"]

T = TypeVar("T")
_log = logger("tollway.stores")


def _flush_every() -> float:
    text = os.environ.get("TOLLWAY_SPOOL_FLUSH_SECONDS")
    if not text:
        return 0.05
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"TOLLWAY_SPOOL_FLUSH_SECONDS must be a number of seconds; got {text!r}",
            key="TOLLWAY_SPOOL_FLUSH_SECONDS") from None
    if not 0.001 <= value <= 60:
        raise ConfigError(
            f"TOLLWAY_SPOOL_FLUSH_SECONDS must be between 0.001 and 60; got {text!r}",
            key="TOLLWAY_SPOOL_FLUSH_SECONDS")
    return value


FLUSH_EVERY = _flush_every()
"""Seconds between the flusher's passes over a spool: how late another process's plain
SQL reader (not tollway's, which catches up) can be."""
ROTATE_BYTES = 8 << 20
"""A spool file this large is retired (applied to its end, then removed) and a new
generation begun, so a long-running process's spool stays small."""


SPOOL_OFFSETS = (
    "CREATE TABLE IF NOT EXISTS spool_offsets (spool TEXT PRIMARY KEY, applied INTEGER NOT NULL) "
    "WITHOUT ROWID"
)


class Side:
    """This process's side of a store: its spool files, its leases, its flusher."""

    def __init__(self, directory: Path) -> None:
        self.pid = os.getpid()
        self.directory = directory
        self.lock = OwnerLock(directory)
        self.owner = self.lock.owner
        self.generation = 0
        self.file = SpoolFile(directory, self.owner, 0)
        self.retired: list[SpoolFile] = []
        self.leases: dict[str, list[Any]] = {}
        """key -> [free room, limit it was granted under, monotonic time last used]"""
        self.applied = 0
        """Offset of ``file`` known to be applied (after a COMMIT; a lower bound)."""
        self.wake = threading.Event()
        self.stopped = False
        self.flusher: threading.Thread | None = None
        self.next_recovery = 0.0

    def pending(self) -> bool:
        return self.file.size > self.applied or bool(self.retired)

    def rotate(self) -> None:
        """Retire the current file and begin the next generation (OSError: the current
        file stays current)."""
        new = SpoolFile(self.directory, self.owner, self.generation + 1)
        self.retired.append(self.file)
        self.generation += 1
        self.file = new
        self.applied = 0

    def abandon(self) -> None:
        """The store was garbage-collected unclosed: stop the flusher and let go of the
        owner lock, keeping the files. The spool then looks like a dead process's, and
        the next look (any store or ledger on the file, this process's included)
        applies it and gives its leases back."""
        if self.pid != os.getpid() or self.stopped:
            return
        self.stopped = True
        self.wake.set()
        self.lock.release(remove=False)
        for f in (self.file, *self.retired):
            f.close()

    def forget(self) -> None:
        """In a forked child: let go of the parent's descriptors, touch no file."""
        self.lock.forget()
        for f in (self.file, *self.retired):
            f.close()
        self.stopped = True


_OWNERS: weakref.WeakSet[SpoolOwner] = weakref.WeakSet()

_pid = os.getpid()
"""This process's id, kept up to date across forks: ``os.getpid()`` is a system call,
and the hot path asks twice per call."""


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()
    for store in list(_OWNERS):
        side = store._side
        if side is not None and side.pid != os.getpid():
            side.forget()
            store._side = None
        store._lock = threading.RLock()


def _at_exit() -> None:
    for store in list(_OWNERS):
        with contextlib.suppress(Exception):
            store.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)


def _flush_loop(ref: weakref.ref[SpoolOwner], side: Side) -> None:
    failures = 0
    while not side.stopped:
        side.wake.wait(FLUSH_EVERY)
        side.wake.clear()
        store = ref()
        if store is None or side.stopped:
            return
        try:
            store._flush(side)
            failures = 0
        except Exception as exc:
            failures += 1
            if failures in (1, 100) or failures % 1000 == 0:
                _log.warning("%s %s: applying the spool failed (%s: %s); it is kept and "
                             "retried", store.what, store.path, type(exc).__name__, exc)
        finally:
            del store
    ref_store = ref()
    if ref_store is not None:
        ref_store._close_thread_connections()



@dataclass(slots=True)
class Applied:
    """What one transaction applied, for :meth:`SpoolOwner._finish` after its COMMIT (a
    transaction that rolls back leaves the process's state untouched; one that is
    retried overwrites these)."""

    offset: int = 0
    retire: list[SpoolFile] = field(default_factory=list)
    doomed: list[Path] = field(default_factory=list)
    """Dead processes' spool files, removed once the COMMIT made them done."""


class SpoolOwner:
    """One owner of a spool on one SQLite file (subclasses: the budget store, the
    ledger's row spool). ``what`` and ``fix`` say, in errors, what it is and how to fix
    a path it cannot open; ``config_key`` names the setting."""

    what = "store"
    fix = "check the path"
    config_key = "path"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.RLock()
        self._schema_ready = False
        self._side: Side | None = None
        self._directory = spool_dir(self.path)
        _OWNERS.add(self)

    def _create_schema(self, conn: sqlite3.Cursor) -> None:
        """Tables this owner needs (in one transaction, on first connect)."""
        conn.execute(SPOOL_OFFSETS)

    def _before_close(self, side: Side) -> None:
        """Upkeep before the last apply at close (the budget store gives leases back)."""

    # ------------------------------------------------------------------ connections

    def _connect(self, *, wait: bool) -> sqlite3.Connection:
        def setup(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._schema_ready:
                run_transaction(conn.cursor(), self._create_schema)
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
                f"cannot open the {self.what} {str(self.path)!r}: {exc}; {self.fix}",
                key=self.config_key,
            ) from None

    def _conn(self, *, wait: bool) -> sqlite3.Cursor:
        """A cursor on this thread's connection: ``wait`` ones use the busy timeout, the
        async path's ones fail fast so the event loop can yield instead. One cursor per
        connection, reused by every transaction (``Connection.execute`` would create
        and free one per statement); every transaction ends with a COMMIT or ROLLBACK
        on it, which resets its last query."""
        local = self._local
        name = "sync" if wait else "nowait"
        pid = _pid
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

    async def _async(self, body: Callable[[sqlite3.Cursor], T], *, locked: bool = False,
                     then: Callable[[T], Any] | None = None) -> Any:
        """``body`` in a transaction without blocking the loop on another process's
        lock; ``locked``: under this store's thread lock (taken before SQLite's, as on
        the sync path, and never held across an ``await``), with ``then`` run on the
        result after the COMMIT in the same locked section."""
        conn = self._conn(wait=False)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.0005
        while True:
            try:
                if locked:
                    with self._lock:
                        result = run_transaction(conn, body)
                        return result if then is None else then(result)
                return run_transaction(conn, body)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _ready(self) -> Side:
        """This process's side, made on first use (caller holds the lock)."""
        side = self._side
        if side is None or side.pid != _pid:
            self._conn(wait=True)  # the schema, before any spool exists
            try:
                side = Side(self._directory)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the {self.what}'s spool {str(self._directory)!r}: "
                    f"{exc}; the directory beside {self.config_key} must be writable",
                    key=self.config_key,
                ) from None
            self._side = side
            weakref.finalize(self, side.abandon)
        return side

    def _own_side(self) -> Side | None:
        """This process's side if it has one (never one inherited over a fork)."""
        side = self._side
        return side if side is not None and side.pid == _pid else None

    def _close_thread_connections(self) -> None:
        local: Any = self._local
        if getattr(local, "pid", None) != os.getpid():
            return
        for name in ("sync", "nowait"):
            cursor = local.__dict__.pop(name, None)
            if cursor is not None:
                cursor.connection.close()

    # ------------------------------------------------------------------ the spool

    def _append(self, side: Side, record: tuple[Any, ...]) -> None:
        """Append ``record`` to this process's spool (OSError: it is not there)."""
        side.file.append(frame(record))
        if side.file.size >= ROTATE_BYTES:
            try:
                side.rotate()
            except OSError as exc:  # the record is in; the next generation waits
                _log.warning("%s %s: could not begin a new spool file (%s); the current "
                             "one grows meanwhile", self.what, self.path, exc)
        if side.flusher is None:
            side.flusher = threading.Thread(
                target=_flush_loop, args=(weakref.ref(self), side),
                name=f"tollway-spool-{self.path.name}", daemon=True,
            )
            side.flusher.start()

    def _apply_own(self, conn: sqlite3.Cursor, side: Side, applied: Applied) -> None:
        """Apply this process's spool inside a transaction, noting in ``applied`` what
        :meth:`_finish` acts on after the COMMIT: the current file's offset and the
        retired files applied to their end (marked done here)."""
        applied.retire = []
        for old in side.retired:
            if apply_file(conn, old.path) in (old.size, DONE):
                conn.execute(SET_APPLIED, (old.name, DONE))
                applied.retire.append(old)
        applied.offset = (side.applied if side.file.size <= side.applied
                          else apply_file(conn, side.file.path))

    def _finish(self, side: Side | None, applied: Applied) -> None:
        """After the COMMIT of a transaction that applied spools: move this process's
        applied offset on, close and remove its retired files, remove dead processes'."""
        if side is not None:
            side.applied = max(side.applied, applied.offset)
            for old in applied.retire:
                if old in side.retired:
                    side.retired.remove(old)
                    old.close()
                    unlink([old.path])
        unlink(applied.doomed)

    def _flush(self, side: Side) -> None:
        """The flusher's pass: apply the spool (subclasses add their own upkeep)."""
        if side.pending():
            applied = Applied()
            self._sync(lambda conn: self._apply_own(conn, side, applied))
            self._finish(side, applied)

    def close(self) -> None:
        """Apply this process's spool, remove its spool files and close this thread's
        connections. A process that dies without closing loses nothing: the next
        process to look applies its spool (and frees what it had set aside)."""
        with self._lock:
            side = self._own_side()
            if side is not None:
                side.stopped = True
                side.wake.set()
                try:
                    self._before_close(side)
                    files = [*side.retired, side.file]

                    def body(conn: sqlite3.Cursor) -> None:
                        self._apply_own(conn, side, Applied())
                        for f in files:
                            conn.execute(SET_APPLIED, (f.name, DONE))

                    self._sync(body)
                except Exception as exc:  # the next process recovers the spool
                    _log.warning("%s %s: could not apply the spool at close (%s); "
                                 "another process will", self.what, self.path, exc)
                    side.lock.release(remove=False)
                else:
                    for f in files:
                        f.close()
                    unlink([f.path for f in files])
                    side.lock.release(remove=True)
                self._side = None
            self._close_thread_connections()

