"""Streamed calls: the live stream of one attempt, and the public sync / async streams.

A stream's attempt is primed up to its first token before the route sees it succeed, so
routing can fail over before anything reached the caller and never after. Opening,
completing and failing are steps (``core/effects.py``) written once; only the loops
that hand chunks to the caller are written twice, because that is where sync and async
iteration differ.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from tollway.core import errors
from tollway.core.effects import (
    CloseStream,
    NextChunk,
    OpenStream,
    ReadBody,
    Steps,
    StreamHandle,
    adrive,
    drive,
)
from tollway.core.sse import SSEDecoder
from tollway.core.telemetry import switch as _telemetry
from tollway.core.types import (
    ImageEvent,
    Request,
    Response,
    StreamAccumulator,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord
    from tollway.core.hooks import CallContext, Hold
    from tollway.core.model import Model
    from tollway.core.providers import Deployment

__all__ = ["AsyncResponseStream", "Cancelled", "ResponseStream"]

_CONTENT_EVENTS = (TextDelta, ThinkingDelta, ToolCallDelta, ImageEvent)


OPENED: Any = object()
"""The first item of :meth:`LiveStream.events` / ``aevents``, taken by the stream object
as soon as the HTTP stream is open. A generator closed before its first ``next`` never
runs its ``finally``: a stream opened and closed unread (``with model.stream(...):
pass``) would then leave no ledger row and hold its budget reservation until the TTL.
Advanced past this mark, closing it always records the attempt as cancelled."""


class Cancelled(Exception):
    """A stream closed by its caller before it ended (recorded with status cancelled)."""


class StreamState:
    """Sans-I/O half of a live stream: bytes in, events out, the Response at the end."""

    __slots__ = ("acc", "decoder", "dep", "first_token_at", "parser", "t0")

    def __init__(self, dep: Deployment, request: Request, t0: float) -> None:
        self.dep = dep
        self.t0 = t0
        self.decoder = SSEDecoder()
        self.parser = dep.dialect.stream_parser(request, dep.model)
        self.acc = StreamAccumulator()
        self.first_token_at: float | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for sse in self.decoder.feed(chunk):
            out.extend(self.parser.feed(sse))
        return self._note(out)

    def end(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for sse in self.decoder.flush():
            out.extend(self.parser.feed(sse))
        out.extend(self.parser.close())
        return self._note(out)

    def _note(self, events: list[StreamEvent]) -> list[StreamEvent]:
        acc = self.acc
        for event in events:
            if self.first_token_at is None and isinstance(event, _CONTENT_EVENTS):
                self.first_token_at = time.perf_counter()
            acc.add(event)
        return events

    @property
    def started(self) -> bool:
        return self.first_token_at is not None

    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.t0

    def response(self) -> Response:
        return self.acc.response(provider=self.dep.provider.name, model=self.dep.model)


def _stream_error(dep: Deployment, status: int, headers: Any, body: bytes) -> errors.ProviderError:
    return dep.dialect.parse_error(status, body, headers).with_context(
        provider=dep.provider.name, model=dep.model, deployment=dep.name
    )


class LiveStream:
    """An open stream of one attempt. ``open`` / ``complete`` / ``fail`` are the steps;
    :meth:`events` and :meth:`aevents` are the two drivers' chunk loops."""

    def __init__(self, model: Model, ctx: CallContext, dep: Deployment) -> None:
        self.model = model
        self.ctx = ctx
        self.dep = dep
        self.t0 = time.perf_counter()
        self.holds: list[Hold] = []
        self.buffer: list[StreamEvent] = []
        self.done = False
        self.state = StreamState(dep, ctx.request, self.t0)
        self.http = StreamHandle()

    # ------------------------------------------------------------------ steps

    def open(self) -> Steps[LiveStream]:
        """Reserve, open the HTTP stream, read up to the first token."""
        model, ctx, dep, state = self.model, self.ctx, self.dep, self.state
        try:
            self.holds = yield from model.reserve(ctx, dep, self.t0)
        except BaseException:
            self.done = True
            raise
        try:
            http = dep.dialect.build_request(ctx.request, dep.model, stream=True)
            body = yield OpenStream(self.http, model.transport_for(dep), dep, http)
            if body.status >= 400:
                raise _stream_error(dep, body.status, body.headers, (yield ReadBody(body)))
            while not state.started:
                chunk = yield NextChunk(self.http)
                if chunk is None:
                    self.buffer.extend(state.end())
                    self.http.chunks = None
                    break
                self.buffer.extend(state.feed(chunk))
        except BaseException as exc:
            yield from self.fail(exc)
            raise
        return self

    def complete(self) -> Steps[Response]:
        yield CloseStream(self.http)
        response = self.state.response()
        record = self.model.finish(self.ctx, self.dep, response, self.t0, self.state.ttft())
        self.done = True
        yield from self.model.conclude(
            self.ctx, self.holds, record, (response.usage, response.cost_nanos)
        )
        return response

    def fail(self, exc: BaseException) -> Steps[None]:
        """Failed, or closed early by the caller: keep what was billed so far (the
        provider bills tokens already generated), free the rest, record the attempt."""
        if isinstance(exc, errors.ProviderError):  # a parser's StreamError names no deployment
            dep = self.dep
            exc.with_context(provider=dep.provider.name, model=dep.model, deployment=dep.name)
        if self.done:
            return
        self.done = True
        yield CloseStream(self.http)
        record = self.model.failure(self.ctx, self.dep, exc, self.t0)
        charge = _partial_charge(self.model, self.state, record, self.ctx.request)
        yield from self.model.conclude(self.ctx, self.holds, record, charge)

    # ------------------------------------------------------------------ drivers

    def events(self) -> Iterator[StreamEvent]:
        try:
            yield OPENED  # primed at once by ResponseStream: see OPENED
            yield from self.buffer
            self.buffer = []
            chunks = self.http.chunks
            if chunks is not None:
                for chunk in chunks:
                    yield from self.state.feed(chunk)
                yield from self.state.end()
            response = drive(self.complete())
        except GeneratorExit:
            drive(self.fail(Cancelled("stream closed by the caller before it ended")))
            raise
        except BaseException as exc:
            drive(self.fail(exc))
            raise
        yield StreamEnd(response)

    async def aevents(self) -> AsyncIterator[StreamEvent]:
        try:
            yield OPENED
            for event in self.buffer:
                yield event
            self.buffer = []
            chunks = self.http.chunks
            if chunks is not None:
                async for chunk in chunks:
                    for event in self.state.feed(chunk):
                        yield event
                for event in self.state.end():
                    yield event
            response = await adrive(self.complete())
        except GeneratorExit:
            await adrive(self.fail(Cancelled("stream closed by the caller before it ended")))
            raise
        except BaseException as exc:
            await adrive(self.fail(exc))
            raise
        yield StreamEnd(response)


ESTIMATED_MARK = "usage estimated"
"""Begins the note appended to a cancelled row's ``error`` when its usage is an estimate
(the provider reported none before the close): ``WHERE error LIKE '%usage estimated%'``
finds every such row in the ledger."""


def _estimated_usage(state: StreamState, request: Request) -> Usage:
    """An honest guess at what a provider bills for a stream cut short before it sent
    usage (OpenAI sends usage only in the last chunk): input by the budget estimator's
    rule (:func:`tollway.core.cost.estimate.estimate_input_tokens`: ASCII at 4
    characters a token, one per other character, plus per-message overheads), output by
    the same text rule over every text, reasoning and tool-argument delta received."""
    from tollway.core.cost.estimate import estimate_input_tokens
    from tollway.core.dialects._batching import estimate_tokens

    return Usage(input_tokens=estimate_input_tokens(request),
                 output_tokens=estimate_tokens(state.acc.generated_text()))


def _partial_charge(model: Model, state: StreamState, record: CallRecord,
                    request: Request | None = None) -> tuple[Usage, int | None] | None:
    """What the provider reported before a stream failed or was closed, written into
    the ledger row. A stream the caller cancelled after tokens arrived, with no usage
    reported, is charged an estimate (:func:`_estimated_usage`, marked in the row's
    ``error``): the provider bills those tokens. Otherwise None when it reported
    nothing, so the reservation is released."""
    ttft = state.ttft()
    record.ttft_ms = None if ttft is None else ttft * 1000.0
    usage = state.acc.usage
    if usage is None:
        if request is None or record.status != "cancelled" or not state.started:
            return None
        usage = _estimated_usage(state, request)
        note = (f"{ESTIMATED_MARK}: {usage.input_tokens} input / {usage.output_tokens} output "
                "tokens (the provider reported none before the stream was closed)")
        record.error = f"{record.error}; {note}" if record.error else note
    record.usage = usage
    record.cost_nanos = model.price(state.dep, usage, state.acc.model)
    return usage, record.cost_nanos


class ResponseStream:
    """A sync streamed call: iterate for StreamEvents; ``response`` once it ended."""

    def __init__(self, model: Model, ctx: CallContext) -> None:
        self._model = model
        self._ctx = ctx
        self._iter: Iterator[StreamEvent] | None = None
        self.response: Response | None = None

    def _open(self) -> Iterator[StreamEvent]:
        if self._iter is None:
            model, ctx = self._model, self._ctx
            route = model.route

            def open_live() -> LiveStream:
                return route.run(ctx, lambda dep: drive(LiveStream(model, ctx, dep).open()))

            telemetry = _telemetry.current
            if telemetry is not None:  # the span ends with the stream
                events = telemetry.stream(ctx, route, open_live)
            else:
                events = open_live().events()
            next(events)  # past OPENED: from here a close() records the attempt
            self._iter = events
        return self._iter

    def __enter__(self) -> ResponseStream:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        for event in self._open():
            if isinstance(event, StreamEnd):
                self.response = event.response
            yield event

    def text_stream(self) -> Iterator[str]:
        for event in self:
            if isinstance(event, TextDelta):
                yield event.text

    def collect(self) -> Response:
        """Consume the rest of the stream and return the complete Response."""
        for _ in self:
            pass
        assert self.response is not None
        return self.response

    def close(self) -> None:
        if self._iter is not None:
            self._iter.close()  # type: ignore[attr-defined]


class AsyncResponseStream:
    """An async streamed call: ``async with`` / ``async for``; ``response`` once ended."""

    def __init__(self, model: Model, ctx: CallContext) -> None:
        self._model = model
        self._ctx = ctx
        self._iter: AsyncIterator[StreamEvent] | None = None
        self.response: Response | None = None

    async def _open(self) -> AsyncIterator[StreamEvent]:
        if self._iter is None:
            model, ctx = self._model, self._ctx
            route = model.route

            async def open_live() -> LiveStream:
                return await route.arun(ctx, lambda dep: adrive(LiveStream(model, ctx, dep).open()))

            telemetry = _telemetry.current
            if telemetry is not None:
                events = await telemetry.astream(ctx, route, open_live)
            else:
                events = (await open_live()).aevents()
            await events.__anext__()  # past OPENED (see ResponseStream._open)
            self._iter = events
        return self._iter

    async def __aenter__(self) -> AsyncResponseStream:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        events = await self._open()
        async for event in events:
            if isinstance(event, StreamEnd):
                self.response = event.response
            yield event

    async def text_stream(self) -> AsyncIterator[str]:
        async for event in self:
            if isinstance(event, TextDelta):
                yield event.text

    async def collect(self) -> Response:
        async for _ in self:
            pass
        assert self.response is not None
        return self.response

    async def aclose(self) -> None:
        if self._iter is not None:
            await self._iter.aclose()  # type: ignore[attr-defined]
