"""LocalTransport: the HTTP transport's interface, answered in-process by llama.cpp.

``Model`` calls ``post`` / ``apost`` / ``stream`` / ``astream`` on this exactly as it
does on :class:`tollway.core.transport.Transport`, with the OpenAI body the
``openai_chat`` dialect built, and gets back what an OpenAI server would have sent: a
status, headers and JSON bytes, or SSE ``data:`` chunks. Nothing else in tollway knows the
model is local.

Threads: a non-streamed sync call runs in the caller's thread. Everything else runs in a
worker thread per call, so an event loop never waits on inference, and a stream's
producer never waits on its consumer (chunks go through an unbounded queue): a caller
that interleaves two streams, or a stream and a call, on one model cannot deadlock on
the model lock. Closing a stream early, or cancelling an ``apost``, sets a flag the
generation checks at every token, so the model is free again within one token.

Which model: ``api_base`` ``local://`` (the provider's default) is the default model,
assembled and verified from its weights packages on first use; a filesystem path or a
``file://`` URL names a GGUF file (``api_base: /models/x.gguf`` in tollway.yaml).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlparse

import httpx

from tollway.core import errors
from tollway.core.dialects.base import HttpRequest
from tollway.core.providers import Deployment
from tollway.core.transport import RawResponse
from tollway.local.chat import ChunkWriter, LocalRequestError, Plan, Run, completion_body, plan
from tollway.local.engine import Engine, engine_for
from tollway.local.tools import ParsedCall
from tollway.local.weights import ensure_weights

__all__ = [
    "AsyncLocalByteStream",
    "LocalByteStream",
    "LocalTransport",
    "is_default",
    "local_transport",
    "model_path",
]

_JSON = httpx.Headers({"content-type": "application/json"})
_SSE = httpx.Headers({"content-type": "text/event-stream"})
_DEFAULT_BASES = frozenset({"", "local:", "local://default"})
"""``api_base`` values (trailing slashes stripped) that mean the default model."""
_GGUF_MAGIC = b"GGUF"


class _End:
    """Marks the end of a worker's output."""


_END = _End()
Push = Callable[[object], bool]


def is_default(api_base: str | None) -> bool:
    """Whether ``api_base`` names the default model (``local://``)."""
    return (api_base or "").strip().rstrip("/") in _DEFAULT_BASES


def model_path(api_base: str | None) -> Path:
    """The GGUF file a deployment's ``api_base`` names (module docstring). The default
    model is verified (sha256) before its path is returned; a missing file is a 404
    ``model_not_found``; a file that is not GGUF is a ConfigError."""
    base = (api_base or "").strip()
    if is_default(base):
        return ensure_weights()
    if base.startswith("file://"):
        path = Path(unquote(urlparse(base).path))
    elif base.startswith("local://"):
        path = Path(unquote(base[len("local://") :]))
    else:
        path = Path(base).expanduser()
    if not path.is_file():
        raise LocalRequestError(
            f"no model file at {path}: api_base of a local deployment must be 'local://' "
            "(the default model) or the path of a .gguf file",
            status=404,
            code="model_not_found",
            kind="not_found_error",
        )
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != _GGUF_MAGIC:
        raise errors.ConfigError(
            f"{path} is not a GGUF model file (it does not start with 'GGUF'); llama.cpp "
            "needs a .gguf file"
        )
    return path


class LocalTransport:
    """In-process answers to OpenAI chat-completions requests (module docstring)."""

    def __init__(self) -> None:
        self._default_path: Path | None = None
        self._default_lock = threading.Lock()

    # ------------------------------------------------------------------ shared steps

    def _engine(self, dep: Deployment) -> Engine:
        if is_default(dep.api_base):
            # Verified once per process; the engine keeps the file mapped afterwards.
            with self._default_lock:
                if self._default_path is None:
                    self._default_path = model_path(dep.api_base)
            return engine_for(self._default_path)
        return engine_for(model_path(dep.api_base))

    def _prepare(self, dep: Deployment, req: HttpRequest) -> tuple[Engine, Plan]:
        if req.path.split("?", 1)[0].rstrip("/") != "/chat/completions":
            raise LocalRequestError(
                f"the local provider serves /chat/completions and /embeddings, not {req.path}",
                status=404,
                kind="not_found_error",
            )
        engine = self._engine(dep)
        return engine, plan(req.json, engine, dep.model)

    def _embed(self, dep: Deployment, req: HttpRequest) -> RawResponse:
        """An ``/embeddings`` request, answered by the model in embedding mode."""
        from tollway.local.embeddings import embedding_body, embedding_engine_for

        try:
            engine = embedding_engine_for(model_path(dep.api_base))
            return RawResponse(200, _JSON, embedding_body(engine, req.json, dep.model))
        except LocalRequestError as exc:
            return RawResponse(exc.status, _JSON, exc.body())
        except Exception as exc:
            raise _provider_error(exc, dep) from exc

    def _complete(self, dep: Deployment, req: HttpRequest, cancel: threading.Event | None) -> RawResponse:
        if req.path.split("?", 1)[0].rstrip("/") == "/embeddings":
            return self._embed(dep, req)
        try:
            engine, p = self._prepare(dep, req)
        except LocalRequestError as exc:
            return RawResponse(exc.status, _JSON, exc.body())
        except Exception as exc:
            raise _provider_error(exc, dep) from exc
        run = Run(p, engine, cancel=cancel, deadline=_deadline(dep))
        content: list[str] = []
        calls: list[ParsedCall] = []
        try:
            with closing(run.events()) as events:
                for event in events:
                    if isinstance(event, str):
                        content.append(event)
                    else:
                        calls.extend(event)
        except Exception as exc:
            raise _provider_error(exc, dep) from exc
        body = completion_body(run, "".join(content), calls)
        return RawResponse(200, _JSON, json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def _produce(self, dep: Deployment, req: HttpRequest, cancel: threading.Event, push: Push) -> None:
        """The worker of a stream: pushes ``(status, error_body)``, then SSE chunks, then
        the end marker; or an exception. Stops when ``cancel`` is set or ``push`` fails
        (the consumer is gone)."""
        try:
            engine, p = self._prepare(dep, req)
        except LocalRequestError as exc:
            if push((exc.status, exc.body())):
                push(_END)
            return
        except BaseException as exc:
            push(_provider_error(exc, dep) if isinstance(exc, Exception) else exc)
            return
        if not push((200, b"")):
            return
        run = Run(p, engine, cancel=cancel, deadline=_deadline(dep))
        writer = ChunkWriter(run)
        try:
            with closing(run.events()) as events:  # closed on every exit: frees the model
                if not push(writer.start()):
                    return
                for event in events:
                    chunk = writer.content(event) if isinstance(event, str) else writer.tool_calls(event)
                    if cancel.is_set() or not push(chunk):
                        return
            if cancel.is_set():
                return
            for chunk in (writer.finish(), writer.usage(), writer.done()):
                if not push(chunk):
                    return
            push(_END)
        except BaseException as exc:
            push(_provider_error(exc, dep) if isinstance(exc, Exception) else exc)

    # ------------------------------------------------------------------ the Transport API

    def post(self, dep: Deployment, req: HttpRequest) -> RawResponse:
        return self._complete(dep, req, None)

    async def apost(self, dep: Deployment, req: HttpRequest) -> RawResponse:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RawResponse] = loop.create_future()
        cancel = threading.Event()

        def work() -> None:
            try:
                outcome: tuple[bool, Any] = (True, self._complete(dep, req, cancel))
            except BaseException as exc:
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

        threading.Thread(target=work, name="tollway-local", daemon=True).start()
        try:
            return await future
        finally:
            cancel.set()  # after a cancellation: stop generating for nobody

    @contextmanager
    def stream(self, dep: Deployment, req: HttpRequest) -> Iterator[LocalByteStream]:
        items: queue.SimpleQueue[object] = queue.SimpleQueue()
        cancel = threading.Event()

        def push(item: object) -> bool:
            if cancel.is_set():
                return False
            items.put(item)
            return True

        threading.Thread(
            target=self._produce, args=(dep, req, cancel, push), name="tollway-local", daemon=True
        ).start()
        try:
            head = items.get()
            if isinstance(head, BaseException):
                raise head
            status, error_body = cast(tuple[int, bytes], head)
            yield LocalByteStream(status, error_body, items.get)
        finally:
            cancel.set()

    @asynccontextmanager
    async def astream(self, dep: Deployment, req: HttpRequest) -> AsyncIterator[AsyncLocalByteStream]:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def push(item: object) -> bool:
            if cancel.is_set():
                return False
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the loop is closed
                cancel.set()
                return False
            return True

        threading.Thread(
            target=self._produce, args=(dep, req, cancel, push), name="tollway-local", daemon=True
        ).start()
        try:
            head = await items.get()
            if isinstance(head, BaseException):
                raise head
            status, error_body = cast(tuple[int, bytes], head)
            yield AsyncLocalByteStream(status, error_body, items.get)
        finally:
            cancel.set()

    def close(self) -> None:
        """Nothing to close: loaded models live for the process (like the HTTP pool)."""

    async def aclose(self) -> None:
        """Nothing to close (see :meth:`close`)."""


def _settle(future: asyncio.Future[RawResponse], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _deadline(dep: Deployment) -> float | None:
    total = dep.timeouts.total
    return None if total is None else time.monotonic() + total


def _provider_error(exc: Exception, dep: Deployment) -> Exception:
    """A tollway error passes (with where it happened); anything else from llama.cpp is
    the "server" failing."""
    provider, model, deployment = dep.provider.name, dep.model, dep.name
    if isinstance(exc, errors.ProviderError):
        return exc.with_context(provider=provider, model=model, deployment=deployment)
    if isinstance(exc, errors.TollwayError):
        return exc
    return errors.ServerError(
        f"the local model failed: {type(exc).__name__}: {exc}",
        provider=provider, model=model, deployment=deployment,
    )


class LocalByteStream:
    """What ``stream`` yields: ``status``, ``headers``, ``read()`` and SSE byte chunks."""

    __slots__ = ("_error_body", "_next", "headers", "status")

    def __init__(self, status: int, error_body: bytes, next_item: Callable[[], object]) -> None:
        self.status = status
        self.headers = _SSE if status < 400 else _JSON
        self._error_body = error_body
        self._next = next_item

    def read(self) -> bytes:
        if self.status >= 400:
            return self._error_body
        return b"".join(self)

    def __iter__(self) -> Iterator[bytes]:
        if self.status >= 400:
            return
        while True:
            item = self._next()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]


class AsyncLocalByteStream:
    """The async twin of :class:`LocalByteStream` (``read`` is a coroutine)."""

    __slots__ = ("_error_body", "_next", "headers", "status")

    def __init__(self, status: int, error_body: bytes, next_item: Callable[[], Any]) -> None:
        self.status = status
        self.headers = _SSE if status < 400 else _JSON
        self._error_body = error_body
        self._next = next_item

    async def read(self) -> bytes:
        if self.status >= 400:
            return self._error_body
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.status >= 400:
            return
        while True:
            item = await self._next()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


_SINGLETON: LocalTransport | None = None
_SINGLETON_LOCK = threading.Lock()


def local_transport() -> LocalTransport:
    """The process-wide LocalTransport (models load once per process)."""
    global _SINGLETON
    if _SINGLETON is None:
        with _SINGLETON_LOCK:
            if _SINGLETON is None:
                _SINGLETON = LocalTransport()
    return _SINGLETON
