"""Model: the facade that composes route + guards (budgets) + transport + dialect + ledger.

One call flows one way: user input -> canonical Request -> route picks a deployment ->
guards reserve -> dialect builds the body -> transport -> dialect parses -> price ->
guards settle -> ledger row -> caller. The attempt is written once, as steps
(``core/effects.py``) that the sync driver performs and the async driver awaits; streams
live in ``core/streams.py`` on the same steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from tollway.core import errors
from tollway.core.cost.attribution import Attribution, current_attribution
from tollway.core.cost.records import CallRecord
from tollway.core.effects import Post, Reserve, SettleAndWrite, Steps, adrive, drive
from tollway.core.hooks import CallContext, Guard, Hold, RequestT, Route
from tollway.core.inputs import build_embedding_request, build_image_request, build_request
from tollway.core.media_calls import answer_body, embedding_attempt, image_attempt
from tollway.core.media_types import (
    KIND_EMBEDDING,
    KIND_IMAGE,
    CallKind,
    EmbeddingResponse,
    ImageResponse,
)
from tollway.core.providers import Deployment, registered_transport
from tollway.core.routing.router import SingleDeployment
from tollway.core.streams import AsyncResponseStream, Cancelled, ResponseStream
from tollway.core.telemetry import resolve as _resolve_telemetry
from tollway.core.telemetry import switch as _telemetry
from tollway.core.tracing import current_trace_id, new_trace_id
from tollway.core.transport import Transport, default_transport
from tollway.core.types import Attempt, Request, Response, Usage

if TYPE_CHECKING:
    from tollway.core.assembly import Assembled
    from tollway.core.cost.ledger import Ledger
    from tollway.core.cost.pricing import PriceBook

__all__ = ["AsyncResponseStream", "Model", "ResponseStream"]

T = TypeVar("T")
_utcnow = partial(datetime.now, UTC)
_UNSET: Any = object()
_NO_HOLDS: list[Hold] = []
"""The holds of a Model without guards (never appended to: holds lists are only read)."""


class Model:
    """A model you can call: ``Model("openai/gpt-4o-mini")`` or an alias from tollway.yaml.

    ``complete`` / ``acomplete`` return a Response; ``stream`` / ``astream`` return a
    stream you iterate (sync or async) for StreamEvents, ending with ``StreamEnd``
    that carries the same Response the non-streamed call would have given.
    ``embed`` / ``aembed`` return an EmbeddingResponse, ``generate_image`` /
    ``edit_image`` (and their ``a`` twins) an ImageResponse: through the same route,
    guards, prices and ledger (rows of kind ``embedding`` / ``image``).
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
        defaults: Attribution | None = None
        if route is None:
            built = _assemble(
                target, config, api_key=api_key, api_base=api_base, headers=headers,
                timeout=timeout, **deployment_options,
            )
            route, self.alias, defaults = built.route, built.alias, built.attribution
            guards = (*built.guards, *guards)
            if ledger is None:
                ledger = built.ledger
            if prices is None:
                prices = built.prices
        self._route: Route = route
        self._guards: tuple[Guard, ...] = tuple(guards)
        self._transport = transport
        self._ledger_spec = ledger
        self._ledger: Ledger | None = None
        self._ledger_resolved = False
        self._prices = prices
        if attribution:
            defaults = (defaults or Attribution()).merge(attribution)
        self._defaults = defaults
        """Config defaults under the Model's own: merged once, here; a call merges the
        scope's attribution over them once more, in :meth:`_context`."""
        _resolve_telemetry()

    def __repr__(self) -> str:
        return f"Model({self.target!r})"

    # ------------------------------------------------------------------ public API

    def complete(self, messages: Any, /, **params: Any) -> Response:
        """One non-streamed call. ``messages``: a prompt string, Messages, OpenAI-style
        dicts or a Request; ``params``: tools, tool_choice, response_format, ..."""
        ctx = self._context(build_request(messages, **params), stream=False)
        telemetry = _telemetry.current  # off: this read is all telemetry costs a call
        if telemetry is not None:
            return telemetry.call(ctx, self._route, self._run)
        route = self._route
        if route.__class__ is SingleDeployment:  # one attempt: no closure, no extra frame
            return drive(self._attempt(ctx, route.deployment))
        return route.run(ctx, lambda dep: drive(self._attempt(ctx, dep)))

    async def acomplete(self, messages: Any, /, **params: Any) -> Response:
        ctx = self._context(build_request(messages, **params), stream=False)
        telemetry = _telemetry.current
        if telemetry is not None:
            return await telemetry.acall(ctx, self._route, self._arun)
        route = self._route
        if route.__class__ is SingleDeployment:
            # Fewer objects alive across the await: under hundreds of concurrent calls
            # each one survives into the GC's oldest generation and is scanned there.
            return await adrive(self._attempt(ctx, route.deployment))
        return await route.arun(ctx, lambda dep: adrive(self._attempt(ctx, dep)))

    def _run(self, ctx: CallContext) -> Response:
        """The call's attempts over the route (the traced path; the untraced one in
        :meth:`complete` is the same two lines, inline to spare a frame)."""
        return self._route.run(ctx, lambda dep: drive(self._attempt(ctx, dep)))

    async def _arun(self, ctx: CallContext) -> Response:
        return await self._route.arun(ctx, lambda dep: adrive(self._attempt(ctx, dep)))

    def stream(self, messages: Any, /, **params: Any) -> ResponseStream:
        """A streamed call: ``with model.stream(...) as s: for event in s: ...``."""
        ctx = self._context(build_request(messages, **params), stream=True)
        return ResponseStream(self, ctx)

    def astream(self, messages: Any, /, **params: Any) -> AsyncResponseStream:
        """``async with model.astream(...) as s: async for event in s: ...``."""
        ctx = self._context(build_request(messages, **params), stream=True)
        return AsyncResponseStream(self, ctx)

    # ------------------------------------------------------------------ embeddings, images

    def embed(
        self,
        texts: str | Sequence[str],
        /,
        *,
        dimensions: int | None = None,
        input_type: str | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        """Embed ``texts`` (one string or many): one vector per text, in order, however
        many requests the provider's batch limits need. ``input_type``: ``"query"`` or
        ``"document"`` (a hint for providers with asymmetric embeddings); other keywords
        (``encoding_format``, ``user``, ``extra_headers``...) pass through."""
        ctx = self._context(
            build_embedding_request(texts, dimensions=dimensions, input_type=input_type, **params),
            stream=False, kind=KIND_EMBEDDING,
        )
        return self._drive(ctx, embedding_attempt)

    async def aembed(
        self,
        texts: str | Sequence[str],
        /,
        *,
        dimensions: int | None = None,
        input_type: str | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        ctx = self._context(
            build_embedding_request(texts, dimensions=dimensions, input_type=input_type, **params),
            stream=False, kind=KIND_EMBEDDING,
        )
        return await self._adrive(ctx, embedding_attempt)

    def generate_image(
        self,
        prompt: str,
        /,
        *,
        size: str | None = None,
        quality: str | None = None,
        n: int = 1,
        output_format: str | None = None,
        **params: Any,
    ) -> ImageResponse:
        """Generate ``n`` images from ``prompt``. ``size`` / ``quality`` /
        ``output_format`` are sent only when given; other keywords (``background``,
        ``style``, ``response_format``...) pass through to the provider."""
        ctx = self._context(
            build_image_request(prompt, size=size, quality=quality, n=n,
                                output_format=output_format, **params),
            stream=False, kind=KIND_IMAGE,
        )
        return self._drive(ctx, image_attempt)

    async def agenerate_image(
        self,
        prompt: str,
        /,
        *,
        size: str | None = None,
        quality: str | None = None,
        n: int = 1,
        output_format: str | None = None,
        **params: Any,
    ) -> ImageResponse:
        ctx = self._context(
            build_image_request(prompt, size=size, quality=quality, n=n,
                                output_format=output_format, **params),
            stream=False, kind=KIND_IMAGE,
        )
        return await self._adrive(ctx, image_attempt)

    def edit_image(
        self,
        image: Any,
        prompt: str,
        /,
        *,
        mask: Any = None,
        size: str | None = None,
        quality: str | None = None,
        n: int = 1,
        output_format: str | None = None,
        **params: Any,
    ) -> ImageResponse:
        """Edit ``image`` (bytes, a path, a tollway Image, or a list of them) as
        ``prompt`` says; ``mask`` marks where (OpenAI). OpenAI gpt-image / dall-e-2 and
        Gemini image models edit; Imagen does not."""
        ctx = self._context(
            build_image_request(prompt, image=image, mask=mask, size=size, quality=quality,
                                n=n, output_format=output_format, **params),
            stream=False, kind=KIND_IMAGE,
        )
        return self._drive(ctx, image_attempt)

    async def aedit_image(
        self,
        image: Any,
        prompt: str,
        /,
        *,
        mask: Any = None,
        size: str | None = None,
        quality: str | None = None,
        n: int = 1,
        output_format: str | None = None,
        **params: Any,
    ) -> ImageResponse:
        ctx = self._context(
            build_image_request(prompt, image=image, mask=mask, size=size, quality=quality,
                                n=n, output_format=output_format, **params),
            stream=False, kind=KIND_IMAGE,
        )
        return await self._adrive(ctx, image_attempt)

    def _drive(
        self, ctx: CallContext[Any], attempt: Callable[[Model, CallContext[Any], Deployment], Steps[T]]
    ) -> T:
        """Run ``attempt`` through the route (retries, failover) on the sync driver."""
        route = self._route
        if route.__class__ is SingleDeployment:
            return drive(attempt(self, ctx, route.deployment))
        return route.run(ctx, lambda dep: drive(attempt(self, ctx, dep)))

    async def _adrive(
        self, ctx: CallContext[Any], attempt: Callable[[Model, CallContext[Any], Deployment], Steps[T]]
    ) -> T:
        route = self._route
        if route.__class__ is SingleDeployment:
            return await adrive(attempt(self, ctx, route.deployment))
        return await route.arun(ctx, lambda dep: adrive(attempt(self, ctx, dep)))

    @property
    def deployments(self) -> list[Deployment]:
        return list(getattr(self._route, "deployments", []))

    @property
    def route(self) -> Route:
        return self._route

    # ------------------------------------------------------------------ shared steps

    def _context(
        self, request: RequestT, *, stream: bool, kind: CallKind = "model"
    ) -> CallContext[RequestT]:
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
            kind=kind,
        )

    @property
    def ledger(self) -> Ledger | None:
        if not self._ledger_resolved:
            spec = self._ledger_spec
            if spec is False:
                self._ledger = None
            elif spec is None or spec is True or isinstance(spec, str):
                from tollway.core.stores.open import shared_ledger

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

    def transport_for(self, dep: Deployment) -> Any:
        """The transport given to this Model, else the one the deployment's provider
        registered (in-process models), else the process's pooled HTTP transport."""
        transport = self._transport
        if transport is not None:
            return transport
        if dep.provider.in_process:
            local = registered_transport(dep.provider)
            if local is not None:
                return local
        return default_transport()

    def reserve(self, ctx: CallContext, dep: Deployment, t0: float) -> Steps[list[Hold]]:
        """Reserve on every guard; on a denial release what was taken, record it, raise."""
        if not self._guards:
            return _NO_HOLDS
        holds: list[Hold] = []
        try:
            for guard in self._guards:
                holds.append((yield Reserve(guard, ctx, dep)))
        except BaseException as exc:
            record = self.failure(ctx, dep, exc, t0) if isinstance(exc, errors.TollwayError) else None
            yield from self.conclude(ctx, holds, record, None)
            raise
        return holds

    def conclude(
        self, ctx: CallContext, holds: list[Hold], record: CallRecord | None,
        charge: tuple[Usage, int | None] | None,
    ) -> Steps[None]:
        """Write the attempt's row (if any) and end its holds: settled to ``charge``, or
        released when it is None (see :class:`~tollway.core.effects.SettleAndWrite` for
        the order and the one-transaction case)."""
        ledger = self.ledger if record is not None else None
        if holds or ledger is not None:
            usage, cost = charge if charge is not None else (None, None)
            yield SettleAndWrite(holds, ledger, record, usage, cost, ctx.trace_id)

    def finish(
        self, ctx: CallContext[Request], dep: Deployment, response: Response, t0: float, ttft: float | None
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
        response.cost_nanos = self.price(dep, response.usage, response.model)
        if self.ledger is None:
            return None
        record = self.call_row(ctx, dep, t0, status="ok")
        record.request_id = response.id or None
        record.usage = response.usage
        record.cost_nanos = response.cost_nanos
        record.ttft_ms = None if ttft is None else ttft * 1000.0
        return record

    def price(self, dep: Deployment, usage: Usage, reported_model: str | None = None) -> int | None:
        """nano-USD for ``usage`` on ``dep``; by the model the provider reports when the
        provider row says its target names a deployment (Azure)."""
        model = dep.model
        if dep.provider.price_by_reported_model and reported_model:
            model = reported_model
        return self.prices.price(dep.provider.name, model, usage, deployment=dep.name)

    def call_row(self, ctx: CallContext, dep: Deployment, t0: float, *, status: str) -> CallRecord:
        """The ledger row of an attempt on ``dep`` begun at ``t0``, attribution filled."""
        record = CallRecord(
            time=ctx.started_at,
            kind=ctx.kind,
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

    def failure(self, ctx: CallContext, dep: Deployment, exc: BaseException, t0: float) -> CallRecord:
        """Note a failed attempt on the context and build its ledger row."""
        cancelled = isinstance(exc, Cancelled) or not isinstance(exc, Exception)
        status = "cancelled" if cancelled else type(exc).__name__
        code = getattr(exc, "status", None)
        ctx.attempts.append(Attempt(dep.name, f"{status}: {exc}"[:300], code))
        if ctx.span is not None:
            ctx.span.attempt_failed(dep, exc)
        record = self.call_row(ctx, dep, t0, status=status)
        record.error = errors.scrub(str(exc), 300)
        return record

    # ------------------------------------------------------------------ one attempt

    def _attempt(self, ctx: CallContext[Request], dep: Deployment) -> Steps[Response]:
        """One non-streamed try on ``dep``: reserve, send, parse, price, settle, record."""
        t0 = time.perf_counter()
        holds = yield from self.reserve(ctx, dep, t0)
        try:
            raw = yield Post(
                self.transport_for(dep), dep,
                dep.dialect.build_request(ctx.request, dep.model, stream=False),
            )
            response = parse(dep, ctx.request, raw.status, raw.headers, raw.body)
        except BaseException as exc:
            yield from self.conclude(ctx, holds, self.failure(ctx, dep, exc, t0), None)
            raise
        record = self.finish(ctx, dep, response, t0, None)
        yield from self.conclude(ctx, holds, record, (response.usage, response.cost_nanos))
        return response


def parse(dep: Deployment, request: Request, status: int, headers: Any, body: bytes) -> Response:
    return dep.dialect.parse_response(
        answer_body(dep, dep.dialect, status, headers, body), request, dep.model
    )


def _assemble(target: str, config: Any, **options: Any) -> Assembled:
    if config is False:
        from tollway.core.assembly import Assembled
        from tollway.core.providers import resolve_deployment

        return Assembled(SingleDeployment(resolve_deployment(target, **options)))
    from tollway.core.assembly import assemble

    return assemble(target, None if config is _UNSET else config, **options)
