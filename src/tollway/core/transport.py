"""The ONLY module that does HTTP: pooled clients, streaming, timeouts, error mapping.

One sync backend per process (thread-safe, shared by every deployment) and one async
backend per event loop (async pools are bound to their loop). The sync backend is
httpcore's pool driven directly (``_transport_httpcore.py``): httpx's Client layer above
it costs more per call than all of tollway's own code; when the environment names a
proxy it is ``httpx.Client``, which honours it. The async backend is aiohttp when it is
installed (``_transport_aiohttp.py``): under 256 concurrent calls it serves several
times httpx's async throughput here (see benchmarks/); else, or when a proxy is
configured, httpx's own pool.
``TOLLWAY_SYNC_TRANSPORT=httpx|httpcore`` and ``TOLLWAY_ASYNC_TRANSPORT=httpx|aiohttp``
force one.

Network failures become tollway errors (TimeoutError, ConnectionError) so the router can
decide on retries without knowing httpx.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpcore
import httpx

from tollway.core import errors
from tollway.core.dialects.base import HttpRequest
from tollway.core.providers import Deployment, Timeouts

_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=512, keepalive_expiry=30)
_ASYNC_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=20, keepalive_expiry=30)
"""httpcore's async pool collapses (hundreds of times slower) once hundreds of idle
keep-alive connections sit in it under 256 concurrent calls; 20 (its default) keeps
it healthy."""


def encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@cache
def _timeout(t: Timeouts) -> httpx.Timeout:
    read = t.call_read
    return httpx.Timeout(connect=t.connect, read=read, write=read, pool=t.connect)


def _map_error(exc: Exception, dep: Deployment) -> errors.ProviderError:
    where: dict[str, Any] = {"provider": dep.provider.name, "model": dep.model, "deployment": dep.name}
    if isinstance(exc, httpx.TimeoutException | httpcore.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", " timeout").strip().lower()
        return errors.TimeoutError(f"no answer within the timeout ({kind})", **where)
    if isinstance(exc, httpx.RemoteProtocolError | httpcore.RemoteProtocolError):
        return errors.ConnectionError(f"the connection was closed mid-response: {exc}", **where)
    if isinstance(exc, httpx.HTTPError | httpcore.NetworkError | httpcore.ProtocolError
                  | httpcore.UnsupportedProtocol | OSError):
        return errors.ConnectionError(
            f"could not reach {dep.api_base}: {type(exc).__name__}: {exc}", **where
        )
    raise exc


def _proxies_configured() -> bool:
    """True when the environment names a proxy: httpx honours those variables (and
    NO_PROXY), so both sync and async calls then go through httpx."""
    from urllib.request import getproxies

    return bool(getproxies())


def _headers(dep: Deployment, req: HttpRequest) -> Mapping[str, str]:
    """The deployment's headers, with the request's own (e.g. a dialect's beta flag) over them."""
    headers = dep.request_headers()
    return {**headers, **req.headers} if req.headers else headers


def _sync_backend() -> str:
    choice = os.environ.get("TOLLWAY_SYNC_TRANSPORT", "").lower()
    if choice in ("httpx", "httpcore"):
        return choice
    return "httpx" if _proxies_configured() else "httpcore"


def _async_backend() -> str:
    choice = os.environ.get("TOLLWAY_ASYNC_TRANSPORT", "").lower()
    if choice in ("httpx", "aiohttp"):
        return choice
    if _proxies_configured():
        return "httpx"
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "httpx"
    return "aiohttp"


class Transport:
    """Pooled HTTP for every deployment; safe to share across threads and event loops."""

    def __init__(self) -> None:
        self._sync: Any = None
        self._lock = threading.Lock()
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------------ clients

    def sync_backend(self) -> Any:
        """The process's sync backend (created on first use)."""
        backend = self._sync
        if backend is None:
            with self._lock:
                if self._sync is None:
                    if _sync_backend() == "httpcore":
                        from tollway.core._transport_httpcore import HttpcoreBackend

                        self._sync = HttpcoreBackend()
                    else:
                        self._sync = _HttpxSyncBackend()
                backend = self._sync
        return backend

    def async_backend(self) -> Any:
        """The async backend of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        backend = self._async_clients.get(loop)
        if backend is None:
            if _async_backend() == "aiohttp":
                from tollway.core._transport_aiohttp import AiohttpBackend

                backend = AiohttpBackend()
            else:
                backend = _HttpxAsyncBackend()
            self._async_clients[loop] = backend
            # Close the pool when its loop shuts down: asyncio.run / Runner finalize
            # pending async generators before closing the loop, so this one's
            # ``finally`` runs in the loop and closes the pool cleanly.
            closer = _close_with_loop(backend)
            self._closers[loop] = (closer, loop.create_task(_start(closer)))
        return backend

    def close(self) -> None:
        with self._lock:
            backend, self._sync = self._sync, None
        if backend is not None:
            backend.close()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._async_clients.pop(loop, None)
        self._closers.pop(loop, None)
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------------ calls

    def post(self, dep: Deployment, req: HttpRequest) -> RawResponse:
        headers = _headers(dep, req)
        try:
            status, resp_headers, body = (self._sync or self.sync_backend()).post(
                dep, dep.url(req.path), encode_json(req.json), headers
            )
        except Exception as exc:
            raise _map_error(exc, dep) from exc
        return RawResponse(status, resp_headers, body)

    async def apost(self, dep: Deployment, req: HttpRequest) -> RawResponse:
        headers = _headers(dep, req)
        url, body = dep.url(req.path), encode_json(req.json)
        # The body's dicts and lists are done with once encoded: not holding them across
        # the await keeps them out of the GC's oldest generation under high concurrency.
        del req
        status, resp_headers, payload = await self.async_backend().post(dep, url, body, headers)
        return RawResponse(status, resp_headers, payload)

    @contextmanager
    def stream(self, dep: Deployment, req: HttpRequest) -> Iterator[ByteStream]:
        headers = _headers(dep, req)
        backend = self._sync or self.sync_backend()
        with ExitStack() as stack:
            try:
                resp = stack.enter_context(
                    backend.stream(dep, dep.url(req.path), encode_json(req.json), headers)
                )
            except Exception as exc:
                raise _map_error(exc, dep) from exc
            yield ByteStream(resp, dep)

    @asynccontextmanager
    async def astream(self, dep: Deployment, req: HttpRequest) -> AsyncIterator[Any]:
        headers = _headers(dep, req)
        async with self.async_backend().stream(
            dep, dep.url(req.path), encode_json(req.json), headers
        ) as stream:
            yield stream


class _HttpxSyncBackend:
    """``httpx.Client``: the sync backend when the environment names a proxy."""

    def __init__(self) -> None:
        self._client = httpx.Client(limits=_LIMITS, timeout=None)

    def post(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        resp = self._client.post(url, content=body, headers=headers, timeout=_timeout(dep.timeouts))
        return resp.status_code, resp.headers, resp.content

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

    def read(self) -> bytes:
        return self._resp.read()

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
        except TimeoutError as exc:
            raise errors.TimeoutError(
                f"no complete answer within the total timeout of {total}s",
                provider=dep.provider.name, model=dep.model, deployment=dep.name,
            ) from exc
        except Exception as exc:
            raise _map_error(exc, dep) from exc
        return resp.status_code, resp.headers, resp.content

    @asynccontextmanager
    async def stream(
        self, dep: Deployment, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[AsyncByteStream]:
        client = self._client
        request = client.build_request(
            "POST", url, content=body, headers=headers, timeout=_timeout(dep.timeouts)
        )
        try:
            resp = await client.send(request, stream=True)
        except Exception as exc:
            raise _map_error(exc, dep) from exc
        try:
            yield AsyncByteStream(resp, dep)
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


async def _start(closer: AsyncIterator[None]) -> None:
    await closer.__anext__()


async def _close_with_loop(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await client.aclose()


def stream_deadline(dep: Deployment) -> float | None:
    """When a stream opened now must have ended (``timeouts.total``), or None."""
    total = dep.timeouts.total
    return None if total is None else time.monotonic() + total


def check_deadline(deadline: float | None, dep: Deployment) -> None:
    """Raise TimeoutError once a stream has run past its total timeout (checked per
    chunk; ``read`` already bounds the idle time between chunks)."""
    if deadline is not None and time.monotonic() > deadline:
        raise errors.TimeoutError(
            f"stream exceeded the total timeout of {dep.timeouts.total}s",
            provider=dep.provider.name, model=dep.model, deployment=dep.name,
        )


class _HttpxStream:
    """An open httpx async streaming response: ``status``, ``headers``; errors mapped."""

    __slots__ = ("_deadline", "_dep", "_resp")

    def __init__(self, resp: httpx.Response, dep: Deployment) -> None:
        self._resp = resp
        self._dep = dep
        self._deadline = stream_deadline(dep)

    @property
    def status(self) -> int:
        return self._resp.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._resp.headers


class ByteStream:
    """An open sync streamed response (either backend's): ``status``, ``headers``,
    ``read()``, bytes; errors mapped, the total timeout checked per chunk."""

    __slots__ = ("_deadline", "_dep", "_resp")

    def __init__(self, resp: Any, dep: Deployment) -> None:
        self._resp = resp
        self._dep = dep
        self._deadline = stream_deadline(dep)

    @property
    def status(self) -> int:
        return int(self._resp.status)

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    def read(self) -> bytes:
        try:
            return self._resp.read()
        except Exception as exc:
            raise _map_error(exc, self._dep) from exc

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._resp.iter_bytes():
                check_deadline(self._deadline, self._dep)
                yield chunk
        except errors.TollwayError:
            raise
        except Exception as exc:
            raise _map_error(exc, self._dep) from exc


class AsyncByteStream(_HttpxStream):
    __slots__ = ()

    async def read(self) -> bytes:
        try:
            return await self._resp.aread()
        except Exception as exc:
            raise _map_error(exc, self._dep) from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_bytes():
                check_deadline(self._deadline, self._dep)
                yield chunk
        except errors.TollwayError:
            raise
        except Exception as exc:
            raise _map_error(exc, self._dep) from exc


_default: Transport | None = None


def default_transport() -> Transport:
    """The process-wide transport (pools are shared by every Model)."""
    global _default
    if _default is None:
        _default = Transport()
        atexit.register(_default.close)
    return _default
