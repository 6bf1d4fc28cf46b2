"""The sync httptools backend's own HTTP/1.1 handling against the raw socket server of
the async backend's tests (the fault matrix and test_transport run the common
behaviour on it too)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests.core.transport.test_httptools_backend import (
    ANSWER,
    _dep,
    _reply,
    chunked_body,
    ok,
    serving,
)
from tollway.core import errors
from tollway.core.transport import httptools_sync_backend
from tollway.core.transport.httptools_sync_backend import HttptoolsSyncBackend


def _post(backend: HttptoolsSyncBackend, url: str, body: bytes = b"{}",
          headers: dict[str, str] | None = None, **timeouts: float) -> tuple[int, object, bytes]:
    dep = _dep(url, **timeouts)
    return backend.post(dep, f"{url}/chat/completions", body,
                        headers or {"content-type": "application/json"})


def test_one_keep_alive_connection_serves_calls_and_the_head_is_written_exactly() -> None:
    with serving(ok) as server:
        backend = HttptoolsSyncBackend()
        try:
            bodies = [_post(backend, server.url, b'{"n":1}')[2] for _ in range(3)]
        finally:
            backend.close()
        assert bodies == [ANSWER] * 3
        assert server.connections == 1
        head = server.requests[0].decode("latin-1")
        assert head.startswith("POST /chat/completions HTTP/1.1\r\n")
        assert "\r\nContent-Length: 7\r\n" in head and head.endswith('\r\n\r\n{"n":1}')


def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    def chunked(conn: socket.socket, request: bytes) -> bool:
        body = chunked_body([ANSWER[:4], ANSWER[4:]])
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
                     + body)
        return True

    def until_close(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + ANSWER)
        return False

    for handler, connections in ((chunked, 1), (until_close, 2)):
        with serving(handler) as server:
            backend = HttptoolsSyncBackend()
            try:
                results = [_post(backend, server.url) for _ in range(2)]
            finally:
                backend.close()
            assert [body for _, _, body in results] == [ANSWER, ANSWER]
            assert server.connections == connections
    assert results[0][0] == 200


def test_an_idle_connection_the_server_closed_is_not_sent_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httptools_sync_backend, "CHECK_AFTER_IDLE", 0.0)

    def answer_then_close(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(_reply())  # keep-alive promised, then closed anyway
        return False

    with serving(answer_then_close) as server:
        backend = HttptoolsSyncBackend()
        try:
            first = _post(backend, server.url)[2]
            threading.Event().wait(0.2)  # the close reaches us
            second = _post(backend, server.url)[2]
        finally:
            backend.close()
        assert first == second == ANSWER
        assert len(server.requests) == 2  # nothing was lost on the closed connection


def test_a_stream_left_early_is_closed_and_an_invalid_response_is_a_connection_error() -> None:
    def half(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        return True

    with serving(half) as server:
        backend = HttptoolsSyncBackend()
        try:
            dep = _dep(server.url)
            for _ in range(2):
                with backend.stream(dep, f"{server.url}/s", b"{}", {}) as resp:
                    assert next(iter(resp.iter_bytes())) == b"first"
        finally:
            backend.close()
        assert server.connections == 2

    def garbage(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"NOT HTTP\r\n\r\n")
        return True

    with serving(garbage) as server:
        backend = HttptoolsSyncBackend()
        try:
            with pytest.raises(errors.ConnectionError, match="invalid HTTP response"):
                _post(backend, server.url)
        finally:
            backend.close()


def test_bad_headers_are_refused_before_anything_is_sent() -> None:
    with serving(ok) as server:
        backend = HttptoolsSyncBackend()
        try:
            with pytest.raises(errors.ConfigError, match="line break"):
                _post(backend, server.url, headers={"x-a": "1\r\nx-b: 2"})
            with pytest.raises(errors.ConfigError, match="Latin-1"):
                _post(backend, server.url, headers={"x-a": "日本"})
        finally:
            backend.close()
        assert server.requests == []


def test_threads_beyond_the_cap_wait_for_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httptools_sync_backend, "MAX_CONNECTIONS", 2)
    active, most, lock = [0], [0], threading.Lock()

    def slow(conn: socket.socket, request: bytes) -> bool:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        threading.Event().wait(0.05)
        with lock:
            active[0] -= 1
        conn.sendall(_reply())
        return True

    with serving(slow) as server:
        backend = HttptoolsSyncBackend()
        statuses: list[int] = []
        try:
            threads = [threading.Thread(target=lambda: statuses.append(_post(backend, server.url)[0]))
                       for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
        finally:
            backend.close()
        assert statuses == [200] * 6 and most[0] == 2


def test_timeouts_and_a_refused_connection_are_typed() -> None:
    def silent(conn: socket.socket, request: bytes) -> bool:
        threading.Event().wait(1.0)
        return False

    with serving(silent) as server:
        backend = HttptoolsSyncBackend()
        try:
            with pytest.raises(errors.TimeoutError, match="read timeout"):
                _post(backend, server.url, read=0.2)
            with pytest.raises(errors.TimeoutError, match="could not connect"):
                _post(backend, server.url.replace("http://", "https://"), connect=0.3)
        finally:
            backend.close()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    backend = HttptoolsSyncBackend()
    try:
        with pytest.raises(errors.ConnectionError, match=f"could not reach {url}") as caught:
            _post(backend, url)
    finally:
        backend.close()
    assert "sk-test-httptools" not in str(caught.value)


def test_a_forked_child_opens_its_own_connection() -> None:
    with serving(ok) as server:
        backend = HttptoolsSyncBackend()
        try:
            assert _post(backend, server.url)[2] == ANSWER
            pid = os.fork()
            if pid == 0:  # the child: the parent's pooled connection is forgotten
                try:
                    code = 0 if _post(backend, server.url)[2] == ANSWER else 1
                except BaseException:
                    code = 2
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0
            assert _post(backend, server.url)[2] == ANSWER  # the parent's still works
        finally:
            backend.close()
        assert server.connections == 2


def test_a_pooled_connection_takes_each_calls_own_read_timeout() -> None:
    """The bound on a plain socket's reads is the kernel's (SO_RCVTIMEO), set only when
    it changes: a connection pooled under a long timeout waits only as long as the next
    call allows, and the one after that gets its long timeout back."""
    calls = [0]

    def second_stalls(conn: socket.socket, request: bytes) -> bool:
        calls[0] += 1
        if calls[0] == 2:
            threading.Event().wait(2.0)
            return False
        conn.sendall(_reply())
        return True

    with serving(second_stalls) as server:
        backend = HttptoolsSyncBackend()
        try:
            assert _post(backend, server.url, read=30.0)[2] == ANSWER
            started = time.monotonic()
            with pytest.raises(errors.TimeoutError, match="read timeout"):
                _post(backend, server.url, read=0.3)
            waited = time.monotonic() - started
            assert _post(backend, server.url, read=30.0)[2] == ANSWER  # a fresh connection
        finally:
            backend.close()
    assert 0.25 <= waited < 1.5
    assert server.connections == 2


def test_a_send_the_server_never_reads_ends_at_the_timeout() -> None:
    """A body the server does not read fills the socket buffers: the send waits at most
    the timeout (SO_SNDTIMEO on a plain socket) and is a typed TimeoutError, and the
    connection is not pooled."""
    with socket.create_server(("127.0.0.1", 0)) as deaf:  # accepts, never reads
        url = f"http://127.0.0.1:{deaf.getsockname()[1]}"
        backend = HttptoolsSyncBackend()
        try:
            started = time.monotonic()
            with pytest.raises(errors.TimeoutError, match="timeout"):
                _post(backend, url, b"x" * (64 << 20), read=0.3)
            waited = time.monotonic() - started
        finally:
            backend.close()
    assert 0.25 <= waited < 5.0
    assert backend._pool.idle == {}


def test_a_thread_that_finds_no_free_connection_in_time_is_told_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httptools_sync_backend, "MAX_CONNECTIONS", 1)
    release = threading.Event()

    def held(conn: socket.socket, request: bytes) -> bool:
        release.wait(10)
        conn.sendall(_reply())
        return True

    with serving(held) as server:
        backend = HttptoolsSyncBackend()
        results: list[bytes] = []
        holder = threading.Thread(target=lambda: results.append(_post(backend, server.url)[2]))
        try:
            holder.start()
            deadline = time.monotonic() + 5
            while not server.requests:  # the holder's request is in flight
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with pytest.raises(errors.TimeoutError, match=r"no free connection within 0\.2s"):
                _post(backend, server.url, connect=0.2)
            release.set()
            holder.join(10)
            assert _post(backend, server.url)[2] == ANSWER  # the slot came back
        finally:
            release.set()
            backend.close()
        assert results == [ANSWER]


def test_a_child_forked_while_another_thread_holds_a_slot_has_all_its_slots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parent's requests in flight are not the child's: with one slot, held by a
    parent's thread at the fork, the child still gets its request through."""
    monkeypatch.setattr(httptools_sync_backend, "MAX_CONNECTIONS", 1)
    release = threading.Event()

    def held_first(conn: socket.socket, request: bytes) -> bool:
        if len(server.requests) == 1:
            release.wait(10)
        conn.sendall(_reply())
        return True

    with serving(held_first) as server:
        backend = HttptoolsSyncBackend()
        holder = threading.Thread(target=lambda: _post(backend, server.url))
        try:
            holder.start()
            deadline = time.monotonic() + 5
            while not server.requests:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            pid = os.fork()
            if pid == 0:
                try:
                    code = 0 if _post(backend, server.url, connect=2.0)[2] == ANSWER else 1
                except BaseException:
                    code = 2
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0
        finally:
            release.set()
            holder.join(10)
            backend.close()
