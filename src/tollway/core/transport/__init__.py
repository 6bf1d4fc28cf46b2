"""The ONLY module that does HTTP: pooled clients, streaming, timeouts, error mapping.

One sync backend per process (thread-safe, shared by every deployment) and one async
backend per event loop (async pools are bound to their loop). The sync backend is
httpcore's pool driven directly (``httpcore_backend``): httpx's Client layer above
it costs more per call than all of tollway's own code; when the environment names a
proxy it is ``httpx.Client``, which honours it. The async backend is aiohttp when it is
installed (``aiohttp_backend``): under 256 concurrent calls it serves several
times httpx's async throughput here (see benchmarks/); else, or when a proxy is
configured, httpx's own pool. When httptools is installed (``tollway[gateway]``), the
async backend is tollway's own HTTP/1.1 client on asyncio (``httptools_backend``): it
costs a third of aiohttp's CPU per request.
Sync calls likewise go through tollway's own client on blocking sockets
(``httptools_sync_backend``) when httptools is installed.
``TOLLWAY_SYNC_TRANSPORT=httptools|httpcore|httpx`` and
``TOLLWAY_ASYNC_TRANSPORT=httptools|aiohttp|httpx`` force one.

Network failures become tollway errors (TimeoutError, ConnectionError) so the router can
decide on retries without knowing httpx.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from typing import Any

from tollway.core import errors
from tollway.core.dialects.base import HttpRequest
from tollway.core.providers import Deployment
from tollway.core.transport.base import (
    ByteStream,
    RawResponse,
    encode_json,
    map_error,
    request_body,
    request_headers,
    stream_deadline,
)

__all__ = ["ByteStream", "RawResponse", "Transport", "default_transport", "encode_json"]

def _proxies_configured() -> bool:
    """True when the environment names a proxy: httpx honours those variables (and
    NO_PROXY), so both sync and async calls then go through httpx. ``getproxies()`` also
    reports ``no`` for a lone NO_PROXY, which names no proxy and changes nothing."""
    from urllib.request import getproxies

    return any(scheme != "no" and url for scheme, url in getproxies().items())


def _sync_backend() -> str:
    choice = os.environ.get("TOLLWAY_SYNC_TRANSPORT", "").lower()
    if choice in ("httpx", "httpcore", "httptools"):
        return choice
    if _proxies_configured():
        return "httpx"
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "httpcore"
    return "httptools"


def _async_backend() -> str:
    choice = os.environ.get("TOLLWAY_ASYNC_TRANSPORT", "").lower()
    if choice in ("httpx", "aiohttp", "httptools"):
        return choice
    if _proxies_configured():
        return "httpx"
    try:
        import httptools  # noqa: F401
    except ImportError:
        pass
    else:
        return "httptools"
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "httpx"
    return "aiohttp"


def _unanswered(error: errors.ProviderError) -> bool:
    return isinstance(error, errors.ConnectionError) and error.unanswered


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
                    choice = _sync_backend()
                    if choice == "httptools":
                        from tollway.core.transport.httptools_sync_backend import (
                            HttptoolsSyncBackend,
                        )

                        self._sync = HttptoolsSyncBackend()
                    elif choice == "httpcore":
                        from tollway.core.transport.httpcore_backend import HttpcoreBackend

                        self._sync = HttpcoreBackend()
                    else:
                        from tollway.core.transport.httpx_backend import _HttpxSyncBackend

                        self._sync = _HttpxSyncBackend()
                backend = self._sync
        return backend

    def async_backend(self) -> Any:
        """The async backend of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        backend = self._async_clients.get(loop)
        if backend is None:
            choice = _async_backend()
            if choice == "httptools":
                from tollway.core.transport.httptools_backend import HttptoolsBackend

                backend = HttptoolsBackend()
            elif choice == "aiohttp":
                from tollway.core.transport.aiohttp_backend import AiohttpBackend

                backend = AiohttpBackend()
            else:
                from tollway.core.transport.httpx_backend import _HttpxAsyncBackend

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
        headers = request_headers(dep, req)
        url, body = dep.url(req.path), request_body(req)
        backend = self._sync or self.sync_backend()
        for fresh in (False, True):
            try:
                status, resp_headers, payload = backend.post(dep, url, body, headers)
            except Exception as exc:
                error = map_error(exc, dep)
                if fresh or not _unanswered(error):
                    raise error from None
                continue
            return RawResponse(status, resp_headers, payload)
        raise AssertionError("unreachable")

    async def apost(self, dep: Deployment, req: HttpRequest) -> RawResponse:
        headers = request_headers(dep, req)
        url, body = dep.url(req.path), request_body(req)
        # The body's dicts and lists are done with once encoded: not holding them across
        # the await keeps them out of the GC's oldest generation under high concurrency.
        del req
        backend = self.async_backend()
        try:
            status, resp_headers, payload = await backend.post(dep, url, body, headers)
        except errors.ConnectionError as exc:
            if not exc.unanswered:
                raise
            # Sent on a keep-alive connection the server had just closed: once, fresh.
            status, resp_headers, payload = await backend.post(dep, url, body, headers)
        return RawResponse(status, resp_headers, payload)

    @contextmanager
    def stream(self, dep: Deployment, req: HttpRequest) -> Iterator[ByteStream]:
        headers = request_headers(dep, req)
        url, body = dep.url(req.path), request_body(req)
        backend = self._sync or self.sync_backend()
        deadline = stream_deadline(dep)
        with ExitStack() as stack:
            for fresh in (False, True):
                try:
                    resp = stack.enter_context(backend.stream(dep, url, body, headers))
                    break
                except Exception as exc:
                    error = map_error(exc, dep)
                    if fresh or not _unanswered(error):
                        raise error from None
            yield ByteStream(resp, dep, deadline)

    @asynccontextmanager
    async def astream(self, dep: Deployment, req: HttpRequest) -> AsyncIterator[Any]:
        headers = request_headers(dep, req)
        url, body = dep.url(req.path), request_body(req)
        backend = self.async_backend()
        async with AsyncExitStack() as stack:
            try:
                stream = await stack.enter_async_context(backend.stream(dep, url, body, headers))
            except errors.ConnectionError as exc:
                if not exc.unanswered:
                    raise
                # Sent on a keep-alive connection the server had just closed: once, fresh.
                stream = await stack.enter_async_context(backend.stream(dep, url, body, headers))
            yield stream


async def _start(closer: AsyncIterator[None]) -> None:
    await closer.__anext__()


async def _close_with_loop(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await client.aclose()



_default: Transport | None = None


def default_transport() -> Transport:
    """The process-wide transport (pools are shared by every Model)."""
    global _default
    if _default is None:
        _default = Transport()
        atexit.register(_default.close)
    return _default
