"""The sync transport's two backends (httpcore driven directly; httpx.Client when a
proxy is configured) against a raw-socket HTTP/1.1 server on 127.0.0.1.

The raw server lets the tests do what a real provider's edge does and the fake
provider cannot: keep connections alive and count them, drop an idle keep-alive
connection, cut a response short, act as a forward proxy.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

import tollway
from tollway import errors
from tollway.core.transport import Transport
from tollway.core.types import StreamEnd

KEY = "sk-test-transport-key-0123456789"

COMPLETION = json.dumps({
    "id": "chatcmpl-t", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "The answer is 42."}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
}).encode()


def _sse() -> bytes:
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "The answer"}}]},
        {"choices": [{"index": 0, "delta": {"content": " is 42."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6}},
    ]
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


@dataclass
class RawServer:
    """HTTP/1.1 with keep-alive. ``mode``: "ok" answers; "drop_idle" answers then closes
    the connection 50 ms later (a server whose keep-alive timer fired; a request sent in
    the instant of that close is lost with httpx as with any HTTP/1.1 client, so the
    test idles past it, as real keep-alive timeouts of seconds do); "cut" sends half a body
    and closes; "hang" never answers; "drip" sends the body a byte at a time; "close_reused" answers a connection's first request
    and closes it on the second without a byte of response (the race of a request sent in
    the instant a keep-alive timer closes the connection)."""

    mode: str = "ok"
    connections: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self._sock is not None
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> RawServer:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        assert self._sock is not None
        self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buffer = b""
        served = 0
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, rest = buffer.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    headers = {k.strip().lower(): v.strip()
                               for k, v in (line.split(":", 1) for line in lines[1:])}
                    length = int(headers.get("content-length", "0"))
                    if len(rest) < length:
                        break
                    body, buffer = rest[:length], rest[length:]
                    self.requests.append((lines[0], headers, body))
                    served += 1
                    if self.mode == "close_reused" and served > 1:
                        return
                    if not self._answer(conn, body):
                        return

    def _answer(self, conn: socket.socket, body: bytes) -> bool:
        """Send the reply; False when the connection is to close."""
        if self.mode == "hang":
            self._stop.wait(10)
            return False
        stream = b'"stream":true' in body
        payload = _sse() if stream else COMPLETION
        kind = b"text/event-stream" if stream else b"application/json"
        head = (b"HTTP/1.1 200 OK\r\ncontent-type: " + kind
                + b"\r\ncontent-length: " + str(len(payload)).encode() + b"\r\n\r\n")
        if self.mode == "cut":
            conn.sendall(head + payload[: len(payload) // 2])
            return False
        if self.mode == "drip":  # a byte every 0.2 s: never idle long enough for ``read``
            conn.sendall(head)
            for byte in payload:
                if self._stop.wait(0.2):
                    return False
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return False
            return True
        conn.sendall(head + payload)
        if self.mode == "drop_idle":
            self._stop.wait(0.05)  # the keep-alive timer fires while the client is idle
            return False
        return True


@pytest.fixture(params=["httptools", "httpcore", "httpx"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Transport]:
    monkeypatch.setenv("TOLLWAY_SYNC_TRANSPORT", request.param)
    transport = Transport()
    yield transport
    transport.close()


def _model(url: str, transport: Transport, **kw: object) -> tollway.Model:
    return tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=url, ledger=False,
                         transport=transport, **kw)


def _collect(model: tollway.Model) -> str:
    with model.stream("hi") as stream:
        for event in stream:
            if isinstance(event, StreamEnd):
                return event.response.text
    raise AssertionError("the stream ended without a StreamEnd")


def test_the_default_sync_backend_is_httptools_and_a_proxy_switches_to_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "TOLLWAY_SYNC_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    assert type(Transport().sync_backend()).__name__ == "HttptoolsSyncBackend"
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert type(Transport().sync_backend()).__name__ == "_HttpxSyncBackend"


def test_a_lone_no_proxy_names_no_proxy_and_keeps_the_fast_backends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "TOLLWAY_SYNC_TRANSPORT", "TOLLWAY_ASYNC_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert type(Transport().sync_backend()).__name__ == "HttptoolsSyncBackend"

    async def async_backend() -> str:
        transport = Transport()
        try:
            return type(transport.async_backend()).__name__
        finally:
            await transport.aclose()

    assert asyncio.run(async_backend()) == "HttptoolsBackend"


def test_calls_and_streams_reuse_one_keep_alive_connection(backend: Transport) -> None:
    with RawServer() as server:
        model = _model(server.url, backend)
        texts = [model.complete("hi").text for _ in range(5)] + [_collect(model) for _ in range(3)]
        assert texts == ["The answer is 42."] * 8
        assert server.connections == 1
        line, headers, body = server.requests[0]
        assert line == "POST /chat/completions HTTP/1.1"
        assert headers["authorization"] == f"Bearer {KEY}"
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["model"] == "gpt-4o-mini"


def test_a_connection_the_server_dropped_while_idle_is_replaced_not_reported(
    backend: Transport,
) -> None:
    with RawServer(mode="drop_idle") as server:
        model = _model(server.url, backend)
        for _ in range(4):
            assert model.complete("hi").text == "The answer is 42."
            time.sleep(0.2)  # idle past the server's keep-alive timeout
        assert server.connections == 4


@pytest.mark.parametrize("call", ["complete", "stream"])
def test_a_reused_connection_closed_before_any_response_is_retried_once_fresh(
    backend: Transport, call: str
) -> None:
    with RawServer(mode="close_reused") as server:
        model = _model(server.url, backend)
        for _ in range(3):
            text = model.complete("hi").text if call == "complete" else _collect(model)
            assert text == "The answer is 42."
        # each call after the first: its request on the reused connection is lost, then
        # sent again on a fresh connection
        assert server.connections == 3
        assert len(server.requests) == 5


@pytest.mark.parametrize("async_backend", ["httptools", "aiohttp", "httpx"])
@pytest.mark.parametrize("call", ["complete", "stream"])
def test_async_a_reused_connection_closed_before_any_response_is_retried_once_fresh(
    monkeypatch: pytest.MonkeyPatch, async_backend: str, call: str
) -> None:
    monkeypatch.setenv("TOLLWAY_ASYNC_TRANSPORT", async_backend)

    async def go(url: str) -> list[str]:
        transport = Transport()
        model = _model(url, transport)
        try:
            texts = []
            for _ in range(3):
                if call == "complete":
                    texts.append((await model.acomplete("hi")).text)
                else:
                    texts.append((await model.astream("hi").collect()).text)
            return texts
        finally:
            await transport.aclose()

    with RawServer(mode="close_reused") as server:
        assert asyncio.run(go(server.url)) == ["The answer is 42."] * 3
        assert server.connections == 3 and len(server.requests) == 5


@pytest.mark.parametrize("call", ["complete", "acomplete"])
def test_total_bounds_a_body_that_drips_a_byte_at_a_time(backend: Transport, call: str) -> None:
    with RawServer(mode="drip") as server:
        model = _model(server.url, backend, timeout={"connect": 2, "read": 5, "total": 1})
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError):
            if call == "complete":
                model.complete("hi")
            else:
                asyncio.run(model.acomplete("hi"))
        assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_a_connection_error_naming_the_base_url(
    backend: Transport,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(errors.ConnectionError, match=re.escape("could not reach http://127.0.0.1")) as info:
        _model(url, backend).complete("hi")
    assert KEY not in str(info.value)


@pytest.mark.parametrize("call", ["complete", "stream"])
def test_a_hanging_server_is_a_timeout_error(backend: Transport, call: str) -> None:
    with RawServer(mode="hang") as server:
        model = _model(server.url, backend, timeout=0.3)
        run: Callable[[], object] = (
            (lambda: model.complete("hi")) if call == "complete" else (lambda: _collect(model))
        )
        with pytest.raises(errors.TimeoutError, match="read timeout"):
            run()


@pytest.mark.parametrize("call", ["complete", "stream"])
def test_a_response_cut_short_is_a_connection_error(backend: Transport, call: str) -> None:
    with RawServer(mode="cut") as server:
        model = _model(server.url, backend)
        run: Callable[[], object] = (
            (lambda: model.complete("hi")) if call == "complete" else (lambda: _collect(model))
        )
        with pytest.raises(errors.ConnectionError, match="closed mid-response"):
            run()


def test_with_a_proxy_in_the_environment_calls_go_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOLLWAY_SYNC_TRANSPORT", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with RawServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        transport = Transport()
        try:
            model = _model("http://provider.invalid/v1", transport)
            assert model.complete("hi").text == "The answer is 42."
        finally:
            transport.close()
        # A forward proxy receives the absolute URL of the real target.
        assert proxy.requests[0][0] == "POST http://provider.invalid/v1/chat/completions HTTP/1.1"


async def test_with_a_proxy_in_the_environment_async_calls_go_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TOLLWAY_ASYNC_TRANSPORT", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with RawServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        transport = Transport()
        try:
            model = _model("http://provider.invalid/v1", transport)
            assert (await model.acomplete("hi")).text == "The answer is 42."
            assert type(transport.async_backend()).__name__ == "_HttpxAsyncBackend"
        finally:
            await transport.aclose()
        assert proxy.requests[0][0] == "POST http://provider.invalid/v1/chat/completions HTTP/1.1"


def test_the_default_backend_sends_every_call_from_many_threads(backend: Transport) -> None:
    with RawServer() as server:
        model = _model(server.url, backend)
        results: list[str] = []
        lock = threading.Lock()

        def work() -> None:
            for _ in range(10):
                text = model.complete("hi").text
                with lock:
                    results.append(text)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == ["The answer is 42."] * 80
        assert 1 <= server.connections <= 8

