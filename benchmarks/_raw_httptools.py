"""Raw asyncio + httptools: the bare stack under tollway's default async transport
(``tollway.core.transport.httptools_backend``), as the fair baseline of its rows.

The least a client on that stack can do per call: one write of a prebuilt request, the
parser's callbacks collecting the response, a future resolved when it is complete, and
a LIFO list of idle keep-alive connections (a new one when none is idle, so 256
concurrent calls get 256 connections as with the other raw clients). No timeouts, no
error mapping, no header handling: what tollway adds on top is its own cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.waiter: asyncio.Future[None] | None = None
        self.chunks: list[bytes] = []
        self.complete = False
        self.streaming = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        if self.streaming:
            self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class RawHttptools:
    """POSTs to one URL over pooled keep-alive connections."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        lines = [f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"]
        lines += [f"{k}: {v}\r\n" for k, v in headers.items()]
        self.prefix = "".join(lines).encode("latin-1")
        self.idle: list[_Conn] = []

    def _request(self, body: bytes) -> bytes:
        return self.prefix + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body

    async def _conn(self) -> _Conn:
        if self.idle:
            return self.idle.pop()
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Conn, self.host, self.port)
        return conn

    async def post(self, body: bytes) -> bytes:
        conn = await self._conn()
        conn.chunks, conn.complete, conn.streaming = [], False, False
        conn.waiter = asyncio.get_running_loop().create_future()
        conn.transport.write(self._request(body))
        await conn.waiter
        self.idle.append(conn)
        return b"".join(conn.chunks)

    async def stream(self, body: bytes) -> AsyncIterator[bytes]:
        conn = await self._conn()
        loop = asyncio.get_running_loop()
        conn.chunks, conn.complete, conn.streaming = [], False, True
        conn.transport.write(self._request(body))
        while True:
            if conn.chunks:
                data, conn.chunks = b"".join(conn.chunks), []
                yield data
                continue
            if conn.complete:
                break
            conn.waiter = loop.create_future()
            await conn.waiter
        self.idle.append(conn)


class _SyncParse:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: list[bytes] = []
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class RawHttptoolsSync:
    """The sync twin: one blocking keep-alive socket (TCP_NODELAY), ``sendall`` of a
    prebuilt request, ``recv`` into the parser until the response is complete."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        import socket

        self._raw = RawHttptools(url, headers)
        self.sock = socket.create_connection((self._raw.host, self._raw.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state = _SyncParse()

    def post(self, body: bytes) -> bytes:
        state = self.state
        state.chunks, state.complete = [], False
        self.sock.sendall(self._raw._request(body))
        while not state.complete:
            state.parser.feed_data(self.sock.recv(65536))
        return b"".join(state.chunks)
