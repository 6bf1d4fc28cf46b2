"""The OpenTelemetry side: spans for model calls, tool calls and tool loops; metrics.

Imported only when telemetry is on (``tollway.core.telemetry.enable``). Shapes:

- **One ``chat {model}`` span per model call**, covering every attempt (the GenAI
  conventions: a span "SHOULD cover the duration of the logical operation with all
  retries"). A failed attempt that the router moved past is a span event
  ``tollway.attempt_failed`` (deployment, ``error.type``, HTTP status, when) rather than
  a child span: backends such as Langfuse and Logfire sum ``gen_ai.usage.*`` over spans,
  and nested ``chat`` spans would count a call's tokens twice; the ledger keeps one row
  per attempt for the detail. The span ends with the answer (for a stream: when the
  stream ends, fails or is closed by its caller) and carries usage, cost, finish reason,
  time to first chunk, deployment and attribution.
- **One ``execute_tool {tool}`` span per tool call** (MCP tools: kind CLIENT with
  ``mcp.method.name``; local Python tools: INTERNAL).
- **One ``invoke_agent`` span per tool loop** (``tollway.mcp.run_tools``...), the parent
  of its rounds and tool calls, so a loop is one trace.
- Metrics ``gen_ai.client.token.usage`` ({token}, by ``gen_ai.token.type`` input /
  output), ``gen_ai.client.operation.duration`` (s; chat and execute_tool), and
  ``tollway.client.cost`` (a USD counter by provider, model, org and project).

Trace context: spans start under the caller's current OpenTelemetry context (the
gateway attaches the incoming ``traceparent`` first), and the call span's context is
injected into the upstream request's headers with the configured propagator (W3C
``traceparent`` by default). tollway's own trace id (the ledger's ``trace_id``) is the
OpenTelemetry trace id whenever a span is recorded, unless a ``tollway.trace(...)``
scope fixed one; every span carries it as ``tollway.trace_id`` either way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tollway.core.errors import scrub
from tollway.core.telemetry import attributes as attrs
from tollway.core.telemetry import content
from tollway.core.tracing import current_trace_id
from tollway.core.tracing import trace as tollway_trace
from tollway.core.types import Response, StreamEnd, StreamEvent

if TYPE_CHECKING:
    from tollway.core.hooks import CallContext, Route
    from tollway.core.providers import Deployment

__all__ = ["CallSpan", "LoopSpan", "Telemetry", "ToolSpan"]

T = TypeVar("T")
R = TypeVar("R")

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)
"""The explicit bucket boundaries the conventions give for the two histograms."""

_METRIC_KEYS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                "gen_ai.response.model", "server.address", "server.port", "error.type")
_COST_KEYS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
              "tollway.org", "tollway.project")


def _version() -> str:
    from tollway import __version__

    return __version__


class Telemetry:
    """The tracer, the instruments and the settings; ``switch.current`` when on."""

    def __init__(self, *, capture_content: bool = False, propagate_context: bool = True,
                 tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.capture_content = capture_content
        self.propagate_context = propagate_context
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        version = _version()
        self.tracer = trace.get_tracer("tollway", version, tracer_provider=tracer_provider)
        meter = metrics.get_meter("tollway", version, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.cost = meter.create_counter(
            "tollway.client.cost", unit="USD",
            description="Money spent on model calls, as priced by tollway (priced calls only).",
        )

    def __repr__(self) -> str:
        return f"Telemetry(capture_content={self.capture_content})"

    # ------------------------------------------------------------------ model calls

    @contextmanager
    def _current(self, ctx: CallContext, route: Route) -> Iterator[CallSpan]:
        """The call's span, current while the block runs; failed if the block raises."""
        span = CallSpan(self, ctx, route)
        token = otel_context.attach(trace.set_span_in_context(span.span))
        try:
            yield span
        except BaseException as exc:
            span.failed(exc)
            raise
        finally:
            otel_context.detach(token)

    def call(self, ctx: CallContext, route: Route,
             run: Callable[[CallContext], Response]) -> Response:
        """A non-streamed call under its span (current while the attempts run)."""
        with self._current(ctx, route) as span:
            response = run(ctx)
        span.succeeded(response)
        return response

    async def acall(self, ctx: CallContext, route: Route,
                    run: Callable[[CallContext], Awaitable[Response]]) -> Response:
        with self._current(ctx, route) as span:
            response = await run(ctx)
        span.succeeded(response)
        return response

    def stream(self, ctx: CallContext, route: Route,
               open_live: Callable[[], Any]) -> Iterator[StreamEvent]:
        """Open a stream under its span; the events, ending the span with the stream."""
        with self._current(ctx, route) as span:
            live = open_live()
        return span.events(live)

    async def astream(self, ctx: CallContext, route: Route,
                      open_live: Callable[[], Awaitable[Any]]) -> AsyncIterator[StreamEvent]:
        with self._current(ctx, route) as span:
            live = await open_live()
        return span.aevents(live)

    # ------------------------------------------------------------------ tools and loops

    def tool(self, name: str, *, call_id: str | None = None, server: str | None = None,
             description: str | None = None, arguments: Any = None) -> ToolSpan:
        return ToolSpan(self, name, call_id, server, description, arguments)

    def loop(self, trace_id: str | None, agent: str | None) -> LoopSpan:
        return LoopSpan(self, trace_id, agent)

    # ------------------------------------------------------------------ gateway

    def extract(self, headers: Mapping[str, str]) -> object | None:
        """Attach the context an incoming request carries (``traceparent``...) unless a
        span is already current (an ASGI instrumentation made the server span: keep it
        as the parent). Returns the token for :func:`detach`, or None."""
        if trace.get_current_span().get_span_context().is_valid:
            return None
        incoming = propagate.extract(headers)
        if not trace.get_current_span(incoming).get_span_context().is_valid:
            return None
        return otel_context.attach(incoming)

    @staticmethod
    def detach(token: object | None) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ metrics

    def record(self, attributes: Mapping[str, Any], usage: Any, seconds: float,
               cost_nanos: int | None) -> None:
        base = {k: attributes[k] for k in _METRIC_KEYS if k in attributes}
        if usage is not None:
            if usage.input_tokens:
                self.token_usage.record(usage.input_tokens, {**base, "gen_ai.token.type": "input"})
            if usage.output_tokens:
                self.token_usage.record(usage.output_tokens, {**base, "gen_ai.token.type": "output"})
        self.duration.record(seconds, base)
        if cost_nanos:
            self.cost.add(cost_nanos / 1e9, {k: attributes[k] for k in _COST_KEYS if k in attributes})


def _fail(span: Any, exc: BaseException, kind: str) -> None:
    span.set_attribute("error.type", kind)
    message = scrub(str(exc), 300)
    span.add_event("exception", {"exception.type": type(exc).__name__,
                                 "exception.message": message})
    span.set_status(Status(StatusCode.ERROR, message))


class CallSpan:
    """The span of one model call. Started with what is known before the first
    attempt, completed with the answer or the error; :meth:`attempt_failed` adds an
    event per failed attempt (the Model calls it from ``failure``)."""

    __slots__ = ("attributes", "ctx", "done", "route", "span", "started", "telemetry")

    def __init__(self, telemetry: Telemetry, ctx: CallContext, route: Route) -> None:
        self.telemetry = telemetry
        self.ctx = ctx
        self.route = route
        self.done = False
        self.started = time.perf_counter()
        request = ctx.request
        values = attrs.request_attributes(request, stream=ctx.stream)
        deployments = list(getattr(route, "deployments", ()))
        in_process = False
        if len(deployments) == 1:
            dep = deployments[0]
            values.update(attrs.deployment_attributes(dep))
            name = dep.model
            in_process = dep.provider.in_process
        else:
            name = ctx.alias or "model"
        if ctx.alias:
            values["tollway.alias"] = ctx.alias
        values.update(attrs.attribution_attributes(ctx.attribution))
        self.attributes = values
        kind = SpanKind.INTERNAL if in_process else SpanKind.CLIENT
        self.span = span = telemetry.tracer.start_span(f"chat {name}", kind=kind,
                                                       attributes=values)
        span_context = span.get_span_context()
        if span_context.is_valid and current_trace_id() is None:
            ctx.trace_id = f"{span_context.trace_id:032x}"
        ctx.span = self
        if span.is_recording():
            span.set_attribute("tollway.trace_id", ctx.trace_id)
            if telemetry.capture_content:
                span.set_attribute("gen_ai.input.messages", content.input_messages(request))
                tools = content.tool_definitions(request)
                if tools is not None:
                    span.set_attribute("gen_ai.tool.definitions", tools)
        if telemetry.propagate_context:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            if carrier:
                ctx.request = replace(request, extra_headers={**request.extra_headers, **carrier})

    # ------------------------------------------------------------------ outcome

    def attempt_failed(self, dep: Deployment, exc: BaseException) -> None:
        """One attempt failed (the router may go on): an event on the call's span, and
        the call is now described by that deployment until another one answers."""
        self.attributes.update(attrs.deployment_attributes(dep))
        kind = attrs.error_type(exc)
        if kind == "cancelled" or not self.span.is_recording():
            return
        event: dict[str, Any] = {
            "tollway.deployment": dep.name,
            "gen_ai.provider.name": attrs.provider_name(dep.provider.name),
            "gen_ai.request.model": dep.model,
            "error.type": kind,
            "tollway.error": scrub(str(exc), 300),
        }
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            event["http.response.status_code"] = status
        self.span.add_event("tollway.attempt_failed", event)

    def succeeded(self, response: Response, dep: Deployment | None = None) -> None:
        if self.done:
            return
        self.done = True
        dep = dep or self._deployment(response.deployment)
        served = {} if dep is None else attrs.deployment_attributes(dep)
        if self.ctx.alias:
            served["tollway.alias"] = self.ctx.alias  # a fallback's alias, if one served
        self.attributes.update(served)
        values = {**served, **attrs.response_attributes(response),
                  "tollway.trace_id": self.ctx.trace_id}
        span = self.span
        if span.is_recording():
            span.set_attributes(values)
            self._name()
            if self.telemetry.capture_content:
                span.set_attribute("gen_ai.output.messages", content.output_messages(response))
        span.end()
        self.telemetry.record({**self.attributes, **values}, response.usage,
                              time.perf_counter() - self.started, response.cost_nanos)

    def failed(self, exc: BaseException, usage: Any = None, cost_nanos: int | None = None,
               ttft: float | None = None) -> None:
        if self.done:
            return
        self.done = True
        kind = attrs.error_type(exc)
        values: dict[str, Any] = {"error.type": kind}
        if usage is not None:
            values.update(attrs.usage_attributes(usage))
            values.update(attrs.cost_attributes(cost_nanos))
        if ttft is not None:
            values["gen_ai.response.time_to_first_chunk"] = ttft
        span = self.span
        if span.is_recording():
            span.set_attributes({**self.attributes, **values})
            self._name()
            if kind == "cancelled":
                span.set_attribute("tollway.cancelled", True)
            else:
                _fail(span, exc, kind)
        span.end()
        self.telemetry.record({**self.attributes, **values}, usage,
                              time.perf_counter() - self.started, cost_nanos)

    def _name(self) -> None:
        model = self.attributes.get("gen_ai.request.model")
        if model:
            self.span.update_name(f"chat {model}")

    def _deployment(self, name: str | None) -> Deployment | None:
        """The deployment that answered, by name, among those the route may use."""
        route = self.route
        groups = getattr(route, "aliases", None)
        candidates = [d for deps in groups.values() for d in deps] if groups else []
        candidates.extend(getattr(route, "deployments", ()))
        return next((d for d in candidates if d.name == name), None)

    # ------------------------------------------------------------------ streams

    def _cut(self, live: Any, exc: BaseException) -> None:
        """The stream failed or its caller closed it: what it reported so far."""
        state = live.state
        usage = state.acc.usage
        cost = None if usage is None else live.model.price(live.dep, usage, state.acc.model)
        self.attributes.update(attrs.deployment_attributes(live.dep))
        self.failed(exc, usage, cost, state.ttft())

    def events(self, live: Any) -> Iterator[StreamEvent]:
        inner = live.events()
        try:
            for event in inner:
                if event.__class__ is StreamEnd:
                    self.succeeded(event.response, live.dep)
                yield event
        except GeneratorExit:
            inner.close()
            self._cut(live, GeneratorExit())
            raise
        except BaseException as exc:
            self._cut(live, exc)
            raise

    async def aevents(self, live: Any) -> AsyncIterator[StreamEvent]:
        inner = live.aevents()
        try:
            async for event in inner:
                if event.__class__ is StreamEnd:
                    self.succeeded(event.response, live.dep)
                yield event
        except GeneratorExit:
            await inner.aclose()
            self._cut(live, GeneratorExit())
            raise
        except BaseException as exc:
            self._cut(live, exc)
            raise


class ToolSpan:
    """The span of one tool call; current while the tool runs (:meth:`active`)."""

    __slots__ = ("name", "span", "started", "telemetry")

    def __init__(self, telemetry: Telemetry, name: str, call_id: str | None, server: str | None,
                 description: str | None, arguments: Any) -> None:
        self.telemetry = telemetry
        self.name = name
        self.started = time.perf_counter()
        values: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        if call_id:
            values["gen_ai.tool.call.id"] = call_id
        if description:
            values["gen_ai.tool.description"] = description
        if server is not None:
            values["mcp.method.name"] = "tools/call"
            values["tollway.tool.server"] = server
            values["gen_ai.tool.type"] = "extension"
        else:
            values["gen_ai.tool.type"] = "function"
        trace_id = current_trace_id()
        if trace_id:
            values["tollway.trace_id"] = trace_id
        kind = SpanKind.CLIENT if server is not None else SpanKind.INTERNAL
        self.span = telemetry.tracer.start_span(f"execute_tool {name}", kind=kind,
                                                attributes=values)
        if telemetry.capture_content and arguments is not None and self.span.is_recording():
            self.span.set_attribute("gen_ai.tool.call.arguments", content.tool_payload(arguments))

    def active(self) -> Any:
        return trace.use_span(self.span, end_on_exit=False, record_exception=False,
                              set_status_on_exception=False)

    def carrier(self) -> dict[str, str] | None:
        """This span's context for the MCP request's ``params._meta`` (None when
        propagation is off or there is nothing to send)."""
        if not self.telemetry.propagate_context:
            return None
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.span))
        return carrier or None

    def end(self, *, status: str, error: BaseException | None, result: Any,
            cost_nanos: int = 0) -> None:
        """``status``: the ledger status (``ok``, ``tool_error``, an error class name)."""
        span = self.span
        values: dict[str, Any] = {}
        if span.is_recording():
            if cost_nanos:
                values.update(attrs.cost_attributes(cost_nanos))
            if status != "ok":
                values["error.type"] = status
            span.set_attributes(values)
            if status != "ok":
                _fail(span, error or RuntimeError(status), status)
            elif self.telemetry.capture_content:
                span.set_attribute("gen_ai.tool.call.result", content.tool_payload(result))
        span.end()
        metric = {"gen_ai.operation.name": "execute_tool"}
        if status != "ok":
            metric["error.type"] = status
        self.telemetry.duration.record(time.perf_counter() - self.started, metric)


class LoopSpan:
    """The span of one tool loop, the parent of its rounds and tool calls.

    ``with telemetry.loop(trace_id, agent) as span:`` starts it, makes it current and
    runs the block under tollway trace id ``span.trace_id`` (the given one, else the
    span's trace id); ``span.done(result)`` notes the outcome before the block ends.
    An async generator must not leave a context attached across its ``yield``s: it uses
    ``start()``, ``with span.active():`` around the parts that start calls, and
    ``finish(exc)``.
    """

    __slots__ = ("_ended", "_given", "_scope", "_token", "agent", "span", "telemetry", "trace_id")

    def __init__(self, telemetry: Telemetry, trace_id: str | None, agent: str | None) -> None:
        self.telemetry = telemetry
        self.agent = agent or "tollway.tool_loop"
        self._given = trace_id
        self.trace_id = ""
        self._scope: Any = None
        self._token: object | None = None
        self._ended = False
        self.span: Any = None

    def start(self) -> LoopSpan:
        self.span = span = self.telemetry.tracer.start_span(
            f"invoke_agent {self.agent}", kind=SpanKind.INTERNAL,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": self.agent},
        )
        span_context = span.get_span_context()
        tid = self._given or current_trace_id()
        if tid is None and span_context.is_valid:
            tid = f"{span_context.trace_id:032x}"
        self._scope = tollway_trace(tid)
        self.trace_id = self._scope.__enter__()
        span.set_attribute("tollway.trace_id", self.trace_id)
        return self

    def __enter__(self) -> LoopSpan:
        self.start()
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        self.finish(exc)

    def active(self) -> Any:
        return trace.use_span(self.span, end_on_exit=False, record_exception=False,
                              set_status_on_exception=False)

    def done(self, result: R) -> R:
        """Note the loop's ToolLoopResult (returned): rounds, tool calls, total cost
        (models and priced tools; not as ``gen_ai.usage.*``, which the rounds' spans
        already carry, so backends summing usage count each token once)."""
        span = self.span
        if span is None or not span.is_recording():
            return result
        span.set_attributes({"tollway.loop.rounds": result.rounds,  # type: ignore[attr-defined]
                             "tollway.loop.tool_calls": len(result.tool_runs)})  # type: ignore[attr-defined]
        cost = result.cost_nanos  # type: ignore[attr-defined]
        if cost is not None:
            span.set_attribute("tollway.loop.cost_usd", cost / 1e9)
        return result

    def finish(self, exc: BaseException | None = None) -> None:
        """End the span and the trace scope (once); ``exc``: what stopped the loop."""
        if self._ended or self.span is None:
            return
        self._ended = True
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.__exit__(None, None, None)
        span = self.span
        if exc is not None and span.is_recording():
            kind = attrs.error_type(exc)
            if kind == "cancelled":
                span.set_attribute("tollway.cancelled", True)
            else:
                _fail(span, exc, kind)
        span.end()
