"""The seams where routing, budgets and the ledger plug into a model call.

The Model facade composes these; each later capability implements one protocol and
never reshapes the Model API. Kept in one small module so the contract is easy to read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from tollway.core.media_types import CallKind, EmbeddingRequest, FeeRequest, ImageRequest
from tollway.core.types import Attempt, Request, Usage

if TYPE_CHECKING:
    from tollway.core.cost.attribution import Attribution
    from tollway.core.providers import Deployment

T = TypeVar("T")
RequestT = TypeVar("RequestT", Request, EmbeddingRequest, ImageRequest, FeeRequest)


@dataclass(slots=True)
class CallContext(Generic[RequestT]):
    """Everything known about one logical call (all its attempts share it): a chat
    ``Request``, or an embedding / image request (``kind`` says which)."""

    request: RequestT
    attribution: Attribution
    trace_id: str
    stream: bool
    alias: str | None
    started: float
    """time.perf_counter() at the start of the call."""
    started_at: datetime
    attempts: list[Attempt] = field(default_factory=list)
    kind: CallKind = "model"
    """The ledger kind of the call: ``model`` (chat), ``embedding`` or ``image``."""
    span: Any = None
    """The call's telemetry span (``core/telemetry``) while telemetry is on, else None."""


class Route(Protocol):
    """Chooses deployments and runs attempts on them (retries, failover, fallbacks).

    ``attempt(deployment)`` performs one try and either returns the result or raises; a
    route decides from the error whether to try again elsewhere. For streams the attempt
    returns a stream already primed up to its first token, so failing over is only
    possible before anything reached the caller.
    """

    def run(self, ctx: CallContext, attempt: Callable[[Deployment], T]) -> T: ...

    async def arun(self, ctx: CallContext, attempt: Callable[[Deployment], Awaitable[T]]) -> T: ...


class Hold(Protocol):
    """A reservation taken before a call; exactly one of settle / release ends it."""

    def settle(self, usage: Usage, cost_nanos: int | None) -> None: ...

    def release(self) -> None: ...

    async def asettle(self, usage: Usage, cost_nanos: int | None) -> None: ...

    async def arelease(self) -> None: ...


class Guard(Protocol):
    """Admission control before an attempt (budgets, allowed hours, rate limits).

    Raises BudgetExceededError / OutsideAllowedHoursError to deny, else returns a Hold.
    """

    def reserve(self, ctx: CallContext, deployment: Deployment) -> Hold: ...

    async def areserve(self, ctx: CallContext, deployment: Deployment) -> Hold: ...
