"""A minimal HTTP/1.1 load generator for ``gateway.py``: raw asyncio streams, keep-alive,
Content-Length and chunked bodies, nothing else.

An HTTP client library would spend more CPU per request than the gateways it measures,
and it shares the core with them: this one costs a few microseconds a request, so the
figures are the gateways', not the client's.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


def build_request(url: str, path: str, body: Any, headers: dict[str, str]) -> tuple[str, int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
             f"content-length: {len(payload)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return host, int(port), ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def call(self, request: bytes) -> tuple[int, int, bytes]:
        """``(status, first_body_byte_ns, body)``."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None:
            body = await self.reader.readexactly(length)
            return status, time.perf_counter_ns(), body
        if not chunked:
            raise RuntimeError("response without content-length or chunked encoding")
        parts: list[bytes] = []
        first = 0
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                break
            if not first:
                first = time.perf_counter_ns()
            parts.append(data[:-2])
        return status, first, b"".join(parts)

    def close(self) -> None:
        self.writer.close()


async def sequential(url: str, path: str, body: Any, headers: dict[str, str], n: int,
                     warmup: int = 200) -> list[int]:
    """Per-call latencies (ns) of ``n`` calls one after another on one connection."""
    host, port, request = build_request(url, path, body, headers)
    conn = await Connection.open(host, port)
    try:
        for _ in range(warmup):
            status, _, reply = await conn.call(request)
            if status != 200:
                raise RuntimeError(f"{url}{path}: HTTP {status}: {reply[:300]!r}")
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await conn.call(request)
            samples.append(time.perf_counter_ns() - t0)
        return samples
    finally:
        conn.close()


async def first_byte(url: str, path: str, body: Any, headers: dict[str, str], n: int) -> list[int]:
    """Time (ns) from sending a streamed request to its first body byte."""
    host, port, request = build_request(url, path, body, headers)
    conn = await Connection.open(host, port)
    try:
        for _ in range(20):
            await conn.call(request)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            status, first, _ = await conn.call(request)
            if status != 200:
                raise RuntimeError(f"stream: HTTP {status}")
            samples.append(first - t0)
        return samples
    finally:
        conn.close()


async def throughput(url: str, path: str, body: Any, headers: dict[str, str], concurrency: int,
                     seconds: float) -> dict[str, float]:
    """Requests/s with ``concurrency`` connections, each calling back to back."""
    host, port, request = build_request(url, path, body, headers)
    conns = [await Connection.open(host, port) for _ in range(concurrency)]
    for conn in conns:  # warm every connection
        await conn.call(request)
    errors = 0
    done = 0

    async def loop(conn: Connection, deadline: float) -> None:
        nonlocal errors, done
        while time.perf_counter() < deadline:
            status, _, _ = await conn.call(request)
            if status == 200:
                done += 1
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(c, start + seconds) for c in conns))
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return {"rps": done / elapsed, "errors": errors}


async def count(url: str, path: str, body: Any, headers: dict[str, str], n: int,
                concurrency: int = 32) -> int:
    """Make ``n`` calls over ``concurrency`` connections (the RSS soak); returns errors."""
    host, port, request = build_request(url, path, body, headers)
    conns = [await Connection.open(host, port) for _ in range(concurrency)]
    remaining = n
    errors = 0

    async def loop(conn: Connection) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            status, _, _ = await conn.call(request)
            errors += status != 200

    await asyncio.gather(*(loop(c) for c in conns))
    for conn in conns:
        conn.close()
    return errors
