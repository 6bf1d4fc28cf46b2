"""A minimal HTTP/1.1 load generator for ``gateway.py``: raw asyncio streams, keep-alive,
Content-Length and chunked bodies, nothing else.

Keep-alive as HTTP/1.1 allows a server to do it: a server may close a connection that sat
idle (uvicorn after 5 s, which is what LiteLLM runs on) or answer ``connection: close``.
A call that finds its reused connection closed before any byte of the reply came back
reconnects and sends again, once (counted in ``Connection.reconnects``); anything else
(a reply cut short) is still an error. Connections of a concurrent run are opened and
warmed together, so none idles while the others warm (with 256 connections to a gateway
doing 20 req/s, warming them one by one left the first idle for 13 s: LiteLLM's uvicorn
closed them and every later call on them failed with IncompleteReadError).

An HTTP client library would spend more CPU per request than the gateways it measures,
and it shares the core with them: this one costs a few microseconds a request, so the
figures are the gateways', not the client's.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


def build_request(url: str, path: str, body: Any, headers: dict[str, str]) -> tuple[str, int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
             f"content-length: {len(payload)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return host, int(port), ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    reconnects = 0
    """Reused connections found closed by the server, over every connection (a figure
    to print: a high count means the server closes keep-alive connections early)."""

    def __init__(self, host: str, port: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.host = host
        self.port = port
        self.reader = reader
        self.writer = writer
        self.used = False  # a reply came back on it: the server may since have closed it
        self.closing = False  # the last reply said ``connection: close``

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(host, port, reader, writer)

    async def _reopen(self) -> None:
        self.writer.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        self.used = self.closing = False

    async def call(self, request: bytes) -> tuple[int, int, bytes]:
        """``(status, first_body_byte_ns, body)``."""
        if self.closing:
            await self._reopen()
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            partial = getattr(exc, "partial", b"")
            if not self.used or partial:
                raise
            Connection.reconnects += 1  # closed while idle: the request was never read
            await self._reopen()
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        self.used = True
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
            elif name == b"connection" and b"close" in value.lower():
                self.closing = True
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
    conns = list(await asyncio.gather(*(Connection.open(host, port) for _ in range(concurrency))))
    await asyncio.gather(*(conn.call(request) for conn in conns))  # warm every connection
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
    conns = list(await asyncio.gather(*(Connection.open(host, port) for _ in range(concurrency))))
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


def wrk_throughput(url: str, path: str, body: Any, headers: dict[str, str], concurrency: int,
                   seconds: float, workdir: Path) -> dict[str, float] | None:
    """Requests/s from ``wrk`` (Debian's package; None when it is not installed): a C
    load generator, two threads, ``concurrency`` keep-alive connections. Where a
    measurement is about the server using more cores (the gateway's ``--workers``), a
    Python generator costs a core of its own and caps what two workers can show on a
    two-core machine; wrk costs a fraction of that. Non-2xx replies count as errors."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
             'wrk.headers["content-type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [binary, "-t", "1", "-c", str(concurrency), "-d", f"{seconds:g}s", "-s", str(script),
         url.rstrip("/") + path],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", done)
    if rps is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{done}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done)
    return {"rps": float(rps.group(1)), "errors": float(bad.group(1)) if bad else 0.0}
