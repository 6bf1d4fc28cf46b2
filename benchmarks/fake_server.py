"""A fast loopback OpenAI-compatible server for benchmarks, run in its own process.

Raw asyncio protocol (no framework) with keep-alive, so it answers in a few
microseconds and is never the bottleneck: ``measure_capacity`` prints its own raw
throughput. Non-streamed requests get a fixed chat.completion; requests with
``"stream":true`` get ``STREAM_CHUNKS`` content chunks, a finish chunk, a usage chunk
and ``[DONE]``. A path starting with ``/fail`` answers 500 (for failover benchmarks).

The server counts the requests it answered, so a benchmark can tell how many calls
really reached the "provider" (budget overshoot, failover): ``GET /count`` answers
``{"ok": n, "fail": n, "stream": n}`` and ``POST /reset`` zeroes the counters
(:func:`server_count` / :func:`server_reset` do both from a client).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import time
from typing import Any

STREAM_CHUNKS = 50

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_754_432_618,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "The answer is 42.", "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 25,
            "completion_tokens": 6,
            "total_tokens": 31,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_754_432_618,
        "model": "gpt-4o-mini",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": usage,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM_BODY = b"".join(
    [_chunk({"role": "assistant", "content": ""})]
    + [_chunk({"content": f"tok{i} "}) for i in range(STREAM_CHUNKS)]
    + [_chunk({}, "stop"), _chunk({}, None, {"prompt_tokens": 25, "completion_tokens": 50,
                                             "total_tokens": 75}), b"data: [DONE]\n\n"]
)

OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(COMPLETION)).encode()
    + b"\r\n\r\n"
    + COMPLETION
)
FAIL_BODY = b'{"error":{"message":"injected failure","type":"server_error"}}'
FAIL_RESPONSE = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(FAIL_BODY)).encode()
    + b"\r\n\r\n"
    + FAIL_BODY
)
STREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
    + str(len(STREAM_BODY)).encode()
    + b"\r\n\r\n"
    + STREAM_BODY
)


_COUNTS = {"ok": 0, "fail": 0, "stream": 0}
"""Requests answered since the last ``POST /reset`` (the server is one process, one loop)."""


def _small_json(status: bytes, payload: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[head_end + 4 : total]
            self.buffer = self.buffer[total:]
            assert self.transport is not None
            if head.startswith(b"POST /fail"):
                _COUNTS["fail"] += 1
                self.transport.write(FAIL_RESPONSE)
            elif head.startswith(b"GET /count"):
                self.transport.write(_small_json(b"200 OK", json.dumps(_COUNTS).encode()))
            elif head.startswith(b"POST /reset"):
                for name in _COUNTS:
                    _COUNTS[name] = 0
                self.transport.write(_small_json(b"200 OK", b"{}"))
            elif b'"stream":true' in body or b'"stream": true' in body:
                _COUNTS["stream"] += 1
                self.transport.write(STREAM_RESPONSE)
            else:
                _COUNTS["ok"] += 1
                self.transport.write(OK_RESPONSE)


def _serve(port_queue: Any, cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)
        server = await loop.create_server(_Protocol, sock=sock, backlog=4096)
        port_queue.put(sock.getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class BenchServer:
    """``with BenchServer(cpu=1) as url:`` — a server process pinned to ``cpu``."""

    def __init__(self, cpu: int | None = None) -> None:
        self.cpu = cpu
        self.process: multiprocessing.Process | None = None
        self.url = ""

    def __enter__(self) -> str:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        self.process = ctx.Process(target=_serve, args=(queue, self.cpu), daemon=True)
        self.process.start()
        port = queue.get(timeout=30)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(5)


def measure_capacity(url: str, seconds: float = 1.5, connections: int = 32) -> float:
    """Raw requests/s the server sustains from pipelined raw sockets (no HTTP client)."""
    host, port = url.removeprefix("http://").split(":")
    body = b'{"model":"m","messages":[]}'
    request = (
        b"POST /chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    marker = b"HTTP/1.1 200"

    async def one(deadline: float) -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        done = 0
        pending = b""
        while time.perf_counter() < deadline:
            writer.write(request * 16)
            got = 0
            while got < 16:
                pending += await reader.read(65536)
                got_now = pending.count(marker)
                if got_now:
                    got += got_now
                    pending = pending[pending.rfind(marker) + len(marker) :]
            done += 16
        writer.close()
        return done

    async def main() -> float:
        deadline = time.perf_counter() + seconds
        counts = await asyncio.gather(*(one(deadline) for _ in range(connections)))
        return sum(counts) / seconds

    return asyncio.run(main())


def server_count(url: str) -> dict[str, int]:
    """The server's request counters (``GET /count``), over a fresh raw socket."""
    return json.loads(_raw_call(url, b"GET /count"))  # type: ignore[no-any-return]


def server_reset(url: str) -> None:
    """Zero the server's request counters (``POST /reset``)."""
    _raw_call(url, b"POST /reset")


def _raw_call(url: str, line: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(line + b" HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for header in head.split(b"\r\n")[1:]:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            body += sock.recv(65536)
        return body[:length]
