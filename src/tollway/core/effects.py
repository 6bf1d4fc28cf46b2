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

import warnings
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tollway.core.errors import BudgetSettleWarning, scrub
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


# --------------------------------------------------------------------------- the money record


class SettleAndWrite:
    """The end of an attempt: its ledger row, and the end of every hold it took
    (settled to ``usage`` / ``cost_nanos``, or released when ``usage`` is None), in the
    one order that never loses the row and never fails the call.

    - A hold whose budget store keeps its counters in the ledger's own database (one
      SQLite file, one PostgreSQL database: ``hold.joins(ledger)``) ends in the SAME
      transaction as the row is written (``hold.settle_and_record``): both or neither.
    - Every other hold ends after the row is written, so a store that fails then has
      already lost nothing.
    - A hold that cannot be ended is left to expire: the store frees it after its TTL,
      so the budget is over-reserved meanwhile (the safe direction). A
      :class:`~tollway.core.errors.BudgetSettleWarning` says so (``warnings`` and the
      ``tollway`` logger). If the joint transaction failed, the row is written alone.

    Nothing here raises an Exception: the provider has answered (or failed) and the
    caller gets exactly that. A failing ledger is logged (the row is then lost: the
    log is the record).
    """

    __slots__ = ("cost_nanos", "holds", "ledger", "record", "trace_id", "usage")

    def __init__(self, holds: Sequence[Hold], ledger: Ledger | None, record: CallRecord | None,
                 usage: Usage | None, cost_nanos: int | None, trace_id: str) -> None:
        self.holds, self.ledger, self.record = holds, ledger, record
        self.usage, self.cost_nanos, self.trace_id = usage, cost_nanos, trace_id

    def _joined(self) -> Any:
        """The first hold that can end inside the row's transaction (None: none can)."""
        ledger = self.ledger
        if ledger is None or self.record is None:
            return None
        for hold in self.holds:
            joins = getattr(hold, "joins", None)
            if joins is not None and joins(ledger):
                return hold
        return None

    def run(self) -> None:
        ledger, record, usage = self.ledger, self.record, self.usage
        joined = self._joined() if self.holds else None
        if joined is not None:
            try:
                joined.settle_and_record(usage, self.cost_nanos, ledger, record)
                record = None
            except Exception as exc:
                settle_failed(joined, exc, self.trace_id)
            except BaseException:  # interrupted: the row goes in alone, then it goes on
                _write(ledger, record)
                raise
        if record is not None and ledger is not None:
            _write(ledger, record)
        for hold in self.holds:
            if hold is joined:
                continue
            try:
                if usage is None:
                    hold.release()
                else:
                    hold.settle(usage, self.cost_nanos)
            except Exception as exc:
                settle_failed(hold, exc, self.trace_id)

    async def arun(self) -> None:
        ledger, record, usage = self.ledger, self.record, self.usage
        joined = self._joined() if self.holds else None
        if joined is not None:
            try:
                await joined.asettle_and_record(usage, self.cost_nanos, ledger, record)
                record = None
            except Exception as exc:
                settle_failed(joined, exc, self.trace_id)
            except BaseException:  # cancelled: the row goes in alone (it takes microseconds
                _write(ledger, record)  # on SQLite), then the cancellation goes on
                raise
        if record is not None and ledger is not None:
            await _awrite(ledger, record)
        for hold in self.holds:
            if hold is joined:
                continue
            try:
                if usage is None:
                    await hold.arelease()
                else:
                    await hold.asettle(usage, self.cost_nanos)
            except Exception as exc:
                settle_failed(hold, exc, self.trace_id)


def settle_failed(hold: Any, exc: BaseException, trace_id: str | None) -> None:
    """Warn that ``hold`` could not be ended (it is left to expire)."""
    budgets = tuple(getattr(hold, "budget_ids", ()))
    error = scrub(f"{type(exc).__name__}: {exc}", 300)
    message = (
        f"tollway: the budget store failed after the provider answered (trace {trace_id}); "
        f"the call's ledger row is kept and its reservation on "
        f"{', '.join(budgets) or 'its budgets'} is left to expire after its TTL: {error}"
    )
    log.warning("%s", message)
    warnings.warn(BudgetSettleWarning(message, trace_id=trace_id, budgets=budgets, error=error),
                  stacklevel=2)


# --------------------------------------------------------------------------- ledger


def _write(ledger: Ledger | None, record: CallRecord | None) -> None:
    """Write a ledger row. A failing ledger is logged, never raised: a lost ledger must
    not turn a paid answer into an error."""
    if ledger is None or record is None:
        return
    try:
        ledger.record(record)
    except Exception:
        log.exception("tollway: could not write the ledger row for trace %s", record.trace_id)


async def _awrite(ledger: Ledger, record: CallRecord) -> None:
    try:
        await ledger.arecord(record)
    except Exception:
        log.exception("tollway: could not write the ledger row for trace %s", record.trace_id)


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
