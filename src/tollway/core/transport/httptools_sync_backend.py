"""The sync HTTP backend over blocking sockets and httptools: the sync twin of
``httptools_backend``, one thread-safe pool per process.

Why: measured against the benchmark fake server on this machine, a request through
httpcore's pool costs ~260 µs of CPU (its connection state machine, h11's event
objects, the pool's bookkeeping); the same request written with one ``sendall`` and
read with ``recv`` into the httptools parser ~40-60 µs. The request and response
handling (header block, parser callbacks, pooling rules) is the async backend's; what
differs is how bytes move:

- a connection is a blocking socket (TCP_NODELAY; TLS by httpx's context with the
  host's name checked), connected within ``connect``;
- each ``recv`` waits at most ``read`` (capped by ``total``), as with httpcore; a
  call with ``total`` reads its body against the deadline, and a read that stalls is
  cut by the watchdog shutting the socket down (``base.read_within``). On a plain
  socket the kernel keeps that bound (``SO_RCVTIMEO`` / ``SO_SNDTIMEO``, set when it
  changes): a Python socket timeout costs a ``poll()`` before every ``send`` and
  ``recv`` and an ``ioctl`` per call, about 1.5 µs of the few a call's I/O takes. A
  TLS socket keeps Python's timeout (the ssl module needs it to wait);
- an idle connection is looked at (a zero-timeout ``select``) before it is reused once
  it has idled a second: one the server closed, or that holds bytes nobody asked for,
  is dropped instead of sent on; a request lost on a connection the server closed in
  the instant it went out fails as ``ConnectionError(unanswered=True)`` and the
  transport sends it once more;
- at most ``MAX_CONNECTIONS`` requests at once (threads beyond wait up to ``connect``
  for one); after a fork the child forgets the parent's idle connections.

Selected by default when httptools is installed; ``TOLLWAY_SYNC_TRANSPORT=httpcore|httpx``
chooses another.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import httptools

from tollway.core import errors
from tollway.core.providers import Deployment
from tollway.core.transport.base import read_within, stream_deadline
from tollway.core.transport.httptools_backend import (
    _JOIN_AT,
    KEEPALIVE_SECONDS,
    MAX_IDLE_PER_HOST,
    HttptoolsStream,
    RequestHeads,
    ResponseHeaders,
    ResponseState,
    _connection_error,
    _Failure,
    _ssl_context,
    _Target,
    _where,
    closed_early,
    exchange_failed,
    until_eof,
)

__all__ = ["HttptoolsSyncBackend", "HttptoolsSyncStream"]

MAX_CONNECTIONS = 1024
CHECK_AFTER_IDLE = 1.0
"""Seconds idle after which a pooled connection is checked before it is reused."""


_TIMEVAL = struct.Struct("@ll")
"""``struct timeval`` for SO_RCVTIMEO / SO_SNDTIMEO."""


class _SyncConnection(ResponseState):
    """One HTTP/1.1 connection read by the calling thread."""

    def __init__(self, sock: socket.socket, key: tuple[str, str, int], *, tls: bool) -> None:
        self.sock = sock
        self.tls = tls
        self.timeout: float | None = -1.0
        """The read / write bound set on the socket (-1: none set yet)."""
        self.start(key)

    def bound(self, seconds: float | None) -> None:
        """Each ``send`` / ``recv`` waits at most ``seconds`` (None: no bound); set only
        when it changes."""
        if seconds == self.timeout:
            return
        if self.tls:
            self.sock.settimeout(seconds)
        else:
            if self.timeout == -1.0:
                self.sock.settimeout(None)  # blocking: no poll() before each call
            whole = 0.0 if seconds is None else max(seconds, 1e-6)
            value = _TIMEVAL.pack(int(whole), int((whole % 1) * 1e6))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        self.timeout = seconds

    # ------------------------------------------------------------------ parser callbacks

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()

    # ------------------------------------------------------------------ I/O

    def send(self, head: bytes, body: bytes) -> None:
        self.reset_response()
        try:
            if len(body) < _JOIN_AT:
                self.sock.sendall(head + body)
            else:
                self.sock.sendall(head)
                self.sock.sendall(body)
        except TimeoutError:
            raise
        except BlockingIOError:  # SO_SNDTIMEO ran out
            raise TimeoutError from None
        except OSError as exc:
            raise closed_early(False, exc) from None

    def receive(self) -> None:
        """Feed the parser the next bytes (the socket's timeout bounds the wait)."""
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise
        except BlockingIOError:  # SO_RCVTIMEO ran out
            raise TimeoutError from None
        except OSError as exc:
            self.close()
            raise closed_early(self.answered, exc) from None
        if not data:
            self.close()
            if self.head_done and until_eof(self.raw_headers):
                self.on_message_complete()
                return
            raise closed_early(self.answered, None)
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            raise _Failure(f"the server sent an invalid HTTP response: {exc}",
                           answered=True) from None

    def take(self) -> bytes:
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return data

    def stale(self) -> bool:
        """Whether the server closed it, or it holds bytes nobody asked for."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class _SyncPool:
    """Idle connections by server, shared by every thread (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: dict[tuple[str, str, int], list[_SyncConnection]] = {}
        self.closed = False

    def pop(self, key: tuple[str, str, int]) -> _SyncConnection | None:
        with self.lock:
            idle = self.idle.get(key)
            if not idle:
                return None
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if now - conn.idle_since <= KEEPALIVE_SECONDS and (
                        now - conn.idle_since < CHECK_AFTER_IDLE or not conn.stale()):
                    return conn
                conn.close()
        return None

    def put(self, conn: _SyncConnection) -> None:
        if not conn.reusable():
            conn.close()
            return
        with self.lock:
            idle = self.idle.setdefault(conn.key, [])
            if self.closed or len(idle) >= MAX_IDLE_PER_HOST:
                conn.close()
                return
            conn.idle_since = time.monotonic()
            idle.append(conn)

    def drop(self, key: tuple[str, str, int]) -> None:
        with self.lock:
            dropped = self.idle.pop(key, [])
        for conn in dropped:
            conn.close()

    def forget(self) -> None:
        """In a forked child: the parent's connections are not ours to use (their file
        descriptors are closed here only, the parent keeps them). The lock is new: a
        parent's thread may have held it at the fork."""
        self.lock = threading.Lock()
        with self.lock:
            for idle in self.idle.values():
                for conn in idle:
                    conn.closed = True
                    try:
                        os.close(conn.sock.detach())
                    except OSError:
                        pass
            self.idle = {}

    def close(self) -> None:
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


class _SyncSlots:
    """At most ``MAX_CONNECTIONS`` requests in flight, shared by every thread: a counter
    under one lock, and a Condition only while some thread waits (a BoundedSemaphore
    costs ~1.4 µs a call here, all of it Python code)."""

    __slots__ = ("free", "freed", "lock", "waiting")

    def __init__(self, limit: int) -> None:
        self.reset(limit)

    def take(self, timeout: float) -> bool:
        """A slot, waiting at most ``timeout`` seconds for one (False: none came)."""
        with self.lock:
            if self.free > 0:
                self.free -= 1
                return True
            deadline = time.monotonic() + timeout
            self.waiting += 1
            try:
                while self.free <= 0:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self.freed.wait(left)
            finally:
                self.waiting -= 1
            self.free -= 1
            return True

    def give(self) -> None:
        with self.lock:
            self.free += 1
            if self.waiting:
                self.freed.notify()

    def reset(self, limit: int) -> None:
        """All ``limit`` slots free, under a fresh lock (in a forked child too, where
        another thread may have held the old one)."""
        self.lock = threading.Lock()
        self.freed = threading.Condition(self.lock)
        self.free = limit
        self.waiting = 0


def _forget_in_child(backend: weakref.ref[HttptoolsSyncBackend]) -> Callable[[], None]:
    def forget() -> None:
        alive = backend()
        if alive is not None:
            alive._pool.forget()
            alive._slots.reset(MAX_CONNECTIONS)  # the parent's requests are not ours

    return forget


def _timeout(dep: Deployment, message: str) -> errors.TimeoutError:
    return errors.TimeoutError(message, **_where(dep))


class HttptoolsSyncBackend:
    """One pool per process, shared by every thread and deployment."""

    def __init__(self) -> None:
        self._pool = _SyncPool()
        self._slots = _SyncSlots(MAX_CONNECTIONS)
        self._heads = RequestHeads()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_in_child(weakref.ref(self)))

    def _connect(self, dep: Deployment, target: _Target) -> _SyncConnection:
        connect = dep.timeouts.connect
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((target.host, target.port), timeout=connect)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tls:
                sock = _ssl_context().wrap_socket(sock, server_hostname=target.host)
        except OSError as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, TimeoutError):
                raise _timeout(dep, f"could not connect to {dep.api_base} within "
                                    f"{connect:g}s") from None
            raise errors.ConnectionError(
                f"could not reach {dep.api_base}: {type(exc).__name__}: {exc}", **_where(dep)
            ) from None
        return _SyncConnection(sock, target.key, tls=target.tls)

    def _exchange(self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str],
                  *, stream: bool) -> _SyncConnection:
        """The request sent on a connection (pooled, else new) and the whole response
        read (``stream``: its head). The caller holds a slot. Any failure closes the
        connection."""
        target = self._heads.target(url)
        head = self._heads.head(target, headers, len(body))
        conn = self._pool.pop(target.key)
        reused = conn is not None
        if conn is None:
            conn = self._connect(dep, target)
        try:
            conn.bound(dep.timeouts.call_read)
            conn.send(head, body)
            while not (conn.head_done if stream else conn.complete):
                conn.receive()
        except _Failure as failure:
            raise exchange_failed(conn, self._pool, dep, failure, reused) from None
        except TimeoutError:
            conn.close()
            raise _timeout(dep, "no answer within the timeout (read timeout)") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _slot(self, dep: Deployment) -> None:
        if not self._slots.take(dep.timeouts.connect):
            raise _timeout(dep, f"no free connection within {dep.timeouts.connect:g}s "
                                f"({MAX_CONNECTIONS} requests already in flight)")

    def post(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, ResponseHeaders, bytes]:
        if dep.timeouts.total is not None:
            return self._post_within_total(dep, url, body, headers)
        self._slot(dep)
        try:
            conn = self._exchange(dep, url, body, headers, stream=False)
            status, raw_headers = conn.status, conn.raw_headers
            payload = conn.take() if conn.chunks else b""
            self._pool.put(conn)
        finally:
            self._slots.give()
        return status, ResponseHeaders(raw_headers), payload

    def _post_within_total(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, ResponseHeaders, bytes]:
        """As httpcore's backend: ``read`` bounds each wait, and the body is read
        against ``total`` (a drip or a stall ends in TimeoutError at the deadline)."""
        deadline = stream_deadline(dep)
        with self.stream(dep, url, body, headers) as resp:
            payload = b"".join(read_within(resp.iter_bytes(), deadline, resp.socket, dep))
            return resp.status, resp.headers, payload

    @contextmanager
    def stream(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> Iterator[HttptoolsSyncStream]:
        self._slot(dep)
        try:
            conn = self._exchange(dep, url, body, headers, stream=True)
            try:
                yield HttptoolsSyncStream(conn, dep)
            finally:
                self._pool.put(conn)  # closed instead when left before its end
        finally:
            self._slots.give()

    def close(self) -> None:
        self._pool.close()


class HttptoolsSyncStream:
    """An open streamed response: ``status``, ``headers``, ``socket``, ``iter_bytes()``."""

    __slots__ = ("_conn", "_dep")

    def __init__(self, conn: _SyncConnection, dep: Deployment) -> None:
        self._conn, self._dep = conn, dep

    status = HttptoolsStream.status
    headers = HttptoolsStream.headers

    @property
    def socket(self) -> socket.socket:
        return self._conn.sock

    def iter_bytes(self) -> Iterator[bytes]:
        conn, dep = self._conn, self._dep
        while True:
            if conn.chunks:
                yield conn.take()
                continue
            if conn.complete:
                return
            try:
                conn.receive()
            except _Failure as failure:
                raise _connection_error(dep, failure, False) from None
            except TimeoutError:
                conn.close()
                raise _timeout(dep, "no data from the stream within the timeout (read timeout: "
                                    f"{dep.timeouts.call_read:g}s)") from None
