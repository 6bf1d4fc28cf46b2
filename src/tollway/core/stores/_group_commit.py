"""Group commit for the SQLite stores' async path: one transaction for the operations
that one event loop's tasks submit in the same turn of the loop.

Why: under load an async process has many calls reserving and settling at once, and
every operation as its own ``BEGIN IMMEDIATE ... COMMIT`` pays SQLite's fixed cost per
transaction (locks, WAL frames for the same hot pages, the commit) once per call:
measured at 256 concurrent calls, each commit cost ~100 µs of CPU. With no other hold
open on the loop (the sequential case) an operation runs at once as its own
transaction and schedules nothing. Otherwise the first operation of a turn of the loop
runs at once too, and the operations submitted after it in the same turn (the other
tasks the loop wakes with it) queue: one flush scheduled with ``call_soon`` runs them
all in one transaction, each inside its own ``SAVEPOINT`` so one
that fails is rolled back alone and reported to its own caller. Each caller still gets
its result only after the COMMIT: durability and exactness are those of one transaction
per operation (operations in a batch see each other's effects in submission order, as
if run one after another).

Never losing money: an operation whose caller is cancelled while it waits is still run
(inline, at once) unless it was submitted as ``skippable`` (a reservation nobody waits
for any more), so a settle and its ledger row are never dropped by a cancellation, nor
by a loop that stops before its flush. When another process holds SQLite's write lock
the flush yields to the loop and retries with growing delays until each operation's
own deadline, then fails those operations with SQLite's "database is locked".
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tollway.core.stores._sqlite import is_busy, run_transaction

__all__ = ["GroupCommit"]

Body = Callable[[sqlite3.Cursor], Any]

_FIRST_DELAY = 0.0005
_MAX_DELAY = 0.02


@dataclass(eq=False, slots=True)
class _Entry:
    body: Body
    future: asyncio.Future[Any]
    skippable: bool
    deadline: float
    done: bool = field(default=False)


_LIVE: weakref.WeakSet[GroupCommit] = weakref.WeakSet()


def _after_fork() -> None:
    for group in list(_LIVE):
        group._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class GroupCommit:
    """Runs transaction bodies submitted from event loops, batched per loop turn.

    ``cursor()`` gives the calling thread's non-waiting cursor (the store's async
    connection); ``inline(body)`` runs one body as its own transaction, waiting for the
    lock (the store's sync path), for operations whose caller was cancelled."""

    def __init__(self, cursor: Callable[[], sqlite3.Cursor], inline: Callable[[Body], Any],
                 *, busy_timeout: float) -> None:
        self._cursor = cursor
        self._inline = inline
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        _LIVE.add(self)

    def opened(self) -> None:
        """A hold was made on this thread's loop (a reservation that succeeded)."""
        local = self._local
        local.holds = getattr(local, "holds", 0) + 1

    def closed(self) -> None:
        """A hold of this thread's loop ended (settled or released)."""
        local = self._local
        local.holds = max(0, getattr(local, "holds", 0) - 1)

    async def run(self, body: Body, *, skippable: bool = False, ends_hold: bool = False) -> Any:
        """``body(cursor)``'s result, committed; its exception if it raised.

        ``ends_hold``: the operation ends one of the holds counted by :meth:`opened`.
        With no other hold open on this loop no other operation can join this one, so
        it runs at once and schedules nothing (the sequential case costs what one
        transaction costs, not one more turn of the loop)."""
        loop = asyncio.get_running_loop()
        local = self._local
        if getattr(local, "loop", None) is not loop:
            self._reset(local, loop)
        if not local.scheduled:
            # The first operation of this turn of the loop runs at once. When other
            # holds are open, the operations their tasks submit later in this turn queue
            # behind it, for the flush it schedules at the end of the turn.
            alone = local.holds - ends_hold <= 0
            local.scheduled = not alone
            outcome = self._attempt([body])
            if outcome is not None:
                if not alone:
                    loop.call_soon(self._flush, loop, _FIRST_DELAY)
                ((ok, value),) = outcome
                if ok:
                    return value
                raise value
            local.scheduled = True  # another process holds the lock: queue, retry shortly
            loop.call_later(_FIRST_DELAY, self._flush, loop, _FIRST_DELAY * 2)
        entry = _Entry(body, loop.create_future(), skippable,
                       time.monotonic() + self._busy_timeout)
        local.pending.append(entry)
        try:
            return await entry.future
        except asyncio.CancelledError:
            if not entry.done:
                entry.done = True
                if not skippable:
                    self._inline(body)  # a settle or a row is never dropped
            raise

    def _reset(self, local: threading.local, loop: asyncio.AbstractEventLoop) -> None:
        """This thread's queue for ``loop``. Operations left by an earlier loop of the
        thread that ended before flushing them are run now."""
        for stale in getattr(local, "pending", ()):
            if not stale.done and not stale.skippable:
                stale.done = True
                self._inline(stale.body)
        local.loop, local.pending, local.scheduled, local.holds = loop, [], False, 0

    def _forget(self) -> None:
        """In a forked child: the parent's queued operations are the parent's to run."""
        self._local = threading.local()

    def _flush(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        local = self._local
        batch: list[_Entry] = local.pending
        local.pending, local.scheduled = [], False
        live = []
        for entry in batch:
            if entry.done:
                continue
            if entry.skippable and entry.future.cancelled():
                entry.done = True
                continue
            live.append(entry)
        if not live:
            return
        outcomes = self._attempt([entry.body for entry in live])
        if outcomes is None:  # another process holds the write lock
            now = time.monotonic()
            retry = []
            for entry in live:
                if now >= entry.deadline:
                    self._settle(entry, False, sqlite3.OperationalError("database is locked"))
                else:
                    retry.append(entry)
            if retry:
                local.pending = retry + local.pending
                if not local.scheduled:
                    local.scheduled = True
                    loop.call_later(delay, self._flush, loop, min(delay * 2, _MAX_DELAY))
            return
        for entry, (ok, value) in zip(live, outcomes, strict=True):
            self._settle(entry, ok, value)

    @staticmethod
    def _settle(entry: _Entry, ok: bool, value: Any) -> None:
        entry.done = True
        if entry.future.done():
            return
        if ok:
            entry.future.set_result(value)
        else:
            entry.future.set_exception(value)

    def _attempt(self, bodies: list[Body]) -> list[tuple[bool, Any]] | None:
        """One transaction over ``bodies``: the outcomes in order, or None when SQLite
        refused the lock (nothing applied, safe to retry). A lone body runs without a
        savepoint."""
        lone = len(bodies) == 1
        try:
            value = run_transaction(self._cursor(), bodies[0] if lone else _savepoints(bodies))
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return None
            return [(False, exc)] * len(bodies)
        except Exception as exc:  # only a lone body's own failure gets here
            return [(False, exc)]
        return [(True, value)] if lone else value


def _savepoints(bodies: list[Body]) -> Body:
    """One transaction body running each of ``bodies`` in its own savepoint: one that
    raises is rolled back alone, and its exception is its outcome."""

    def body(cur: sqlite3.Cursor) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        for each in bodies:
            cur.execute("SAVEPOINT group_commit")
            try:
                value = each(cur)
            except Exception as exc:
                cur.execute("ROLLBACK TO group_commit")
                outcomes.append((False, exc))
            else:
                outcomes.append((True, value))
            cur.execute("RELEASE group_commit")
        return outcomes

    return body
