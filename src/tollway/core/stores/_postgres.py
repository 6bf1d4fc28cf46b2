"""Bounded PostgreSQL connection pools, shared by the PostgreSQL ledger and budget store.

A server accepts ``max_connections`` clients (100 by default) across every process and
machine, so each store holds at most ``max_size`` connections per process (one
``psycopg_pool.ConnectionPool``) and ``max_size`` per event loop (one
``AsyncConnectionPool`` each; a script that runs one ``asyncio.run`` has one). A caller
that finds them all busy WAITS up to ``timeout`` seconds for one to come back, then
gets a :class:`~tollway.core.errors.StoreUnavailableError` that says so: never psycopg's
``too many clients already``. A server that refuses a new connection (full, down) is
retried by the pool in the background until the same timeout.

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

    async def _async_pool(self) -> Any:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is not None:
            return pool
        self._close_ended_loops()
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            self.conninfo, min_size=1, max_size=self.max_size, timeout=self.timeout,
            kwargs=self._kwargs, open=False, name=self.name, configure=self._aconfigure,
            reconnect_timeout=self.timeout,
        )
        self._apools[loop] = pool
        await pool.open(wait=False)
        return pool

    @asynccontextmanager
    async def aconnection(self) -> AsyncIterator[Any]:
        from psycopg_pool import PoolTimeout

        pool = await self._async_pool()
        try:
            conn = await pool.getconn(timeout=self.timeout)
        except PoolTimeout:
            raise self._full() from None
        try:
            yield conn
        finally:
            await pool.putconn(conn)

    def _close_ended_loops(self) -> None:
        """Finish the connections of pools whose event loop has ended (``asyncio.run``
        per request, test loops): libpq's finish does no waiting."""
        for loop in [lp for lp in self._apools if lp.is_closed()]:
            _finish_async_pool(self._apools.pop(loop))

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the sync pool and finish every async pool's connections."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=1.0)
        apools, self._apools = self._apools, {}
        for apool in apools.values():
            _finish_async_pool(apool)

    async def aclose(self) -> None:
        """Close the running loop's async pool."""
        pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close(timeout=1.0)


def _finish_async_pool(pool: Any) -> None:
    """End an AsyncConnectionPool from outside its (ended) event loop: mark it closed
    and finish its idle connections directly."""
    pool._closed = True
    for conn in list(getattr(pool, "_pool", ())):
        conn._closed = True
        conn.pgconn.finish()
