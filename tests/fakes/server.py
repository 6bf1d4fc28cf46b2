"""A real HTTP server on 127.0.0.1 that answers with scripted replies.

Dialect-agnostic on purpose: a test queues :class:`Reply` objects (built by the
per-dialect helpers in ``tests/fakes/replies_*.py``) and the server plays them in order,
recording every request it received. Faults are part of the script: a status with
``retry-after``, a hang, an SSE stream cut after N chunks, malformed bytes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer.

    ``body`` (dict -> JSON, or raw bytes) for a plain answer; ``chunks`` for a stream
    (each written and flushed in order, ``chunk_delay`` seconds apart). ``hang`` sleeps
    before answering; ``cut_after`` drops the connection after that many chunks;
    ``cut_body`` sends only that many bytes of a plain body (its full content-length
    announced) and closes; ``drip`` sends the body (or the stream's bytes) one byte every
    ``drip`` seconds; ``drop`` closes the connection without a byte of response;
    ``stall`` (bytes, seconds) sends that many bytes of a plain body, then waits.
    """

    status: int = 200
    body: dict[str, Any] | list[Any] | bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    chunk_delay: float = 0.0
    hang: float = 0.0
    cut_after: int | None = None
    cut_body: int | None = None
    drip: float = 0.0
    drop: bool = False
    stall: tuple[int, float] | None = None


@dataclass
class Received:
    """``served_before``: requests answered earlier on the same connection (> 0: the
    client reused a keep-alive connection)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    served_before: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` listens with a backlog of 5: hundreds of clients
    connecting at once (the pool tests' 4 x 100 calls) overflow it on a loaded machine,
    and a refused connection shows up as a ConnectionError the test did not ask for."""

    request_queue_size = 1024
    daemon_threads = True


class FakeProvider:
    """Start with ``with FakeProvider() as fake:``; ``fake.url`` is the base URL.

    ``fake.add(reply)`` queues replies; ``fake.default`` (a Reply or a callable taking the
    Received request) answers when the queue is empty, else 599 "no scripted reply".
    """

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.default: Reply | Callable[[Received], Reply] | None = None
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *replies: Reply) -> FakeProvider:
        with self._lock:
            self.replies.extend(replies)
        return self

    def next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if self.replies:
                return self.replies.popleft()
        default = self.default
        if callable(default):
            return default(received)
        if default is not None:
            return default
        return Reply(599, {"error": {"message": "fake provider: no scripted reply"}})

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # small writes would otherwise wait ~40 ms

        def log_message(self, format: str, *args: Any) -> None:  # silence the console
            return

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        served = 0
        """Requests answered on this connection so far (one handler per connection)."""

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            received = Received(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                self.served,
            )
            self.served += 1
            reply = fake.next_reply(received)
            if reply.hang:
                time.sleep(reply.hang)
            if reply.drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            try:
                if reply.chunks is not None:
                    self._stream(reply)
                else:
                    self._plain(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _plain(self, reply: Reply) -> None:
            body = reply.body
            if isinstance(body, dict | list):
                payload = json.dumps(body).encode()
                ctype = "application/json"
            elif isinstance(body, str):
                payload, ctype = body.encode(), "text/plain"
            else:
                payload, ctype = body or b"", "application/octet-stream"
            self.send_response(reply.status)
            headers = {"content-type": ctype, **reply.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if reply.cut_body is not None:
                self.wfile.write(payload[: reply.cut_body])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if reply.drip:
                self._drip(payload, reply.drip, chunked=False)
                return
            if reply.stall is not None:
                sent, pause = reply.stall
                self.wfile.write(payload[:sent])
                self.wfile.flush()
                time.sleep(pause)
                payload = payload[sent:]
            self.wfile.write(payload)

        def _drip(self, payload: bytes, delay: float, *, chunked: bool) -> None:
            """One byte every ``delay`` seconds: never idle long enough for a read timeout."""
            self.wfile.flush()
            for byte in payload:
                time.sleep(delay)
                piece = bytes([byte])
                self.wfile.write(b"1\r\n" + piece + b"\r\n" if chunked else piece)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        def _stream(self, reply: Reply) -> None:
            self.send_response(reply.status)
            headers = {"content-type": "text/event-stream", **reply.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if reply.drip:
                self._drip(b"".join(reply.chunks or ()), reply.drip, chunked=True)
                return
            for number, chunk in enumerate(reply.chunks or ()):
                if reply.cut_after is not None and number >= reply.cut_after:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                if reply.chunk_delay and number:
                    time.sleep(reply.chunk_delay)
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def sse(*payloads: Any, event_names: list[str | None] | None = None, crlf: bool = False) -> list[bytes]:
    """SSE chunks from payloads (dicts are JSON-encoded, strings sent as-is)."""
    nl = "\r\n" if crlf else "\n"
    chunks = []
    for i, payload in enumerate(payloads):
        data = payload if isinstance(payload, str) else json.dumps(payload)
        name = event_names[i] if event_names else None
        head = f"event: {name}{nl}" if name else ""
        chunks.append(f"{head}data: {data}{nl}{nl}".encode())
    return chunks
