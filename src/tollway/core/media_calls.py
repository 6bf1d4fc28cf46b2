"""Embedding and image calls: the steps of a chat attempt (``core/model.py``) over the
one or more HTTP exchanges such a call takes.

An attempt reserves on every guard, sends each exchange the dialect planned (embedding
batches, one request per Gemini image), parses and merges the answers in order, prices
the merged usage, settles and writes one ledger row of its ``kind``. Written once as
steps (``core/effects.py``), so the sync and async drivers share it.

Nothing paid for goes unrecorded: when a later exchange fails after earlier ones were
answered, the holds settle at what the answered ones cost and the failure row carries
their usage and cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tollway.core import errors, json_codec
from tollway.core.effects import Post, Steps
from tollway.core.media_types import (
    EmbeddingRequest,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
)
from tollway.core.providers import embedding_dialect_for, image_dialect_for
from tollway.core.types import Usage

if TYPE_CHECKING:
    from tollway.core.dialects.base import EmbeddingDialect, Exchange, ImageDialect
    from tollway.core.hooks import CallContext
    from tollway.core.model import Model
    from tollway.core.providers import Deployment

__all__ = ["answer_body", "embedding_attempt", "image_attempt", "merge_embeddings", "merge_images"]

R = TypeVar("R", EmbeddingResponse, ImageResponse)


class ErrorReader(Protocol):
    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> errors.ProviderError: ...


def merge_embeddings(parts: Sequence[EmbeddingResponse]) -> EmbeddingResponse:
    """The batches' answers as one, vectors in batch order, usage summed."""
    first = parts[0]
    if len(parts) == 1:
        return first
    usage = Usage(requests=0)
    vectors: list[list[float]] = []
    for part in parts:
        vectors.extend(part.vectors)
        usage = usage + part.usage
    return EmbeddingResponse(
        vectors=vectors, model=first.model, provider=first.provider, usage=usage,
        usage_estimated=any(p.usage_estimated for p in parts),
    )


def merge_images(parts: Sequence[ImageResponse]) -> ImageResponse:
    """The requests' images as one answer, usage summed."""
    first = parts[0]
    if len(parts) == 1:
        return first
    usage = Usage(requests=0)
    for part in parts:
        usage = usage + part.usage
    return ImageResponse(
        images=[image for part in parts for image in part.images], model=first.model,
        provider=first.provider, usage=usage, size=first.size, quality=first.quality,
        text="".join(p.text for p in parts), provider_data=first.provider_data,
    )


def answer_body(
    dep: Deployment, dialect: ErrorReader, status: int, headers: Any, body: bytes
) -> dict[str, Any]:
    """The JSON object of an answer, or the typed error it is (an error status read by
    the dialect; a body that is not a JSON object: ServerError). Chat calls share it."""
    if status >= 400:
        raise dialect.parse_error(status, body, headers).with_context(
            provider=dep.provider.name, model=dep.model, deployment=dep.name
        )
    try:
        data = json_codec.loads(body)
    except ValueError:
        raise errors.ServerError(
            "the provider answered with a body that is not JSON", status=status,
            provider=dep.provider.name, model=dep.model, deployment=dep.name,
            body=body[:200].decode("utf-8", "replace"),
        ) from None
    if not isinstance(data, dict):
        raise errors.ServerError(
            "the provider answered with JSON that is not an object", status=status,
            provider=dep.provider.name, model=dep.model, deployment=dep.name,
        )
    return data


def _attempt(
    model: Model,
    ctx: CallContext[Any],
    dep: Deployment,
    dialect: EmbeddingDialect | ImageDialect,
    plan: Callable[[], list[Exchange]],
    parse: Callable[[dict[str, Any], Exchange], R],
    merge: Callable[[Sequence[R]], R],
) -> Steps[R]:
    t0 = time.perf_counter()
    holds = yield from model.reserve(ctx, dep, t0)
    parts: list[R] = []
    try:
        transport = model.transport_for(dep)
        for exchange in plan():
            raw = yield Post(transport, dep, exchange.http)
            try:
                parts.append(parse(answer_body(dep, dialect, raw.status, raw.headers, raw.body), exchange))
            except errors.ProviderError as exc:
                raise exc.with_context(
                    provider=dep.provider.name, model=dep.model, deployment=dep.name
                ) from None
        result = merge(parts)
    except BaseException as exc:
        paid = merge(parts) if parts else None
        cost = None if paid is None else model.price(dep, paid.usage, paid.model)
        row = model.failure(ctx, dep, exc, t0)
        if paid is not None:
            row.usage, row.cost_nanos = paid.usage, cost
        yield from model.conclude(ctx, holds, row, None if paid is None else (paid.usage, cost))
        raise
    result.provider = dep.provider.name
    result.deployment = dep.name
    result.latency = time.perf_counter() - t0
    result.trace_id = ctx.trace_id
    result.attempts = ctx.attempts
    result.attribution = ctx.attribution.as_dict()
    result.cost_nanos = model.price(dep, result.usage, result.model)
    done = None
    if model.ledger is not None:
        done = model.call_row(ctx, dep, t0, status="ok")
        done.usage = result.usage
        done.cost_nanos = result.cost_nanos
    yield from model.conclude(ctx, holds, done, (result.usage, result.cost_nanos))
    return result


def embedding_attempt(
    model: Model, ctx: CallContext[EmbeddingRequest], dep: Deployment
) -> Steps[EmbeddingResponse]:
    """One try of an embedding call on ``dep`` (all its batches)."""
    request = ctx.request
    dialect: EmbeddingDialect = embedding_dialect_for(dep.provider)
    return _attempt(
        model, ctx, dep, dialect,
        lambda: dialect.exchanges(request, dep.model),
        lambda body, exchange: dialect.parse_response(body, exchange, dep.model),
        merge_embeddings,
    )


def image_attempt(
    model: Model, ctx: CallContext[ImageRequest], dep: Deployment
) -> Steps[ImageResponse]:
    """One try of an image call on ``dep`` (all its requests)."""
    request = ctx.request
    dialect: ImageDialect = image_dialect_for(dep.provider, dep.model)
    return _attempt(
        model, ctx, dep, dialect,
        lambda: dialect.exchanges(request, dep.model),
        lambda body, exchange: dialect.parse_response(body, exchange, request, dep.model),
        merge_images,
    )
