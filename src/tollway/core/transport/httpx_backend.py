"""httpx backends: ``httpx.Client`` for sync calls when a proxy is configured (httpx
routes by the proxy variables), and httpx's async pool when aiohttp is not installed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from typing import Any

import httpx

from tollway.core.providers import Deployment, Timeouts
from tollway.core.transport.base import (
    aread_within,
    body_socket,
    map_error,
    past,
    read_within,
    stream_deadline,
    total_timeout,
)

_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=512, keepalive_expiry=30)
_ASYNC_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=20, keepalive_expiry=30)
"""httpcore's async pool collapses (hundreds of times slower) once hundreds of idle
keep-alive connections sit in it under 256 concurrent calls; 20 (its default) keeps
it healthy."""


@cache
def _timeout(t: Timeouts) -> httpx.Timeout:
    read = t.call_read
    return httpx.Timeout(connect=t.connect, read=read, write=read, pool=t.connect)


class _HttpxSyncBackend:
    """``httpx.Client``: the sync backend when the environment names a proxy."""

    def __init__(self) -> None:
        self._client = httpx.Client(limits=_LIMITS, timeout=None)

    def post(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        if dep.timeouts.total is None:
            resp = self._client.post(
                url, content=body, headers=headers, timeout=_timeout(dep.timeouts)
            )
            return resp.status_code, resp.headers, resp.content
        deadline = stream_deadline(dep)  # a dripping body never trips ``read``: see httpcore
        with self._client.stream(
            "POST", url, content=body, headers=headers, timeout=_timeout(dep.timeouts)
        ) as streamed:
            chunks = read_within(
                streamed.iter_bytes(), deadline, body_socket(streamed.extensions), dep
            )
            return streamed.status_code, streamed.headers, b"".join(chunks)

    @contextmanager
    def stream(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> Iterator[_HttpxSyncStream]:
        client = self._client
        request = client.build_request(
            "POST", url, content=body, headers=headers, timeout=_timeout(dep.timeouts)
        )
        resp = client.send(request, stream=True)
        try:
            yield _HttpxSyncStream(resp)
        finally:
            resp.close()

    def close(self) -> None:
        self._client.close()


class _HttpxSyncStream:
    """An httpx streamed response seen through the sync backends' one interface."""

    __slots__ = ("_resp",)

    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp

    @property
    def status(self) -> int:
        return self._resp.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._resp.headers

    @property
    def socket(self) -> Any:
        return body_socket(self._resp.extensions)

    def iter_bytes(self) -> Iterator[bytes]:
        return self._resp.iter_bytes()


class _HttpxAsyncBackend:
    """httpx's own async pool (used when aiohttp is not installed)."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(limits=_ASYNC_LIMITS, timeout=None)

    async def post(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        total = dep.timeouts.total
        try:
            async with asyncio.timeout(total):
                resp = await self._client.post(
                    url, content=body, headers=headers, timeout=_timeout(dep.timeouts)
                )
        except TimeoutError:
            raise total_timeout(dep) from None
        except Exception as exc:
            raise map_error(exc, dep) from None
        return resp.status_code, resp.headers, resp.content

    @asynccontextmanager
    async def stream(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[AsyncByteStream]:
        client = self._client
        request = client.build_request(
            "POST", url, content=body, headers=headers, timeout=_timeout(dep.timeouts)
        )
        deadline = stream_deadline(dep)
        try:
            async with asyncio.timeout_at(deadline):
                resp = await client.send(request, stream=True)
        except Exception as exc:
            if past(deadline):
                raise total_timeout(dep) from None
            raise map_error(exc, dep) from None
        try:
            yield AsyncByteStream(resp, dep, deadline)
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


class _HttpxStream:
    """An open httpx async streaming response: ``status``, ``headers``; errors mapped."""

    __slots__ = ("_deadline", "_dep", "_resp")

    def __init__(self, resp: httpx.Response, dep: Deployment, deadline: float | None) -> None:
        self._resp = resp
        self._dep = dep
        self._deadline = deadline

    @property
    def status(self) -> int:
        return self._resp.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._resp.headers


class AsyncByteStream(_HttpxStream):
    __slots__ = ()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    def __aiter__(self) -> AsyncIterator[bytes]:
        return aread_within(self._resp.aiter_bytes(), self._deadline, self._dep, map_error)
