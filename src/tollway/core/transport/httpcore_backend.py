"""The sync HTTP backend: httpcore's connection pool, driven directly (one of the backends
of ``core/transport``).

httpx's ``Client`` is a model layer over httpcore: per call it builds a Request,
merges URLs, headers and cookies, runs auth and event-hook machinery, builds a
Response and decodes it. Measured against the benchmark fake server on this machine,
that layer costs ~150 us of CPU per call, more than all of tollway's own code. tollway
needs none of it (it sets its own headers, never follows redirects, keeps no
cookies), so the sync path hands httpcore the bytes and the pre-parsed URL itself:
the same HTTP/1.1 stack, connection pool, TLS context (``httpx.create_ssl_context``,
so certifi and SSL_CERT_FILE behave as in httpx) and keep-alive handling as httpx.

What it leaves to httpx: proxies. When any proxy variable is set in the environment
the transport keeps using ``httpx.Client`` (``trust_env``), which routes by them.
Responses are not decompressed, and none are requested compressed (no
``accept-encoding`` is sent).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any, cast

import httpcore
import httpx

from tollway.core.providers import Deployment, Timeouts
from tollway.core.transport.base import body_socket, read_within, stream_deadline

__all__ = ["HttpcoreBackend", "HttpcoreStream"]


@cache
def _extensions(t: Timeouts) -> dict[str, Any]:
    """httpcore's per-request timeouts: ``read`` (capped by ``total``) bounds each
    socket read and write; ``connect`` the connection and the wait for a pooled one."""
    read = t.call_read
    return {"timeout": {"connect": t.connect, "read": read, "write": read, "pool": t.connect}}


class HttpcoreBackend:
    """One httpcore pool per process, shared by every thread and deployment."""

    def __init__(self) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=1024,
            max_keepalive_connections=512,
            keepalive_expiry=30,
        )
        self._urls: dict[str, httpcore.URL] = {}

    def _url(self, url: str) -> httpcore.URL:
        """Parsed once per URL (parsing costs more than the rest of the hand-off)."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpcore.URL(url)
            if len(self._urls) < 256:
                self._urls[url] = parsed
        return parsed

    def post(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, httpx.Headers, bytes]:
        if dep.timeouts.total is not None:
            return self._post_within_total(dep, url, body, headers)
        resp = self._pool.request(
            "POST", self._url(url), headers=cast(Any, headers), content=body,
            extensions=_extensions(dep.timeouts),
        )
        return resp.status, httpx.Headers(resp.headers), resp.content

    def _post_within_total(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, httpx.Headers, bytes]:
        """``read`` bounds each wait for bytes; a server that drips its body a byte at a
        time never trips it, and one that stalls mid-body trips it only after ``read``,
        so a call with ``total`` reads its body against the deadline (``read_within``:
        TimeoutError at ``total``)."""
        deadline = stream_deadline(dep)
        with self._pool.stream(
            "POST", self._url(url), headers=cast(Any, headers), content=body,
            extensions=_extensions(dep.timeouts),
        ) as resp:
            chunks = read_within(resp.iter_stream(), deadline, body_socket(resp.extensions), dep)
            return resp.status, httpx.Headers(resp.headers), b"".join(chunks)

    @contextmanager
    def stream(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> Iterator[HttpcoreStream]:
        with self._pool.stream(
            "POST", self._url(url), headers=cast(Any, headers), content=body,
            extensions=_extensions(dep.timeouts),
        ) as resp:
            yield HttpcoreStream(resp)

    def close(self) -> None:
        self._pool.close()


class HttpcoreStream:
    """An open streamed response: ``status``, ``headers``, ``socket``, ``iter_bytes()``."""

    __slots__ = ("_resp",)

    def __init__(self, resp: httpcore.Response) -> None:
        self._resp = resp

    @property
    def status(self) -> int:
        return self._resp.status

    @property
    def headers(self) -> httpx.Headers:
        return httpx.Headers(self._resp.headers)

    @property
    def socket(self) -> Any:
        return body_socket(self._resp.extensions)

    def iter_bytes(self) -> Iterator[bytes]:
        for chunk in self._resp.iter_stream():
            if chunk:
                yield chunk
