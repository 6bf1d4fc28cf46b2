"""What every HTTP backend shares: the raw response, JSON encoding, the request headers,
deadlines and the mapping of network failures to tollway errors.

Backends (``httpcore_backend``, ``httpx_backend``, ``aiohttp_backend``) import this
module; the ``Transport`` facade in ``__init__`` chooses among them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from tollway.core import errors, json_codec
from tollway.core.dialects.base import HttpRequest
from tollway.core.logs import mask_library_logs
from tollway.core.providers import Deployment
from tollway.core.transport.watchdog import watchdog

mask_library_logs("httpx", "httpcore")  # their DEBUG records carry response headers


encode_json = json_codec.dumps
"""A request body as compact UTF-8 JSON (``core/json_codec``)."""


def request_body(req: HttpRequest) -> bytes:
    """The bytes to send: the dialect's own ``content`` (multipart) or its JSON."""
    content = req.content
    return encode_json(req.json) if content is None else content


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


def map_error(exc: Exception, dep: Deployment) -> errors.ProviderError:
    if isinstance(exc, errors.ProviderError):  # a backend that maps its own failures
        return exc
    where: dict[str, Any] = {"provider": dep.provider.name, "model": dep.model, "deployment": dep.name}
    if isinstance(exc, httpx.TimeoutException | httpcore.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", " timeout").strip().lower()
        return errors.TimeoutError(f"no answer within the timeout ({kind})", **where)
    if isinstance(exc, httpx.RemoteProtocolError | httpcore.RemoteProtocolError):
        unanswered = "without sending a response" in str(exc)
        return errors.ConnectionError(
            f"the connection was closed mid-response: {exc}", unanswered=unanswered, **where
        )
    if isinstance(exc, httpx.HTTPError | httpcore.NetworkError | httpcore.ProtocolError
                  | httpcore.UnsupportedProtocol | OSError):
        return errors.ConnectionError(
            f"could not reach {dep.api_base}: {type(exc).__name__}: {exc}", **where
        )
    raise exc


def request_headers(dep: Deployment, req: HttpRequest) -> Mapping[str, str]:
    """The deployment's headers, with the request's own (e.g. a dialect's beta flag) over them."""
    headers = dep.request_headers()
    return {**headers, **req.headers} if req.headers else headers


def stream_deadline(dep: Deployment) -> float | None:
    """When a call started now must have ended (``timeouts.total``), or None."""
    total = dep.timeouts.total
    return None if total is None else time.monotonic() + total


def total_timeout(dep: Deployment) -> errors.TimeoutError:
    return errors.TimeoutError(
        f"no complete answer within the total timeout of {dep.timeouts.total:g}s",
        provider=dep.provider.name, model=dep.model, deployment=dep.name,
    )


def check_deadline(deadline: float | None, dep: Deployment) -> None:
    """Raise TimeoutError once a call has run past its total timeout (checked per
    chunk; a read that stalls is cut by the watchdog or the event loop's timeout)."""
    if deadline is not None and time.monotonic() > deadline:
        raise total_timeout(dep)


async def next_within(chunks: AsyncIterator[bytes], deadline: float | None) -> bytes:
    """The next chunk of an async body, waiting no later than ``deadline`` (the builtin
    TimeoutError when it passes; StopAsyncIteration at the end)."""
    if deadline is None:
        return await chunks.__anext__()
    async with asyncio.timeout_at(deadline):  # the loop's clock is time.monotonic
        return await chunks.__anext__()


def past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


async def aread_within(
    chunks: AsyncIterator[bytes], deadline: float | None, dep: Deployment,
    mapping: Callable[[Exception, Deployment], errors.ProviderError],
) -> AsyncIterator[bytes]:
    """The chunks of an async body, ending in TimeoutError at ``deadline`` (each wait
    for a chunk is bounded by it); the backend's ``mapping`` names other failures."""
    try:
        while True:
            try:
                chunk = await next_within(chunks, deadline)
            except StopAsyncIteration:
                return
            check_deadline(deadline, dep)
            yield chunk
    except errors.TollwayError:
        raise
    except Exception as exc:
        if past(deadline):
            raise total_timeout(dep) from None
        raise mapping(exc, dep) from None


def body_socket(extensions: Mapping[str, Any]) -> Any:
    """The socket a sync response's body is read from (httpcore / httpx extensions)."""
    stream = extensions.get("network_stream")
    return None if stream is None else stream.get_extra_info("socket")


def read_within(
    chunks: Iterator[bytes], deadline: float | None, sock: Any, dep: Deployment
) -> Iterator[bytes]:
    """The chunks of a sync body, ending in TimeoutError at ``deadline``: checked per
    chunk, and a read that stalls is cut by the watchdog shutting ``sock`` down."""
    watch = None if deadline is None else watchdog().watch(deadline, sock)
    try:
        for chunk in chunks:
            check_deadline(deadline, dep)
            yield chunk
    except Exception as exc:
        if watch is not None and watch.fired:  # the watchdog cut the socket: that is why
            raise total_timeout(dep) from None
        if isinstance(exc, errors.TollwayError):
            raise
        raise map_error(exc, dep) from None
    finally:
        if watch is not None:
            watch.cancel()


class ByteStream:
    """An open sync streamed response (either backend's): ``status``, ``headers``,
    ``read()``, bytes; errors mapped, the total timeout enforced (``deadline``: set
    when the request was sent)."""

    __slots__ = ("_deadline", "_dep", "_resp")

    def __init__(self, resp: Any, dep: Deployment, deadline: float | None) -> None:
        self._resp = resp
        self._dep = dep
        self._deadline = deadline

    @property
    def status(self) -> int:
        return int(self._resp.status)

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    def read(self) -> bytes:
        return b"".join(self)

    def __iter__(self) -> Iterator[bytes]:
        return read_within(self._resp.iter_bytes(), self._deadline, self._resp.socket, self._dep)
