"""Model: the facade that composes route + guards (budgets) + transport + dialect + ledger.

One call flows one way: user input -> canonical Request -> route picks a deployment ->
guards reserve -> dialect builds the body -> transport -> dialect parses -> price ->
guards settle -> ledger row -> caller. Sync and async paths share every non-I/O step
(the helpers below); only the lines that wait on the network differ.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from tollway.core import errors
from tollway.core.cost.attribution import current_attribution
from tollway.core.cost.records import CallRecord
from tollway.core.hooks import CallContext, Guard, Hold, Route
from tollway.core.providers import Deployment, resolve_deployment
from tollway.core.sse import SSEDecoder
from tollway.core.tracing import current_trace_id, new_trace_id
from tollway.core.transport import Transport, default_transport
from tollway.core.types import (
    Attempt,
    Request,
    Response,
    StreamAccumulator,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    build_request,
)

if TYPE_CHECKING:
    from tollway.core.cost.attribution import Attribution
    from tollway.core.cost.ledger import Ledger
    from tollway.core.cost.pricing import PriceBook

log = logging.getLogger("tollway")

_CONTENT_EVENTS = (TextDelta, ThinkingDelta, ToolCallDelta)
_utcnow = partial(datetime.now, UTC)


class SingleDeployment:
    """The simplest route: one deployment, one attempt (no retries)."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    @property
    def deployments(self) -> list[Deployment]:
        return [self.deployment]

    def run(self, ctx: CallContext, attempt: Callable[[Deployment], Any]) -> Any:
        return attempt(self.deployment)

    async def arun(self, ctx: CallContext, attempt: Callable[[Deployment], Awaitable[Any]]) -> Any:
        return await attempt(self.deployment)


_UNSET: Any = object()
_NO_HOLDS: list[Hold] = []
"""The holds of a Model without guards (never appended to: holds lists are only read)."""


class Model:
    """A model you can call: ``Model("openai/gpt-4o-mini")`` or an alias from tollway.yaml.

    ``complete`` / ``acomplete`` return a Response; ``stream`` / ``astream`` return a
    stream you iterate (sync or async) for StreamEvents, ending with ``StreamEnd``
    that carries the same Response the non-streamed call would have given.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: Any = None,
        api_base: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        attribution: Mapping[str, Any] | None = None,
        ledger: Ledger | str | bool | None = None,
        prices: PriceBook | None = None,
        guards: Sequence[Guard] = (),
        route: Route | None = None,
        transport: Transport | None = None,
        config: Any = _UNSET,
        **deployment_options: Any,
    ) -> None:
        self.target = target
        self.alias: str | None = None
        if route is None:
            route, alias, cfg_guards, cfg_ledger, cfg_prices = _resolve_target(
                target, config, api_key=api_key, api_base=api_base, headers=headers,
                timeout=timeout, **deployment_options,
            )
            self.alias = alias
            guards = (*cfg_guards, *guards)
            if ledger is None:
                ledger = cfg_ledger
            if prices is None:
                prices = cfg_prices
        self._route: Route = route
        self._guards: tuple[Guard, ...] = tuple(guards)
        self._transport = transport or default_transport()
        self._ledger_spec = ledger
        self._ledger: Ledger | None = None
        self._ledger_resolved = False
        self._prices = prices
        self._defaults: Attribution | None = None
        if attribution:
            from tollway.core.cost.attribution import Attribution

            self._defaults = Attribution().merge(attribution)

    def __repr__(self) -> str:
        return f"Model({self.target!r})"

    # ------------------------------------------------------------------ public API

    def complete(self, messages: Any, /, **params: Any) -> Response:
        """One non-streamed call. ``messages``: a prompt string, Messages, OpenAI-style
        dicts or a Request; ``params``: tools, tool_choice, response_format, ..."""
        ctx = self._context(build_request(messages, **params), stream=False)
        route = self._route
        if route.__class__ is SingleDeployment:  # one attempt: no closure, no extra frame
            return self._attempt(ctx, route.deployment)
        return route.run(ctx, lambda dep: self._attempt(ctx, dep))

    async def acomplete(self, messages: Any, /, **params: Any) -> Response:
        ctx = self._context(build_request(messages, **params), stream=False)
        route = self._route
        if route.__class__ is SingleDeployment:
            # Fewer objects alive across the await: under hundreds of concurrent calls
            # each one survives into the GC's oldest generation and is scanned there.
            return await self._aattempt(ctx, route.deployment)
        return await route.arun(ctx, lambda dep: self._aattempt(ctx, dep))

    def stream(self, messages: Any, /, **params: Any) -> ResponseStream:
        """A streamed call: ``with model.stream(...) as s: for event in s: ...``."""
        ctx = self._context(build_request(messages, **params), stream=True)
        return ResponseStream(self, ctx)

    def astream(self, messages: Any, /, **params: Any) -> AsyncResponseStream:
        """``async with model.astream(...) as s: async for event in s: ...``."""
        ctx = self._context(build_request(messages, **params), stream=True)
        return AsyncResponseStream(self, ctx)

    def run_tools(self, messages: Any, /, **options: Any) -> Any:
        """Run the MCP tool loop (``tollway.mcp``): call the model with the tools of
        ``mcp=`` (a SyncMCPClient), run the calls it asks for, repeat until it answers.
        Returns a ``tollway.mcp.ToolLoopResult``; see ``tollway.mcp.loop.run_tools``."""
        from tollway.mcp.loop import run_tools

        return run_tools(self, messages, **options)

    async def arun_tools(self, messages: Any, /, **options: Any) -> Any:
        """The async tool loop (``mcp=`` an MCPClient); see ``tollway.mcp.loop.arun_tools``."""
        from tollway.mcp.loop import arun_tools

        return await arun_tools(self, messages, **options)

    @property
    def deployments(self) -> list[Deployment]:
        return list(getattr(self._route, "deployments", []))

    # ------------------------------------------------------------------ shared steps

    def _context(self, request: Request, *, stream: bool) -> CallContext:
        attribution = current_attribution()
        if self._defaults is not None:
            attribution = self._defaults.merge(attribution)
        return CallContext(
            request=request,
            attribution=attribution,
            trace_id=current_trace_id() or new_trace_id(),
            stream=stream,
            alias=self.alias,
            started=time.perf_counter(),
            started_at=_utcnow(),
        )

    @property
    def ledger(self) -> Ledger | None:
        if not self._ledger_resolved:
            spec = self._ledger_spec
            if spec is False:
                self._ledger = None
            elif spec is None or spec is True or isinstance(spec, str):
                from tollway.core.cost.ledger import shared_ledger

                self._ledger = shared_ledger(None if spec in (None, True) else spec)  # type: ignore[arg-type]
            else:
                self._ledger = spec
            self._ledger_resolved = True
        return self._ledger

    @property
    def prices(self) -> PriceBook:
        if self._prices is None:
            from tollway.core.cost.pricing import default_pricebook

            self._prices = default_pricebook()
        return self._prices

    def _transport_for(self, dep: Deployment) -> Transport:
        """HTTP for every provider but in-process ones (``local/``), which answer the
        same OpenAI-format requests without a socket."""
        if dep.provider.transport == "http":
            return self._transport
        from tollway.local.transport import local_transport

        return local_transport()  # type: ignore[return-value]

    def _reserve(self, ctx: CallContext, dep: Deployment) -> list[Hold]:
        holds: list[Hold] = []
        try:
            for guard in self._guards:
                holds.append(guard.reserve(ctx, dep))
        except BaseException:
            for hold in holds:
                hold.release()
            raise
        return holds

    async def _areserve(self, ctx: CallContext, dep: Deployment) -> list[Hold]:
        holds: list[Hold] = []
        try:
            for guard in self._guards:
                holds.append(await guard.areserve(ctx, dep))
        except BaseException:
            for hold in holds:
                await hold.arelease()
            raise
        return holds

    def _finish(
        self, ctx: CallContext, dep: Deployment, response: Response, t0: float, ttft: float | None
    ) -> CallRecord | None:
        """Fill the Response's tollway fields and build its ledger row (None without a
        ledger: nothing to write, nothing to build)."""
        response.provider = dep.provider.name
        response.deployment = dep.name
        response.latency = time.perf_counter() - t0
        response.time_to_first_token = ttft
        response.trace_id = ctx.trace_id
        response.attempts = ctx.attempts
        response.attribution = ctx.attribution.as_dict()
        response.response_format = ctx.request.response_format
        response.cost_nanos = self._price(dep, response.usage, response.model)
        if self.ledger is None:
            return None
        record = self._record(ctx, dep, t0, status="ok")
        record.request_id = response.id or None
        record.usage = response.usage
        record.cost_nanos = response.cost_nanos
        record.ttft_ms = None if ttft is None else ttft * 1000.0
        return record

    def _price(self, dep: Deployment, usage: Usage, reported_model: str | None = None) -> int | None:
        """nano-USD for ``usage`` on ``dep``; by the model the provider reports when the
        provider row says its target names a deployment (Azure)."""
        model = dep.model
        if dep.provider.price_by_reported_model and reported_model:
            model = reported_model
        return self.prices.price(dep.provider.name, model, usage, deployment=dep.name)

    def _record(self, ctx: CallContext, dep: Deployment, t0: float, *, status: str) -> CallRecord:
        record = CallRecord(
            time=ctx.started_at,
            trace_id=ctx.trace_id,
            provider=dep.provider.name,
            model=dep.model,
            deployment=dep.name,
            alias=ctx.alias,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            status=status,
            stream=ctx.stream,
        )
        ctx.attribution.fill(record)
        return record

    def _failure(self, ctx: CallContext, dep: Deployment, exc: BaseException, t0: float) -> CallRecord:
        """Note a failed attempt on the context and build its ledger row."""
        cancelled = isinstance(exc, _Cancelled) or not isinstance(exc, Exception)
        status = "cancelled" if cancelled else type(exc).__name__
        code = getattr(exc, "status", None)
        ctx.attempts.append(Attempt(dep.name, f"{status}: {exc}"[:300], code))
        record = self._record(ctx, dep, t0, status=status)
        record.error = errors.scrub(str(exc), 300)
        return record

    def _write(self, record: CallRecord | None) -> None:
        ledger = self.ledger
        if ledger is None or record is None:
            return
        try:
            ledger.record(record)
        except Exception:  # a lost ledger must never turn a paid answer into an error
            log.exception("tollway: could not write the ledger row for trace %s", record.trace_id)

    async def _awrite(self, record: CallRecord | None) -> None:
        ledger = self.ledger
        if ledger is None or record is None:
            return
        try:
            await ledger.arecord(record)
        except Exception:
            log.exception("tollway: could not write the ledger row for trace %s", record.trace_id)

    # ------------------------------------------------------------------ non-streamed

    def _attempt(self, ctx: CallContext, dep: Deployment) -> Response:
        t0 = time.perf_counter()
        try:
            holds = self._reserve(ctx, dep)
        except errors.TollwayError as exc:
            self._write(self._failure(ctx, dep, exc, t0))
            raise
        try:
            http = dep.dialect.build_request(ctx.request, dep.model, stream=False)
            raw = self._transport_for(dep).post(dep, http)
            response = _parse(dep, ctx.request, raw.status, raw.headers, raw.body)
        except BaseException as exc:
            for hold in holds:
                hold.release()
            self._write(self._failure(ctx, dep, exc, t0))
            raise
        record = self._finish(ctx, dep, response, t0, None)
        for hold in holds:
            hold.settle(response.usage, response.cost_nanos)
        self._write(record)
        return response

    async def _aattempt(self, ctx: CallContext, dep: Deployment) -> Response:
        t0 = time.perf_counter()
        try:
            holds = await self._areserve(ctx, dep) if self._guards else _NO_HOLDS
        except errors.TollwayError as exc:
            await self._awrite(self._failure(ctx, dep, exc, t0))
            raise
        try:
            raw = await self._transport_for(dep).apost(
                dep, dep.dialect.build_request(ctx.request, dep.model, stream=False)
            )
            response = _parse(dep, ctx.request, raw.status, raw.headers, raw.body)
        except BaseException as exc:
            for hold in holds:
                await hold.arelease()
            await self._awrite(self._failure(ctx, dep, exc, t0))
            raise
        record = self._finish(ctx, dep, response, t0, None)
        for hold in holds:
            await hold.asettle(response.usage, response.cost_nanos)
        if record is not None:
            await self._awrite(record)
        return response


def _parse(dep: Deployment, request: Request, status: int, headers: Any, body: bytes) -> Response:
    if status >= 400:
        raise dep.dialect.parse_error(status, body, headers).with_context(
            provider=dep.provider.name, model=dep.model, deployment=dep.name
        )
    try:
        data = json.loads(body)
    except ValueError:
        raise errors.ServerError(
            "the provider answered with a body that is not JSON",
            status=status, provider=dep.provider.name, model=dep.model, deployment=dep.name,
            body=body[:200].decode("utf-8", "replace"),
        ) from None
    if not isinstance(data, dict):
        raise errors.ServerError(
            "the provider answered with JSON that is not an object",
            status=status, provider=dep.provider.name, model=dep.model, deployment=dep.name,
        )
    return dep.dialect.parse_response(data, request, dep.model)


# ---------------------------------------------------------------------- streaming


class _StreamState:
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


class _LiveStream:
    """An open sync stream, primed up to its first token (so routing can fail over
    before then and never after)."""

    def __init__(self, model: Model, ctx: CallContext, dep: Deployment) -> None:
        self.model = model
        self.ctx = ctx
        self.dep = dep
        self.t0 = time.perf_counter()
        self.holds: list[Hold] = []
        self.buffer: list[StreamEvent] = []
        self.done = False
        self.state = _StreamState(dep, ctx.request, self.t0)
        self._cm: AbstractContextManager[Any] | None = None
        self._chunks: Iterator[bytes] | None = None

    def open(self) -> _LiveStream:
        try:
            self.holds = self.model._reserve(self.ctx, self.dep)
        except errors.TollwayError as exc:
            self.done = True
            self.model._write(self.model._failure(self.ctx, self.dep, exc, self.t0))
            raise
        try:
            http = self.dep.dialect.build_request(self.ctx.request, self.dep.model, stream=True)
            self._cm = self.model._transport_for(self.dep).stream(self.dep, http)
            body = self._cm.__enter__()
            if body.status >= 400:
                raise _stream_error(self.dep, body.status, body.headers, body.read())
            self._chunks = iter(body)
            while not self.state.started:
                chunk = next(self._chunks, None)
                if chunk is None:
                    self.buffer.extend(self.state.end())
                    self._chunks = None
                    break
                self.buffer.extend(self.state.feed(chunk))
        except BaseException as exc:
            self._fail(exc)
            raise
        return self

    def events(self) -> Iterator[StreamEvent]:
        try:
            yield from self.buffer
            self.buffer = []
            chunks = self._chunks
            if chunks is not None:
                for chunk in chunks:
                    yield from self.state.feed(chunk)
                yield from self.state.end()
            response = self._complete()
        except GeneratorExit:
            self.cancel()
            raise
        except BaseException as exc:
            self._fail(exc)
            raise
        yield StreamEnd(response)

    def _complete(self) -> Response:
        self._close_http()
        response = self.state.response()
        record = self.model._finish(self.ctx, self.dep, response, self.t0, self.state.ttft())
        for hold in self.holds:
            hold.settle(response.usage, response.cost_nanos)
        self.done = True
        self.model._write(record)
        return response

    def _close_http(self) -> None:
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def _fail(self, exc: BaseException) -> None:
        if self.done:
            return
        self.done = True
        self._close_http()
        record = self.model._failure(self.ctx, self.dep, exc, self.t0)
        _settle_partial(self.model, self.state, self.holds, record)
        self.model._write(record)

    def cancel(self) -> None:
        """Closed early by the caller: keep what was billed so far, free the rest."""
        if self.done:
            return
        self._fail(_Cancelled("stream closed by the caller before it ended"))


class _Cancelled(Exception):
    pass


def _partial_charge(model: Model, state: _StreamState, record: CallRecord) -> tuple[Usage, int | None] | None:
    """After a stream failed or was closed early: what the provider reported so far (it
    bills tokens already generated), written into the ledger row; None when it reported
    nothing, so the reservation is released instead."""
    ttft = state.ttft()
    record.ttft_ms = None if ttft is None else ttft * 1000.0
    usage = state.acc.usage
    if usage is None:
        return None
    record.usage = usage
    record.cost_nanos = model._price(state.dep, usage, state.acc.model)
    return usage, record.cost_nanos


def _settle_partial(model: Model, state: _StreamState, holds: list[Hold], record: CallRecord) -> None:
    charge = _partial_charge(model, state, record)
    for hold in holds:
        if charge is None:
            hold.release()
        else:
            hold.settle(*charge)


class ResponseStream:
    """A sync streamed call: iterate for StreamEvents; ``response`` once it ended."""

    def __init__(self, model: Model, ctx: CallContext) -> None:
        self._model = model
        self._ctx = ctx
        self._live: _LiveStream | None = None
        self._iter: Iterator[StreamEvent] | None = None
        self.response: Response | None = None

    def _open(self) -> Iterator[StreamEvent]:
        if self._iter is None:
            model, ctx = self._model, self._ctx
            self._live = model._route.run(ctx, lambda dep: _LiveStream(model, ctx, dep).open())
            self._iter = self._live.events()
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


class _AsyncLiveStream:
    def __init__(self, model: Model, ctx: CallContext, dep: Deployment) -> None:
        self.model = model
        self.ctx = ctx
        self.dep = dep
        self.t0 = time.perf_counter()
        self.holds: list[Hold] = []
        self.buffer: list[StreamEvent] = []
        self.done = False
        self.state = _StreamState(dep, ctx.request, self.t0)
        self._cm: AbstractAsyncContextManager[Any] | None = None
        self._chunks: AsyncIterator[bytes] | None = None

    async def open(self) -> _AsyncLiveStream:
        try:
            self.holds = await self.model._areserve(self.ctx, self.dep)
        except errors.TollwayError as exc:
            self.done = True
            await self.model._awrite(self.model._failure(self.ctx, self.dep, exc, self.t0))
            raise
        try:
            http = self.dep.dialect.build_request(self.ctx.request, self.dep.model, stream=True)
            self._cm = self.model._transport_for(self.dep).astream(self.dep, http)
            body = await self._cm.__aenter__()
            if body.status >= 400:
                raise _stream_error(self.dep, body.status, body.headers, await body.read())
            self._chunks = body.__aiter__()
            while not self.state.started:
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self.buffer.extend(self.state.end())
                    self._chunks = None
                    break
                self.buffer.extend(self.state.feed(chunk))
        except BaseException as exc:
            await self._fail(exc)
            raise
        return self

    async def events(self) -> AsyncIterator[StreamEvent]:
        try:
            for event in self.buffer:
                yield event
            self.buffer = []
            chunks = self._chunks
            if chunks is not None:
                async for chunk in chunks:
                    for event in self.state.feed(chunk):
                        yield event
                for event in self.state.end():
                    yield event
            response = await self._complete()
        except GeneratorExit:
            await self.cancel()
            raise
        except BaseException as exc:
            await self._fail(exc)
            raise
        yield StreamEnd(response)

    async def _complete(self) -> Response:
        await self._close_http()
        response = self.state.response()
        record = self.model._finish(self.ctx, self.dep, response, self.t0, self.state.ttft())
        for hold in self.holds:
            await hold.asettle(response.usage, response.cost_nanos)
        self.done = True
        await self.model._awrite(record)
        return response

    async def _close_http(self) -> None:
        cm, self._cm = self._cm, None
        if cm is not None:
            await cm.__aexit__(None, None, None)

    async def _fail(self, exc: BaseException) -> None:
        if self.done:
            return
        self.done = True
        await self._close_http()
        record = self.model._failure(self.ctx, self.dep, exc, self.t0)
        charge = _partial_charge(self.model, self.state, record)
        for hold in self.holds:
            if charge is None:
                await hold.arelease()
            else:
                await hold.asettle(*charge)
        await self.model._awrite(record)

    async def cancel(self) -> None:
        if self.done:
            return
        await self._fail(_Cancelled("stream closed by the caller before it ended"))


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
            live = await model._route.arun(ctx, lambda dep: _AsyncLiveStream(model, ctx, dep).open())
            self._iter = live.events()
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


# ---------------------------------------------------------------------- target resolution


def _resolve_target(target: str, config: Any, **options: Any) -> tuple[Route, str | None, tuple[Guard, ...], Any, Any]:
    """Route, alias, guards, ledger and prices for ``target``. The config is ALWAYS
    consulted (``config=`` object/path/mapping, else $TOLLWAY_CONFIG, else
    ./tollway.yaml; ``config=False`` for none): an alias becomes a Router, a direct
    ``provider/model`` still gets the config's guards, ledger and prices."""
    if config is False:
        return SingleDeployment(resolve_deployment(target, **options)), None, (), None, None
    from tollway.core.routing import resolve_route

    return resolve_route(target, None if config is _UNSET else config, **options)
