"""The aiohttp async backend of the transport (part of ``core/transport.py``'s job).

Used for async calls when aiohttp is installed: under 256 concurrent calls on this
2-core machine raw aiohttp serves several times the throughput of httpx's async pool
(and of httpx-aiohttp, which still pays for httpx's request/response models), so
tollway drives aiohttp directly. Errors are mapped to tollway's here, timeouts too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import aiohttp

from tollway.core import errors
from tollway.core.logs import mask_library_logs
from tollway.core.providers import Deployment, Timeouts
from tollway.core.transport.base import aread_within, past, stream_deadline, total_timeout

mask_library_logs("aiohttp")


@cache
def _call_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    """A non-streamed call: one deadline for the whole exchange (``read``, capped by
    ``total``). A per-read timeout would re-arm a timer on every packet."""
    return aiohttp.ClientTimeout(total=t.call_read, sock_connect=t.connect)


@cache
def _stream_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    """A stream: ``read`` bounds the idle time between chunks; ``total`` bounds the
    whole stream (the open and every chunk wait, by the event loop's timeout)."""
    return aiohttp.ClientTimeout(sock_connect=t.connect, sock_read=t.read)


def _where(dep: Deployment) -> dict[str, Any]:
    return {"provider": dep.provider.name, "model": dep.model, "deployment": dep.name}


def map_aiohttp_error(
    exc: BaseException, dep: Deployment, *, answered: bool = True
) -> errors.ProviderError:
    """``answered``: whether any of the response had arrived (a disconnect before it is
    ``unanswered``: the transport retries it once on a fresh connection)."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return errors.TimeoutError("no answer within the timeout", **_where(dep))
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        unanswered = not answered and isinstance(exc, aiohttp.ServerDisconnectedError)
        return errors.ConnectionError(
            f"the connection was closed mid-response: {exc}", unanswered=unanswered,
            **_where(dep),
        )
    if isinstance(exc, aiohttp.ClientError | OSError):
        return errors.ConnectionError(
            f"could not reach {dep.api_base}: {type(exc).__name__}: {exc}", **_where(dep)
        )
    raise exc


class AiohttpBackend:
    """One aiohttp session (connection pool) per event loop."""

    def __init__(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=30),
            skip_auto_headers=("User-Agent",),
        )

    async def post(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        answered = False
        deadline = stream_deadline(dep)
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=_call_timeout(dep.timeouts)
            ) as resp:
                answered = True
                return resp.status, resp.headers, await resp.read()
        except Exception as exc:
            if past(deadline):  # the session's own timeout is ``read`` capped by ``total``
                raise total_timeout(dep) from None
            raise map_aiohttp_error(exc, dep, answered=answered) from None

    @asynccontextmanager
    async def stream(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[AiohttpStream]:
        deadline = stream_deadline(dep)
        try:
            async with asyncio.timeout_at(deadline):
                resp = await self._session.post(
                    url, data=body, headers=headers, timeout=_stream_timeout(dep.timeouts)
                )
        except Exception as exc:
            if past(deadline):
                raise total_timeout(dep) from None
            raise map_aiohttp_error(exc, dep, answered=False) from None
        try:
            yield AiohttpStream(resp, dep, deadline)
        finally:
            resp.release()

    async def aclose(self) -> None:
        await self._session.close()


class AiohttpStream:
    """An open streamed response: ``status``, ``headers``, ``read()``, async bytes."""

    __slots__ = ("_deadline", "_dep", "_resp")

    def __init__(self, resp: aiohttp.ClientResponse, dep: Deployment,
                 deadline: float | None) -> None:
        self._resp = resp
        self._dep = dep
        self._deadline = deadline

    @property
    def status(self) -> int:
        return self._resp.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    def __aiter__(self) -> AsyncIterator[bytes]:
        return aread_within(self._resp.content.iter_any(), self._deadline, self._dep,
                            map_aiohttp_error)
