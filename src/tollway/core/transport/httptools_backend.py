"""The async HTTP backend over asyncio and httptools (llhttp, the parser Node.js uses):
tollway's own HTTP/1.1 client, one connection pool per event loop.

Why not aiohttp alone: measured against the benchmark fake server on this machine, one
aiohttp request costs ~170 µs of CPU (its request and response objects, payload
writers, cookie jar, tracing hooks, timer context managers), a request on an asyncio
protocol parsed by httptools ~50 µs. The gateway makes one upstream call per request,
so that difference is a fifth of the gateway's whole cost per request. tollway needs
none of what aiohttp adds: it sets its own headers, follows no redirects, keeps no
cookies, asks for no compression (like the sync httpcore backend, it sends no
``accept-encoding``, and passes any encoded body through as it came).

What it does, in full:
- keep-alive pooling per (scheme, host, port), LIFO, idle connections dropped after
  ``KEEPALIVE_SECONDS`` or when the server closed them; at most ``MAX_CONNECTIONS``
  open at once (further calls wait for one);
- TLS with httpx's context (certifi / ``SSL_CERT_FILE`` as everywhere in tollway);
- bodies by Content-Length, chunked, or until the server closes;
- the same timeouts as the other backends: ``connect``; a non-streamed call's whole
  exchange within ``read`` (capped by ``total``); a stream's head and each wait
  between chunks within ``read``, the whole stream within ``total``. One timer per
  event loop checks them every ``TICK`` (50 ms), so a timeout fires up to 50 ms late;
  a timer per wait would cost more than the rest of the hand-off;
- a request sent on a keep-alive connection the server had closed, with not one byte
  answered, fails as ``ConnectionError(unanswered=True)`` (the transport sends it once
  more) and drops the other idle connections to that server (likely closed too);
- a stream reads with flow control (reading pauses while ``HIGH_WATER`` bytes wait for
  the consumer), and one left before its end closes its connection.

Selected by default when httptools is installed (``tollway[gateway]`` brings it);
``TOLLWAY_ASYNC_TRANSPORT=aiohttp|httpx`` chooses another.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from functools import cache
from typing import Any, Protocol
from urllib.parse import urlsplit

import httptools
import httpx

from tollway.core import errors
from tollway.core.providers import Deployment
from tollway.core.transport.base import check_deadline, past, stream_deadline, total_timeout

__all__ = ["HttptoolsBackend", "HttptoolsStream", "ResponseHeaders"]

MAX_CONNECTIONS = 1024
MAX_IDLE_PER_HOST = 512
KEEPALIVE_SECONDS = 30.0
TICK = 0.05
"""Seconds between checks of the waits' deadlines (how late a timeout may fire)."""
HIGH_WATER = 256 * 1024
"""A stream's unread bytes at which reading pauses (resumed once the consumer takes them)."""
_JOIN_AT = 64 * 1024
"""Bodies under this size go out in the head's write; larger ones in a second buffer."""


class _Failure(Exception):
    """What went wrong on a connection, mapped to a tollway error by the caller."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


@cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class _Target:
    """A URL split once: the pool key, where to connect, and the request line's parts."""

    __slots__ = ("host", "key", "port", "prefix", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ConfigError(f"cannot call {url!r}: api_base must be an http:// or "
                                     "https:// URL with a host")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (parts.scheme, self.host, self.port)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        default_port = parts.port is None or parts.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if default_port else f"{host}:{self.port}"
        self.prefix = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n"


def _header_block(target: _Target, headers: Mapping[str, str]) -> bytes:
    """The request line and headers, Content-Length excepted, validated and encoded."""
    lines = [target.prefix]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise errors.ConfigError(
                f"the request header {name.strip()[:40]!r} contains a line break or its name a "
                "colon: remove them from the deployment's headers"
            )
        lines.append(f"{name}: {value}\r\n")
    lines.append("Content-Length: ")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise errors.ConfigError(
            "a request header holds characters outside Latin-1: HTTP/1.1 headers cannot carry "
            "them (encode the value, e.g. percent-encoding)"
        ) from None


class RequestHeads:
    """URLs split once and a deployment's encoded header block built once, for both
    drivers. A deployment's headers are one dict reused by every call
    (``Deployment.request_headers`` caches it), so its block is kept by that dict's
    identity (the dict is held here, so its id cannot be reused); per-call dicts (a
    dialect's own headers) churn the cache, which is cleared when full. Plain dict
    operations: safe to share between threads (a race can only rebuild a block)."""

    __slots__ = ("blocks", "targets")

    def __init__(self) -> None:
        self.targets: dict[str, _Target] = {}
        self.blocks: dict[int, tuple[Mapping[str, str], _Target, bytes]] = {}

    def target(self, url: str) -> _Target:
        target = self.targets.get(url)
        if target is None:
            target = _Target(url)
            if len(self.targets) < 256:
                self.targets[url] = target
        return target

    def head(self, target: _Target, headers: Mapping[str, str], length: int) -> bytes:
        cached = self.blocks.get(id(headers))
        if cached is not None and cached[0] is headers and cached[1] is target:
            block = cached[2]
        else:
            block = _header_block(target, headers)
            if len(self.blocks) >= 64:
                self.blocks.clear()
            self.blocks[id(headers)] = (headers, target, block)
        return block + b"%d\r\n\r\n" % length


class ResponseHeaders(Mapping[str, str]):
    """A response's headers, case-insensitive, decoded on first use (most successful
    calls never read one): names lower-cased, repeated ones joined with ", "."""

    __slots__ = ("_map", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    def _lowered(self) -> dict[str, str]:
        lowered = self._map
        if lowered is None:
            lowered = {}
            for name, value in self._raw:
                key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                lowered[key] = f"{lowered[key]}, {text}" if key in lowered else text
            self._map = lowered
        return lowered

    def __getitem__(self, name: str) -> str:
        return self._lowered()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lowered()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lowered())

    def __len__(self) -> int:
        return len(self._lowered())

    def __repr__(self) -> str:
        return f"ResponseHeaders({sorted(self._lowered())})"  # names only: values may echo keys


def until_eof(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a body is delimited by the connection's close (no length, not chunked)."""
    for name, value in raw_headers:
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding"
                                             and b"chunked" in value.lower()):
            return False
    return True


def closed_early(answered: bool, exc: BaseException | None) -> _Failure:
    """The failure of a connection that closed before its response was complete."""
    if answered:
        message = "the connection was closed mid-response"
    else:
        message = "the server closed the connection without sending a response"
    if exc is not None:
        message = f"{message}: {type(exc).__name__}: {exc}"
    return _Failure(message, answered=answered)


class ResponseState:
    """What httptools' callbacks fill in for the response in flight (both drivers'
    connections): status, raw headers, body chunks, and how it ended."""

    def start(self, key: tuple[str, str, int]) -> None:
        """A fresh connection's state: its pool key, its parser, no response yet."""
        self.key = key
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.chunks: deque[bytes] = deque()
        self.reset_response()

    def reset_response(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.chunks.clear()
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.answered = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def reusable(self) -> bool:
        """Read to its end, nothing left unread, and the server keeps it open (a
        stream left early is not: the rest would arrive on the next call)."""
        return self.complete and self.keep_alive and not self.closed and not self.chunks


class _Connection(asyncio.Protocol, ResponseState):
    """One HTTP/1.1 connection: the parser's callbacks fill the response in flight."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.transport: asyncio.Transport | None = None
        self.start(key)
        self._reset()

    def _reset(self) -> None:
        self.reset_response()
        self.waiter: asyncio.Future[None] | None = None
        self.wake_on_head = False
        self.buffered = 0
        self.paused = False
        self.failure: _Failure | None = None

    # ------------------------------------------------------------------ protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_Failure(f"the server sent an invalid HTTP response: {exc}", answered=True))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        if self.head_done and until_eof(self.raw_headers):
            self.on_message_complete()
            return
        self._fail(closed_early(self.answered, exc))

    # ------------------------------------------------------------------ parser callbacks

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = True
        if self.wake_on_head:
            self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.wake_on_head:
            self._wake()
            if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # ------------------------------------------------------------------ helpers

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, failure: _Failure) -> None:
        if self.failure is None:
            self.failure = failure
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_exception(failure)

    def send(self, head: bytes, body: bytes, *, stream: bool) -> None:
        self._reset()
        self.wake_on_head = stream
        transport = self.transport
        assert transport is not None
        if len(body) < _JOIN_AT:
            transport.write(head + body)
        else:
            transport.writelines((head, body))

    def take(self) -> bytes:
        """What the body has brought since the last take (reading resumes if paused)."""
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Deadlines:
    """The timeouts of one event loop's waits, checked by ONE timer that runs every
    ``TICK`` seconds while any wait has a deadline: a timer per wait costs ~3 µs on
    uvloop (its handle is created and cancelled on every call); this costs a dict
    insert and pop. A timeout fires at most ``TICK`` late."""

    __slots__ = ("handle", "loop", "waits")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waits: dict[asyncio.Future[None], float] = {}
        self.handle: asyncio.TimerHandle | None = None

    def add(self, waiter: asyncio.Future[None], when: float) -> None:
        self.waits[waiter] = when
        if self.handle is None:
            self.handle = self.loop.call_at(min(when, self.loop.time() + TICK), self._tick)

    def _tick(self) -> None:
        self.handle = None
        now = self.loop.time()
        waits = self.waits
        for waiter in [w for w, when in waits.items() if when <= now]:
            del waits[waiter]
            if not waiter.done():
                waiter.set_exception(TimeoutError())
        if waits:
            self.handle = self.loop.call_at(min(now + TICK, min(waits.values())), self._tick)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


async def _wait(conn: _Connection, deadlines: _Deadlines, when: float | None) -> None:
    """Until the connection's parser has something for the caller (its head for a
    stream, any body, the end), a failure, or ``when`` (loop time): builtin
    TimeoutError."""
    if conn.failure is not None:
        raise conn.failure
    waiter = deadlines.loop.create_future()
    conn.waiter = waiter
    if when is None:
        await waiter
        return
    deadlines.add(waiter, when)
    try:
        await waiter
    finally:
        deadlines.waits.pop(waiter, None)


class _Slots:
    """At most ``MAX_CONNECTIONS`` exchanges at once; the others wait in order (an
    asyncio.Semaphore without its per-call overhead)."""

    __slots__ = ("loop", "open", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.open = 0
        self.queue: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """A slot at once if one is free (the common case: no await at all)."""
        if self.open < MAX_CONNECTIONS:
            self.open += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.take():
            return
        waiter = self.loop.create_future()
        self.queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed a slot, then cancelled
                self.release()
            raise

    def release(self) -> None:
        queue = self.queue
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it
                return
        self.open -= 1


class _Pool:
    """The idle connections of one event loop, by server, and the cap on open ones."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self.closed = False

    def pop(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self.idle.get(key)
        if not idle:
            return None
        oldest = time.monotonic() - KEEPALIVE_SECONDS
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since >= oldest:
                return conn
            conn.close()
        return None

    def put(self, conn: _Connection) -> None:
        if not conn.reusable() or self.closed:
            conn.close()
            return
        idle = self.idle.setdefault(conn.key, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def drop(self, key: tuple[str, str, int]) -> None:
        for conn in self.idle.pop(key, ()):
            conn.close()

    def close(self) -> None:
        self.closed = True
        for idle in self.idle.values():
            for conn in idle:
                conn.close()
        self.idle.clear()


def _where(dep: Deployment) -> dict[str, Any]:
    return {"provider": dep.provider.name, "model": dep.model, "deployment": dep.name}


def _connection_error(dep: Deployment, failure: _Failure, reused: bool) -> errors.ConnectionError:
    return errors.ConnectionError(str(failure), unanswered=reused and not failure.answered,
                                  **_where(dep))


class _Closable(Protocol):
    key: tuple[str, str, int]

    def close(self) -> None: ...


class _Droppable(Protocol):
    def drop(self, key: tuple[str, str, int]) -> None: ...


def exchange_failed(conn: _Closable, pool: _Droppable, dep: Deployment, failure: _Failure,
                    reused: bool) -> errors.ConnectionError:
    """A failed exchange (both clients): its connection closed and, when a reused one
    went unanswered, the host's other idle ones dropped (the server likely closed them
    too); the error to raise."""
    conn.close()
    if reused and not failure.answered:
        pool.drop(conn.key)
    return _connection_error(dep, failure, reused)


class HttptoolsBackend:
    """One pool per event loop (the transport keeps one backend per loop)."""

    def __init__(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._pool = _Pool()
        self._slots = _Slots(loop)
        self._deadlines = _Deadlines(loop)
        self._heads = RequestHeads()

    async def _connect(self, dep: Deployment, target: _Target) -> _Connection:
        loop = self._loop
        key = target.key
        try:
            async with asyncio.timeout(dep.timeouts.connect):
                _, conn = await loop.create_connection(
                    lambda: _Connection(key), target.host, target.port,
                    ssl=_ssl_context() if target.tls else None,
                    server_hostname=target.host if target.tls else None,
                )
        except TimeoutError:
            raise errors.TimeoutError(
                f"could not connect to {dep.api_base} within {dep.timeouts.connect:g}s",
                **_where(dep)) from None
        except (OSError, ssl.SSLError) as exc:
            raise errors.ConnectionError(
                f"could not reach {dep.api_base}: {type(exc).__name__}: {exc}", **_where(dep)
            ) from None
        return conn

    async def _exchange(self, dep: Deployment, url: str, body: bytes,
                        headers: Mapping[str, str], deadline: float | None, *,
                        stream: bool) -> _Connection:
        """Send the request on a connection (pooled, else new) and wait for the whole
        response (``stream``: its head). The caller holds a slot. Any failure, timeout or
        cancellation closes the connection (it is mid-response)."""
        target = self._heads.target(url)
        head = self._heads.head(target, headers, len(body))
        conn = self._pool.pop(target.key)
        reused = conn is not None
        if conn is None:
            conn = await self._connect(dep, target)
        conn.send(head, body, stream=stream)
        loop, deadlines = self._loop, self._deadlines
        fixed = None if stream else loop.time() + dep.timeouts.call_read
        try:
            while not (conn.head_done if stream else conn.complete):
                await _wait(conn, deadlines, _next_wait(loop, dep, deadline) if stream else fixed)
        except _Failure as failure:
            raise exchange_failed(conn, self._pool, dep, failure, reused) from None
        except TimeoutError:
            conn.close()
            raise _timed_out(dep, deadline, "no answer within the timeout") from None
        except BaseException:
            conn.close()
            raise
        return conn

    async def post(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, ResponseHeaders, bytes]:
        slots = self._slots
        if not slots.take():
            await slots.acquire()
        try:
            conn = await self._exchange(dep, url, body, headers, stream_deadline(dep),
                                        stream=False)
            status, raw_headers = conn.status, conn.raw_headers
            payload = conn.take() if conn.chunks else b""
            self._pool.put(conn)
        finally:
            slots.release()
        return status, ResponseHeaders(raw_headers), payload

    @asynccontextmanager
    async def stream(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[HttptoolsStream]:
        deadline = stream_deadline(dep)
        slots = self._slots
        await slots.acquire()
        try:
            conn = await self._exchange(dep, url, body, headers, deadline, stream=True)
            try:
                yield HttptoolsStream(conn, dep, deadline, self._deadlines)
            finally:
                self._pool.put(conn)  # closed instead when left before its end
        finally:
            slots.release()

    async def aclose(self) -> None:
        self._pool.close()
        self._deadlines.close()


def _timed_out(dep: Deployment, deadline: float | None, message: str) -> errors.TimeoutError:
    """The total timeout's error once ``deadline`` has passed, else ``message``'s."""
    return total_timeout(dep) if past(deadline) else errors.TimeoutError(message, **_where(dep))


def _next_wait(loop: asyncio.AbstractEventLoop, dep: Deployment,
               deadline: float | None) -> float | None:
    """When the next wait for a stream's bytes ends (loop time): ``read`` from now,
    capped by the stream's total deadline (``time.monotonic``, the loop's clock)."""
    read = dep.timeouts.read
    when = None if read is None else loop.time() + read
    if deadline is not None and (when is None or deadline < when):
        return deadline
    return when


class HttptoolsStream:
    """An open streamed response: ``status``, ``headers``, ``read()``, async bytes."""

    __slots__ = ("_conn", "_deadline", "_deadlines", "_dep")

    def __init__(self, conn: _Connection, dep: Deployment, deadline: float | None,
                 deadlines: _Deadlines) -> None:
        self._conn, self._dep, self._deadline, self._deadlines = conn, dep, deadline, deadlines

    status = property(lambda self: self._conn.status, doc="The response's status code.")
    headers = property(lambda self: ResponseHeaders(self._conn.raw_headers),
                       doc="The response's headers (ResponseHeaders).")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn, dep, deadline, deadlines = self._conn, self._dep, self._deadline, self._deadlines
        loop = deadlines.loop
        while True:
            if conn.chunks:
                yield conn.take()
                check_deadline(deadline, dep)
                continue
            if conn.complete:
                return
            try:
                await _wait(conn, deadlines, _next_wait(loop, dep, deadline))
            except _Failure as failure:
                conn.close()
                raise _connection_error(dep, failure, False) from None
            except TimeoutError:
                conn.close()
                raise _timed_out(dep, deadline, "no data from the stream within the read "
                                 f"timeout of {dep.timeouts.read:g}s") from None
