"""Aliases -> deployments: retries, failover, fallbacks, balancing, cooldown.

``Model("smart")`` gets a :class:`Router` over the deployments tollway.yaml lists for
``smart``; ``Model("openai/gpt-4o")`` gets the deployment itself (a config still adds
its guards, ledger and prices). The router implements the ``Route`` protocol of
``core/hooks.py``: the Model hands it ``attempt(deployment)`` (one try: guard
reservation, HTTP, parsing, ledger row) and the router decides, from what each attempt
raised, where the next one goes:

- a retryable failure (429, 5xx, 529, timeouts, connection and stream errors) moves
  IMMEDIATELY to a different ready deployment; the router sleeps (exponential backoff
  with full jitter, at least the Retry-After, capped) only once every candidate of the
  round, fallbacks included, has been tried;
- a deployment that fails ``allowed_fails`` times in a row cools down (circuit
  breaker with a half-open probe), shared by every Model built from the same config;
- 401/403/404 skip that deployment for the call; 400 / context window / content filter
  end the alias (its other deployments would refuse the same request) and only a
  fallback rule for that error class continues the call;
- a guard's BudgetExceededError / OutsideAllowedHoursError skips the deployment like a
  cooling one (when no deployment can serve, the first such error itself is raised);
  an hours error's ``reroute_to`` continues the call on that alias.

Before each attempt ``ctx.alias`` is set to the alias the deployment belongs to, so a
fallback's or reroute's ledger rows and guards see the alias that actually served.

Streams need nothing special: a stream's attempt returns once its first token arrived,
so a failure before it fails over and one after it reaches the caller.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tollway.core import errors
from tollway.core.routing.health import HealthBoard
from tollway.core.routing.plan import CallPlan, Fail, FallbackRule, RoutePolicy, Sleep

if TYPE_CHECKING:
    from tollway.core.cost.pricing import PriceBook
    from tollway.core.hooks import CallContext
    from tollway.core.providers import Deployment

__all__ = ["DirectRoute", "FallbackRule", "RoutePolicy", "Router", "SingleDeployment"]

T = TypeVar("T")

_RNG = random.Random()
"""Shared by routers that are not given one (seeding a Random costs more than routing)."""


class Router:
    """Routes one alias (and its fallback chain) over a shared health board.

    ``aliases`` maps every alias the call may reach to its deployments; ``fallbacks``
    maps an alias to its ordered fallback rules. ``clock`` / ``sleep`` / ``asleep`` /
    ``rng`` are injectable so tests can drive time; the defaults are the real ones.
    """

    def __init__(
        self,
        alias: str,
        aliases: Mapping[str, Sequence[Deployment]],
        *,
        fallbacks: Mapping[str, Sequence[FallbackRule]] | None = None,
        policy: RoutePolicy | None = None,
        board: HealthBoard | None = None,
        prices: PriceBook | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if alias not in aliases:
            raise errors.ConfigError(f"alias {alias!r} has no deployments")
        self.alias = alias
        self.aliases = aliases
        self.fallbacks: Mapping[str, Sequence[FallbackRule]] = fallbacks or {}
        self.policy = policy = policy or RoutePolicy()
        self.board = board or HealthBoard(retry_after_cap=policy.retry_after_cap)
        self.prices = prices
        self.clock = clock
        self.sleep = sleep
        self.asleep = asleep
        self.rng = rng or _RNG
        self._costs: dict[int, int | None] = {}

    def __repr__(self) -> str:
        return f"Router({self.alias!r}, deployments={[d.name for d in self.deployments]})"

    @property
    def deployments(self) -> list[Deployment]:
        return list(self.aliases[self.alias])

    def _plan(self, ctx: CallContext) -> CallPlan:
        return CallPlan(
            self.alias, self.aliases, self.fallbacks, self.policy, self.board, self.rng,
            self._cost_of, self.clock(),
        )

    def run(self, ctx: CallContext, attempt: Callable[[Deployment], T]) -> T:
        plan = self._plan(ctx)
        clock = self.clock
        while True:
            step = plan.next(clock())
            if isinstance(step, Sleep):
                self.sleep(step.seconds)
                continue
            if isinstance(step, Fail):
                raise step.error
            dep = step.deployment
            ctx.alias = plan.current  # the alias this attempt serves (fallbacks, reroutes)
            t0 = clock()
            try:
                result = attempt(dep)
            except errors.TollwayError as exc:
                if not plan.failed(dep, exc, clock()):
                    raise
                continue
            except BaseException:
                plan.abandoned(dep)
                raise
            now = clock()
            plan.succeeded(dep, now, now - t0, _tokens(result))
            return result

    async def arun(self, ctx: CallContext, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        plan = self._plan(ctx)
        clock = self.clock
        while True:
            step = plan.next(clock())
            if isinstance(step, Sleep):
                await self.asleep(step.seconds)
                continue
            if isinstance(step, Fail):
                raise step.error
            dep = step.deployment
            ctx.alias = plan.current
            t0 = clock()
            try:
                result = await attempt(dep)
            except errors.TollwayError as exc:
                if not plan.failed(dep, exc, clock()):
                    raise
                continue
            except BaseException:  # cancelled: no verdict on the deployment
                plan.abandoned(dep)
                raise
            now = clock()
            plan.succeeded(dep, now, now - t0, _tokens(result))
            return result

    def _cost_of(self, dep: Deployment) -> int | None:
        """A comparable price (nano-USD per million input + output tokens), or None."""
        key = id(dep)
        if key in self._costs:
            return self._costs[key]
        prices = self.prices
        if prices is None:
            from tollway.core.cost.pricing import default_pricebook

            prices = self.prices = default_pricebook()
        price = prices.model_price(dep.provider.name, dep.model, deployment=dep.name)
        cost = None if price is None else price.input + price.output
        self._costs[key] = cost
        return cost


def _tokens(result: Any) -> int | None:
    usage = getattr(result, "usage", None)
    return getattr(usage, "total_tokens", None)


class DirectRoute:
    """A ``provider/model`` target under a config: one deployment, one attempt, errors
    reach the caller unchanged (as without a config); follows an hours guard's ``reroute_to`` alias."""

    def __init__(
        self,
        deployment: Deployment,
        reroute: Callable[[str], Router | None],
    ) -> None:
        self.deployment = deployment
        self._reroute = reroute

    @property
    def deployments(self) -> list[Deployment]:
        return [self.deployment]

    def run(self, ctx: CallContext, attempt: Callable[[Deployment], T]) -> T:
        try:
            return attempt(self.deployment)
        except errors.OutsideAllowedHoursError as exc:
            route = self._rerouted(exc)
            if route is None:
                raise
        return route.run(ctx, attempt)

    async def arun(self, ctx: CallContext, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        try:
            return await attempt(self.deployment)
        except errors.OutsideAllowedHoursError as exc:
            route = self._rerouted(exc)
            if route is None:
                raise
        return await route.arun(ctx, attempt)

    def _rerouted(self, exc: errors.OutsideAllowedHoursError) -> Router | None:
        target = exc.reroute_to
        return None if target is None else self._reroute(target)


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

