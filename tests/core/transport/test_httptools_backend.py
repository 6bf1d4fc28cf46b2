"""The httptools backend's own HTTP/1.1 handling, against a raw socket server that
answers exactly as written: body framings, flow control, connection reuse and limits,
bad responses and bad headers. (The fault matrix and test_transport run the common
behaviour on every backend, this one included.)"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tollway.core import errors
from tollway.core.providers import Deployment, Timeouts, provider_spec
from tollway.core.transport import httptools_backend
from tollway.core.transport.httptools_backend import HttptoolsBackend

Handler = Callable[[socket.socket, bytes], bool]
"""Answers one request (its raw bytes); False closes the connection."""

ANSWER = json.dumps({"ok": True}).encode()


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> None:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        self.sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with self.lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        conn.settimeout(0.1)
        buffer = b""
        try:
            while not self.stop.is_set():
                head_end = buffer.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = buffer[:head_end].decode("latin-1")
                    length = 0
                    for line in head.split("\r\n")[1:]:
                        name, _, value = line.partition(":")
                        if name.strip().lower() == "content-length":
                            length = int(value)
                    end = head_end + 4 + length
                    if len(buffer) >= end:
                        request, buffer = buffer[:end], buffer[end:]
                        with self.lock:
                            self.requests.append(request)
                        if not self.handler(conn, request):
                            return
                        continue
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                buffer += data
        finally:
            with self.lock:
                self.open_now -= 1
            conn.close()


@contextmanager
def serving(handler: Handler) -> Iterator[Server]:
    server = Server(handler)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _dep(url: str, **timeouts: float) -> Deployment:
    spec = provider_spec("openai_compatible")
    assert spec is not None
    return Deployment(name="d", provider=spec, model="m", api_base=url,
                      api_key="sk-test-httptools", timeouts=Timeouts(**timeouts))


def _reply(body: bytes = ANSWER, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def chunked_body(parts: list[bytes]) -> bytes:
    """``parts`` as an HTTP/1.1 chunked body, its last chunk included."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def ok(conn: socket.socket, request: bytes) -> bool:
    conn.sendall(_reply())
    return True


async def _post(backend: HttptoolsBackend, dep: Deployment, body: bytes = b"{}",
                headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    return await backend.post(dep, f"{dep.api_base}/chat/completions", body,
                              headers or {"content-type": "application/json"})


def run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())


def test_the_request_line_host_and_length_are_written_and_one_connection_is_reused() -> None:
    with serving(ok) as server:
        async def go() -> list[bytes]:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                return [(await _post(backend, dep, b'{"n":1}'))[2] for _ in range(3)]
            finally:
                await backend.aclose()

        assert run(go) == [ANSWER] * 3
        assert server.connections == 1
        head = server.requests[0].decode("latin-1")
        port = server.url.rsplit(":", 1)[1]
        assert head.startswith("POST /chat/completions HTTP/1.1\r\n")
        assert f"\r\nHost: 127.0.0.1:{port}\r\n" in head
        assert "\r\nContent-Length: 7\r\n" in head
        assert head.endswith('\r\n\r\n{"n":1}')


def test_a_chunked_body_is_reassembled_and_its_headers_are_case_insensitive() -> None:
    def chunked(conn: socket.socket, request: bytes) -> bool:
        body = chunked_body([ANSWER[:3], ANSWER[3:]])
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: abc\r\n\r\n"
                     + body)
        return True

    with serving(chunked) as server:
        async def go() -> tuple[int, Any, bytes]:
            backend = HttptoolsBackend()
            try:
                return await _post(backend, _dep(server.url))
            finally:
                await backend.aclose()

        status, headers, body = run(go)
        assert (status, body) == (200, ANSWER)
        assert headers["x-request-id"] == "abc" and headers["X-Request-ID"] == "abc"


def test_a_body_delimited_by_the_close_is_read_to_the_end_and_not_pooled() -> None:
    def until_close(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + ANSWER)
        return False

    with serving(until_close) as server:
        async def go() -> list[bytes]:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                return [(await _post(backend, dep))[2] for _ in range(2)]
            finally:
                await backend.aclose()

        assert run(go) == [ANSWER, ANSWER]
        assert server.connections == 2


def test_a_large_stream_is_read_whole_through_flow_control() -> None:
    total = 4 * httptools_backend.HIGH_WATER
    block = b"x" * 65536

    def big(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        for _ in range(total // len(block)):
            conn.sendall(block)
        return True

    with serving(big) as server:
        async def go() -> tuple[int, int]:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                received = 0
                async with backend.stream(dep, f"{server.url}/s", b"{}", {}) as stream:
                    await asyncio.sleep(0.3)  # the consumer lags: reading pauses meanwhile
                    async for chunk in stream:
                        received += len(chunk)
                again = len((await _post(backend, dep))[2])  # the same connection, reusable
                return received, again
            finally:
                await backend.aclose()

        assert run(go) == (total, total)
        assert server.connections == 1


def test_a_stream_left_before_its_end_closes_its_connection() -> None:
    def slow_stream(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        return True  # the rest never comes

    with serving(slow_stream) as server:
        async def go() -> bytes:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                async with backend.stream(dep, f"{server.url}/s", b"{}", {}) as stream:
                    async for chunk in stream:
                        return chunk
                return b""
            finally:
                await backend.aclose()

        assert run(go) == b"first"

    with serving(slow_stream) as server:
        async def twice() -> int:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                for _ in range(2):
                    async with backend.stream(dep, f"{server.url}/s", b"{}", {}) as stream:
                        async for _chunk in stream:
                            break
                return len(backend._pool.idle.get(("http", "127.0.0.1", dep_port(server)), []))
            finally:
                await backend.aclose()

        assert run(twice) == 0
        assert server.connections == 2  # the half-read one was not handed out again


def dep_port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_an_invalid_response_is_a_connection_error() -> None:
    def garbage(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return True

    with serving(garbage) as server:
        async def go() -> None:
            backend = HttptoolsBackend()
            try:
                await _post(backend, _dep(server.url))
            finally:
                await backend.aclose()

        with pytest.raises(errors.ConnectionError, match="invalid HTTP response") as caught:
            run(go)
        assert not caught.value.unanswered


@pytest.mark.parametrize("name, value", [("x-note", "a\r\nx-injected: 1"), ("bad:name", "v"),
                                         ("x-note", "line\nbreak")])
def test_a_header_that_would_split_the_request_is_refused_before_sending(
    name: str, value: str
) -> None:
    with serving(ok) as server:
        async def go() -> None:
            backend = HttptoolsBackend()
            try:
                await _post(backend, _dep(server.url), headers={name: value})
            finally:
                await backend.aclose()

        with pytest.raises(errors.ConfigError, match=r"line break|colon"):
            run(go)
        assert server.requests == []


def test_a_header_outside_latin1_is_a_config_error() -> None:
    with serving(ok) as server:
        async def go() -> None:
            backend = HttptoolsBackend()
            try:
                await _post(backend, _dep(server.url), headers={"x-name": "日本"})
            finally:
                await backend.aclose()

        with pytest.raises(errors.ConfigError, match="Latin-1"):
            run(go)


def test_open_connections_are_capped_and_further_calls_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httptools_backend, "MAX_CONNECTIONS", 2)

    active, most, lock = [0], [0], threading.Lock()

    def slow(conn: socket.socket, request: bytes) -> bool:
        with lock:  # requests being answered at once (counted down before the reply)
            active[0] += 1
            most[0] = max(most[0], active[0])
        threading.Event().wait(0.05)
        with lock:
            active[0] -= 1
        conn.sendall(_reply(extra=b"connection: close\r\n"))
        return False

    with serving(slow) as server:
        async def go() -> list[int]:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                done = await asyncio.gather(*(_post(backend, dep) for _ in range(6)))
                return [status for status, _, _ in done]
            finally:
                await backend.aclose()

        assert run(go) == [200] * 6
        assert server.connections == 6 and most[0] == 2


def test_a_server_that_never_answers_times_out_within_read() -> None:
    def silent(conn: socket.socket, request: bytes) -> bool:
        threading.Event().wait(1.0)
        return False

    with serving(silent) as server:
        async def go() -> float:
            backend = HttptoolsBackend()
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await _post(backend, _dep(server.url, read=0.2))
            except errors.TimeoutError:
                return loop.time() - started
            finally:
                await backend.aclose()
            raise AssertionError("no timeout")

        assert 0.15 < run(go) < 0.9


def test_a_tls_handshake_nobody_answers_ends_at_the_connect_timeout() -> None:
    with serving(ok) as server:  # plain HTTP: the ClientHello gets no answer
        async def go() -> None:
            backend = HttptoolsBackend()
            try:
                await _post(backend, _dep(server.url.replace("http://", "https://"), connect=0.3))
            finally:
                await backend.aclose()

        with pytest.raises(errors.TimeoutError, match=r"could not connect .* within 0\.3s"):
            run(go)


def test_a_refused_connection_is_a_connection_error_naming_the_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    async def go() -> None:
        backend = HttptoolsBackend()
        try:
            await _post(backend, _dep(url))
        finally:
            await backend.aclose()

    with pytest.raises(errors.ConnectionError, match=f"could not reach {url}") as caught:
        run(go)
    assert "sk-test-httptools" not in str(caught.value)


def test_a_call_cancelled_while_waiting_for_a_connection_slot_gives_none_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httptools_backend, "MAX_CONNECTIONS", 1)

    def slow(conn: socket.socket, request: bytes) -> bool:
        threading.Event().wait(0.1)
        conn.sendall(_reply())
        return True

    with serving(slow) as server:
        async def go() -> list[int]:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                first = asyncio.ensure_future(_post(backend, dep))
                await asyncio.sleep(0.02)
                waiting = asyncio.ensure_future(_post(backend, dep))
                await asyncio.sleep(0.02)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                third = await asyncio.wait_for(_post(backend, dep), 2)  # the slot came back
                return [(await first)[0], third[0], backend._slots.open]
            finally:
                await backend.aclose()

        assert run(go) == [200, 200, 0]
        assert len(server.requests) == 2  # the cancelled call sent nothing


def test_each_call_sends_the_headers_it_is_given_even_when_dicts_are_reused_or_new() -> None:
    with serving(ok) as server:
        async def go() -> None:
            backend = HttptoolsBackend()
            try:
                dep = _dep(server.url)
                shared = {"x-kind": "shared"}
                for n in range(70):  # past the block cache's size: it is cleared, not stale
                    await _post(backend, dep, headers=shared)
                    await _post(backend, dep, headers={"x-kind": f"fresh-{n}"})
            finally:
                await backend.aclose()

        run(go)
        kinds = [r.decode("latin-1").split("x-kind: ")[1].split("\r\n")[0] for r in server.requests]
        assert kinds == [k for n in range(70) for k in ("shared", f"fresh-{n}")]
