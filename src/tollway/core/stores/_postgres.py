"""Bounded PostgreSQL connection pools, shared by the PostgreSQL ledger and budget store.

A server accepts ``max_connections`` clients (100 by default) across every process and
machine, so each store holds at most ``max_size`` connections per process (one
``psycopg_pool.ConnectionPool``) and ``max_size`` per event loop (a task-free
:class:`_LoopPool` each; a script that runs one ``asyncio.run`` has one). A caller
that finds them all busy WAITS up to ``timeout`` seconds for one to come back, then
gets a :class:`~tollway.core.errors.StoreUnavailableError` that says so: never psycopg's
``too many clients already``. A server that refuses a new connection (full, down) is
retried (by the sync pool's threads; by the async caller itself) until the same timeout.

Forked children start with no pool (the parent's connections are kept referenced, never
closed, in the child: closing would end the parent's sessions). Pools of event loops
that have ended are closed when the next loop asks. ``psycopg`` and ``psycopg_pool`` are
imported on first use.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from tollway.core.errors import StoreUnavailableError

__all__ = ["DEFAULT_POOL_TIMEOUT", "PostgresPools", "same_database"]

DEFAULT_POOL_TIMEOUT = 30.0
"""Seconds a caller waits for a free connection before StoreUnavailableError."""

_ALL: weakref.WeakSet[PostgresPools] = weakref.WeakSet()
_ABANDONED: list[Any] = []


def _after_fork() -> None:
    for pools in list(_ALL):
        if pools._pool is not None:
            _ABANDONED.append(pools._pool)
        pools._pool = None
        _ABANDONED.extend(pools._apools.values())
        pools._apools = {}
        pools._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def same_database(a: str, b: str) -> bool:
    """Whether two libpq connection strings / URLs name the same database (host, port,
    database and user), so one transaction can write to both stores' tables."""
    from psycopg.conninfo import conninfo_to_dict

    def key(conninfo: str) -> tuple[Any, ...]:
        d = conninfo_to_dict(conninfo)
        return (d.get("host") or "localhost", str(d.get("port") or 5432),
                d.get("dbname") or d.get("user"), d.get("user"))

    try:
        return key(a) == key(b)
    except Exception:  # an unparsable string shares nothing
        return False


class PostgresPools:
    """The pools of one store: ``with pools.connection() as conn`` (sync) and ``async with
    pools.aconnection() as conn``; connections are in autocommit mode. ``configure`` runs
    on each new connection (session settings)."""

    def __init__(self, conninfo: str, *, name: str, max_size: int,
                 timeout: float = DEFAULT_POOL_TIMEOUT,
                 configure: Callable[[Any], None] | None = None,
                 aconfigure: Callable[[Any], Any] | None = None,
                 connect_kwargs: dict[str, Any] | None = None) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.conninfo = conninfo
        self.name = name
        self.max_size = max_size
        self.timeout = timeout
        self._configure = configure
        self._aconfigure = aconfigure
        self._kwargs = {"autocommit": True, **(connect_kwargs or {})}
        self._lock = threading.Lock()
        self._pool: Any = None
        self._apools: dict[asyncio.AbstractEventLoop, Any] = {}
        _ALL.add(self)

    # ------------------------------------------------------------------ errors

    def _full(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            self.name, "get a database connection",
            f"all {self.max_size} connections of its pool stayed busy, or the server "
            f"refused new ones (down, or at max_connections), for {self.timeout:g} s; "
            "lower the concurrency, raise the pool's size or timeout, or the server's "
            "max_connections", timeout=self.timeout,
        )

    # ------------------------------------------------------------------ sync

    def _sync_pool(self) -> Any:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                configure = self._configure
                pool = ConnectionPool(
                    self.conninfo, min_size=1, max_size=self.max_size, timeout=self.timeout,
                    kwargs=self._kwargs, open=False, name=self.name,
                    configure=configure, reconnect_timeout=self.timeout,
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[Any]:
        from psycopg_pool import PoolTimeout

        pool = self._sync_pool()
        try:
            conn = pool.getconn(timeout=self.timeout)
        except PoolTimeout:
            raise self._full() from None
        try:
            yield conn
        finally:
            pool.putconn(conn)  # rolled back if a transaction was left open; dropped if broken

    # ------------------------------------------------------------------ async

    def _async_pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is None:
            self._close_ended_loops()
            pool = self._apools[loop] = _LoopPool(self)
        return pool

    @asynccontextmanager
    async def aconnection(self) -> AsyncIterator[Any]:
        pool = self._async_pool()
        conn = await pool.get()
        try:
            yield conn
        finally:
            await pool.put(conn)

    def _close_ended_loops(self) -> None:
        """Finish the connections of pools whose event loop has ended (``asyncio.run``
        per request, test loops): libpq's finish does no waiting."""
        for loop in [lp for lp in self._apools if lp.is_closed()]:
            self._apools.pop(loop).finish()

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the sync pool and finish every async pool's connections."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=1.0)
        apools, self._apools = self._apools, {}
        for apool in apools.values():
            apool.finish()

    async def aclose(self) -> None:
        """Close the running loop's async connections."""
        pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


class _LoopPool:
    """The connections of one event loop: at most ``max_size``, made on demand by the
    caller's own task and kept idle between uses.

    Why not ``psycopg_pool.AsyncConnectionPool``: its maintenance workers catch
    ``CancelledError`` while a connection attempt runs (psycopg_pool 3.3), so when
    ``asyncio.run`` ends and cancels every task, a worker that was still opening a
    connection swallows the cancellation, waits on its queue again, and the program
    hangs at exit. Here there are no background tasks at all: nothing outlives the
    caller's await, and cancelling a caller cancels its own connection attempt.
    """

    __slots__ = ("closed", "free", "idle", "owner")

    def __init__(self, owner: PostgresPools) -> None:
        self.owner = owner
        self.idle: list[Any] = []
        self.free = asyncio.Semaphore(owner.max_size)
        self.closed = False

    async def get(self) -> Any:
        owner = self.owner
        loop = asyncio.get_running_loop()
        deadline = loop.time() + owner.timeout
        try:
            async with asyncio.timeout(owner.timeout):
                await self.free.acquire()
        except TimeoutError:
            raise owner._full() from None
        try:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
            return await self._connect(deadline)
        except BaseException:
            self.free.release()
            raise

    async def _connect(self, deadline: float) -> Any:
        """A new configured connection; a server that refuses (full, restarting, down) is
        retried with backoff until ``deadline``, then the caller gets the typed error."""
        import psycopg

        owner = self.owner
        loop = asyncio.get_running_loop()
        pause = 0.05
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise owner._full()
            kwargs = dict(owner._kwargs)
            kwargs.setdefault("connect_timeout", max(1, round(left)))
            try:
                conn = await psycopg.AsyncConnection.connect(owner.conninfo, **kwargs)
            except psycopg.OperationalError:
                await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
                pause = min(pause * 2, 1.0)
                continue
            if owner._aconfigure is not None:
                try:
                    await owner._aconfigure(conn)
                except BaseException:
                    await conn.close()
                    raise
            return conn

    async def put(self, conn: Any) -> None:
        """Give ``conn`` back: rolled back if a transaction was left open, dropped if it
        is broken or the pool was closed meanwhile."""
        from psycopg.pq import TransactionStatus

        try:
            keep = not (self.closed or conn.closed or conn.broken)
            if keep and conn.info.transaction_status != TransactionStatus.IDLE:
                try:
                    await conn.rollback()
                except Exception:
                    keep = False
            if keep:
                self.idle.append(conn)
            else:
                _finish(conn)
        finally:
            self.free.release()

    def finish(self) -> None:
        """End every idle connection without awaiting (the loop may be gone)."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            _finish(conn)

    async def aclose(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            try:
                await conn.close()
            except Exception:
                _finish(conn)


def _finish(conn: Any) -> None:
    """libpq's finish: closes the socket, sends no message and waits for nothing."""
    if not conn.closed:
        conn._closed = True
        conn.pgconn.finish()
