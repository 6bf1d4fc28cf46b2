"""One decision path, two drivers.

The logic of a call (reserve, send, parse, price, settle, record; a stream's open,
prime, complete and fail) is written ONCE, as generators that ``yield`` the I/O they
need as small effect objects and receive its result. :func:`drive` performs each effect
synchronously, :func:`adrive` awaits it: the sync and async paths cannot drift, because
there is only one path (httpcore generates its sync twin from the async code for the
same reason; a generator does it at run time for about a microsecond per call).

An effect that raises is thrown back into the steps at the ``yield``, so ``try`` /
``except`` in the steps see I/O errors exactly as straight-line code would.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tollway.core.logs import logger

if TYPE_CHECKING:
    from tollway.core.cost.ledger import Ledger
    from tollway.core.cost.records import CallRecord
    from tollway.core.dialects.base import HttpRequest
    from tollway.core.hooks import CallContext, Guard, Hold
    from tollway.core.providers import Deployment
    from tollway.core.types import Usage

T = TypeVar("T")
log = logger("tollway")


class Effect(Protocol):
    """One piece of I/O the steps ask for: ``run`` performs it, ``arun`` awaits it."""

    def run(self) -> Any: ...

    async def arun(self) -> Any: ...


Steps = Generator[Effect, Any, T]


def drive(steps: Steps[T]) -> T:
    """Run ``steps`` to their result, performing every effect synchronously."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            value = effect.run()
        except BaseException as exc:
            error = exc
            value = None


async def adrive(steps: Steps[T]) -> T:
    """Run ``steps`` to their result, awaiting every effect."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            value = await effect.arun()
        except BaseException as exc:
            error = exc
            value = None


# --------------------------------------------------------------------------- guards


class Reserve:
    __slots__ = ("ctx", "dep", "guard")

    def __init__(self, guard: Guard, ctx: CallContext, dep: Deployment) -> None:
        self.guard, self.ctx, self.dep = guard, ctx, dep

    def run(self) -> Hold:
        return self.guard.reserve(self.ctx, self.dep)

    async def arun(self) -> Hold:
        return await self.guard.areserve(self.ctx, self.dep)


class Settle:
    __slots__ = ("cost_nanos", "hold", "usage")

    def __init__(self, hold: Hold, usage: Usage, cost_nanos: int | None) -> None:
        self.hold, self.usage, self.cost_nanos = hold, usage, cost_nanos

    def run(self) -> None:
        self.hold.settle(self.usage, self.cost_nanos)

    async def arun(self) -> None:
        await self.hold.asettle(self.usage, self.cost_nanos)


class Release:
    __slots__ = ("hold",)

    def __init__(self, hold: Hold) -> None:
        self.hold = hold

    def run(self) -> None:
        self.hold.release()

    async def arun(self) -> None:
        await self.hold.arelease()


# --------------------------------------------------------------------------- ledger


class Write:
    """Write a ledger row. A failing ledger is logged, never raised: a lost ledger must
    not turn a paid answer into an error."""

    __slots__ = ("ledger", "record")

    def __init__(self, ledger: Ledger, record: CallRecord) -> None:
        self.ledger, self.record = ledger, record

    def run(self) -> None:
        try:
            self.ledger.record(self.record)
        except Exception:
            log.exception("tollway: could not write the ledger row for trace %s",
                          self.record.trace_id)

    async def arun(self) -> None:
        try:
            await self.ledger.arecord(self.record)
        except Exception:
            log.exception("tollway: could not write the ledger row for trace %s",
                          self.record.trace_id)


# --------------------------------------------------------------------------- transport


class Post:
    """One non-streamed request; returns the transport's RawResponse."""

    __slots__ = ("dep", "http", "transport")

    def __init__(self, transport: Any, dep: Deployment, http: HttpRequest) -> None:
        self.transport, self.dep = transport, dep
        self.http: HttpRequest | None = http

    def run(self) -> Any:
        return self.transport.post(self.dep, self.http)

    async def arun(self) -> Any:
        http, self.http = self.http, None  # not held across the await (GC under load)
        return await self.transport.apost(self.dep, http)


class StreamHandle:
    """The open HTTP stream of one attempt: its context manager, body and chunks."""

    __slots__ = ("body", "chunks", "cm")

    def __init__(self) -> None:
        self.cm: Any = None
        self.body: Any = None
        self.chunks: Any = None


class OpenStream:
    """Open a streamed request; fills the handle and returns the body (status, headers)."""

    __slots__ = ("dep", "handle", "http", "transport")

    def __init__(self, handle: StreamHandle, transport: Any, dep: Deployment,
                 http: HttpRequest) -> None:
        self.handle, self.transport, self.dep, self.http = handle, transport, dep, http

    def run(self) -> Any:
        handle = self.handle
        handle.cm = self.transport.stream(self.dep, self.http)
        handle.body = body = handle.cm.__enter__()
        handle.chunks = iter(body)
        return body

    async def arun(self) -> Any:
        handle = self.handle
        handle.cm = self.transport.astream(self.dep, self.http)
        handle.body = body = await handle.cm.__aenter__()
        handle.chunks = body.__aiter__()
        return body


class ReadBody:
    """The whole body of an opened stream (an error answer)."""

    __slots__ = ("body",)

    def __init__(self, body: Any) -> None:
        self.body = body

    def run(self) -> bytes:
        return self.body.read()

    async def arun(self) -> bytes:
        return await self.body.read()


class NextChunk:
    """The next chunk of an opened stream, or None at its end."""

    __slots__ = ("handle",)

    def __init__(self, handle: StreamHandle) -> None:
        self.handle = handle

    def run(self) -> bytes | None:
        return next(self.handle.chunks, None)

    async def arun(self) -> bytes | None:
        try:
            return await self.handle.chunks.__anext__()
        except StopAsyncIteration:
            return None


class CloseStream:
    """Close an opened stream (idempotent)."""

    __slots__ = ("handle",)

    def __init__(self, handle: StreamHandle) -> None:
        self.handle = handle

    def run(self) -> None:
        cm, self.handle.cm = self.handle.cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    async def arun(self) -> None:
        cm, self.handle.cm = self.handle.cm, None
        if cm is not None:
            await cm.__aexit__(None, None, None)
