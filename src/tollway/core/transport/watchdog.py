"""Sync calls past their ``total``: one daemon thread shuts their sockets down.

A blocking socket read cannot be given a new deadline once it started, and httpcore
fixes the read timeout of a response body when the body starts (every read may wait up
to ``read``), so a body that stalls after its first bytes would run up to ``read``
seconds past ``total``. The sync backends hand the socket of each body they read, with
the call's deadline, to the process's :class:`Watchdog`; when a deadline passes before
the body ended, the watchdog shuts that socket down, the blocked read returns at once,
and the backend reports the call as a TimeoutError of ``total`` (:attr:`Watch.fired`).

Cost per call: a heap push under a lock (no wake-up unless the new deadline is the
earliest); a finished call's entry stays in the heap, emptied, until its deadline.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

__all__ = ["Watch", "Watchdog", "watchdog"]


class Watch:
    """One body being read against a deadline: ``cancel()`` when it ended."""

    __slots__ = ("fired", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.fired = False

    def cancel(self) -> None:
        self.sock = None

    def fire(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        self.fired = True
        try:
            # the plain socket's shutdown, also under TLS: the SSL object stays untouched
            # (another thread is inside its read), the read just sees the end of the stream
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


class Watchdog:
    def __init__(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, sock: Any) -> Watch | None:
        """Shut ``sock`` down at ``deadline`` (time.monotonic) unless cancelled first;
        None when ``sock`` is not a socket (an in-process or mocked stream)."""
        if not isinstance(sock, socket.socket):
            return None
        entry = Watch(sock)
        with self._wake:
            heap = self._heap
            earliest = not heap or deadline < heap[0][0]
            heapq.heappush(heap, (deadline, next(self._order), entry))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tollway-deadlines", daemon=True
                )
                self._thread.start()
            elif earliest:
                self._wake.notify()
        return entry

    def _run(self) -> None:
        heap = self._heap
        with self._wake:
            while True:
                while heap and heap[0][2].sock is None:
                    heapq.heappop(heap)  # ended in time
                if not heap:
                    self._wake.wait()
                    continue
                wait = heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(heap)[2].fire()


_watchdog: Watchdog | None = None
_lock = threading.Lock()


def _forget_after_fork() -> None:
    """A forked child has no watchdog thread: it starts its own on first use."""
    global _watchdog, _lock
    _watchdog, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def watchdog() -> Watchdog:
    """The process's watchdog (its thread starts with the first watched body)."""
    global _watchdog
    if _watchdog is None:
        with _lock:
            if _watchdog is None:
                _watchdog = Watchdog()
    return _watchdog
