"""What every HTTP backend shares: the raw response, JSON encoding, the request headers,
deadlines and the mapping of network failures to tollway errors.

Backends (``httpcore_backend``, ``httpx_backend``, ``aiohttp_backend``) import this
module; the ``Transport`` facade in ``__init__`` chooses among them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from tollway.core import errors
from tollway.core.dialects.base import HttpRequest
from tollway.core.providers import Deployment


def encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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
            raise map_error(exc, self._dep) from None

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._resp.iter_bytes():
                check_deadline(self._deadline, self._dep)
                yield chunk
        except errors.TollwayError:
            raise
        except Exception as exc:
            raise map_error(exc, self._dep) from None
