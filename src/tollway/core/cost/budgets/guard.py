"""Budgets, rate limits and allowed hours, enforced by reservation.

``Budgets`` is a Guard (``core/hooks.py``): the Model calls :meth:`Budgets.reserve`
before each attempt. It

1. checks allowed hours (deny, or reroute to another alias);
2. finds every budget and rate limit the call falls in (all scopes, so hierarchies need
   nothing special) and the counter of the current period for each;
3. computes the call's upper bound (:mod:`tollway.core.cost.estimate`) and reserves it
   on ALL those counters in one atomic store operation: either every counter has room
   (``spent + reserved + amount <= limit``) and all are reserved, or none is and
   BudgetExceededError names the first that had none. The provider is never called on
   a denial.

The returned Hold settles to the real amount after the call (``settle``) or gives the
reservation back on failure (``release``). A reservation carries a TTL (default 10 min,
``reservation_ttl``): if its holder dies, the store sweeps it and the room comes back,
so budgets never leak. A call that outlives the TTL still settles its real cost.

Counters are keyed by (budget id, scope label, period start). Each keeps ``spent`` and
``reserved`` (in flight) plus running totals ``reserved_total``, ``released_total``,
``overrun_total`` so ``reserved_total == spent - overrun_total + released_total +
reserved`` can be checked after any run (the tests do).

Units: USD counters hold integer nano-USD, token and request counters whole counts.
"""


from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tollway.core.cost.estimate import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    Bound,
    embedding_bound,
    image_bound,
    upper_bound,
)
from tollway.core.cost.policy import (
    BudgetPolicy,
    HoursPolicy,
    RateLimitPolicy,
    SoftLimitEvent,
)
from tollway.core.errors import BudgetExceededError, ConfigError, OutsideAllowedHoursError
from tollway.core.media_types import EmbeddingRequest, ImageRequest
from tollway.core.types import Usage

if TYPE_CHECKING:
    from tollway.core.cost.pricing import ModelPrice, PriceBook
    from tollway.core.hooks import CallContext, Hold
    from tollway.core.providers import Deployment
from tollway.core.cost.budgets.contract import (
    DEFAULT_RESERVATION_TTL,
    BudgetStore,
    Charge,
    CounterState,
    Denial,
    counter_key,
)
from tollway.core.cost.budgets.rules import _coerce, _HoursRule, _Rule, _rules_of
from tollway.core.cost.budgets.status import BudgetRow, _reset_time
from tollway.core.errors import RateLimitExceededError, UnpricedModelDeniedError

log = logging.getLogger("tollway.budgets")


class _HoldIds:
    """Hold ids unique across every process sharing a store: 12 random bytes drawn once
    per process (again in a forked child) and a counter. ``secrets.token_hex`` per call
    would cost a system call on every reservation."""

    def __init__(self) -> None:
        self.reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(12)
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self.counter)}"


_new_hold_id = _HoldIds()


class Budgets:
    """A Guard enforcing budgets, rate limits and allowed hours (see the module doc).

    ``Model(..., guards=[Budgets([BudgetPolicy(scope={"user": "each"}, limit=5,
    period="day")], store=SQLiteBudgetStore("budgets.db"))])``. Policies may be given as
    policy objects or as the mappings tollway.yaml uses. ``store`` defaults to a
    :class:`~tollway.core.cost.budgets.memory.MemoryBudgetStore` (one process);
    ``prices`` to the default PriceBook; ``clock`` (epoch seconds) to ``time.time``.
    """

    def __init__(
        self,
        policies: Iterable[BudgetPolicy | Mapping[str, Any]] = (),
        *,
        hours: Iterable[HoursPolicy | Mapping[str, Any]] = (),
        rate_limits: Iterable[RateLimitPolicy | Mapping[str, Any]] = (),
        store: BudgetStore | None = None,
        prices: PriceBook | None = None,
        clock: Callable[[], float] = time.time,
        reservation_ttl: float = DEFAULT_RESERVATION_TTL,
        default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        on_soft_limit: Callable[[SoftLimitEvent], Any] | None = None,
    ) -> None:
        if reservation_ttl <= 0:
            raise ConfigError("reservation_ttl must be a positive number of seconds")
        self.policies: list[BudgetPolicy] = _coerce(policies, BudgetPolicy)
        self.rate_limits: list[RateLimitPolicy] = _coerce(rate_limits, RateLimitPolicy)
        self.hours: list[HoursPolicy] = _coerce(hours, HoursPolicy)
        self._rules = _rules_of(self.policies, self.rate_limits)
        self._soft = any(rule.soft is not None for rule in self._rules)
        """Whether any rule has a soft threshold (settles skip the check otherwise)."""
        self._hours = [_HoursRule(h) for h in self.hours]
        if store is None:
            from tollway.core.cost.budgets.memory import MemoryBudgetStore

            store = MemoryBudgetStore()
        self.store: BudgetStore = store
        self._prices = prices
        self._clock = clock
        self.reservation_ttl = float(reservation_ttl)
        self.default_max_output_tokens = default_max_output_tokens
        self.on_soft_limit = on_soft_limit

    def __repr__(self) -> str:
        return (
            f"Budgets({len(self.policies)} budget(s), {len(self.rate_limits)} rate limit(s), "
            f"{len(self.hours)} hours polic(ies), store={type(self.store).__name__})"
        )

    @property
    def prices(self) -> PriceBook:
        if self._prices is None:
            from tollway.core.cost.pricing import default_pricebook

            self._prices = default_pricebook()
        return self._prices

    # ------------------------------------------------------------------ Guard

    def reserve(self, ctx: CallContext, deployment: Deployment) -> Hold:
        now = self._clock()
        if self._hours:
            self._check_hours(ctx, deployment, now)
        rules, charges = self._charges(ctx, deployment, now)
        if not charges:
            return _NO_HOLD
        hold_id = _new_hold_id()
        denial = self.store.reserve(hold_id, charges, now + self.reservation_ttl, now)
        if denial is not None:
            raise self._denied(rules[denial.index], charges[denial.index], denial, now)
        return BudgetHold(self, hold_id, rules, charges)

    async def areserve(self, ctx: CallContext, deployment: Deployment) -> Hold:
        now = self._clock()
        if self._hours:
            self._check_hours(ctx, deployment, now)
        rules, charges = self._charges(ctx, deployment, now)
        if not charges:
            return _NO_HOLD
        hold_id = _new_hold_id()
        denial = await self.store.areserve(hold_id, charges, now + self.reservation_ttl, now)
        if denial is not None:
            raise self._denied(rules[denial.index], charges[denial.index], denial, now)
        return BudgetHold(self, hold_id, rules, charges)

    # ------------------------------------------------------------------ steps

    def _check_hours(self, ctx: CallContext, dep: Deployment, now: float) -> None:
        at: datetime | None = None
        for rule in self._hours:
            label = rule.scope.match(ctx, dep)
            if label is None:
                continue
            if rule.reroute_to is not None and ctx.alias == rule.reroute_to:
                continue
            if at is None:
                at = datetime.fromtimestamp(now, UTC)
            schedule = rule.schedule
            if not schedule.is_open(at):
                what = "all calls" if label == "all" else label
                raise OutsideAllowedHoursError(
                    what, schedule.text, schedule.next_open(at),
                    policy=rule.id, reroute_to=rule.reroute_to,
                )

    def _charges(
        self, ctx: CallContext, dep: Deployment, now: float
    ) -> tuple[list[_Rule], list[Charge]]:
        rules: list[_Rule] = []
        charges: list[Charge] = []
        bound: Bound | None = None
        for rule in self._rules:
            label = rule.scope.match(ctx, dep)
            if label is None:
                continue
            unit = rule.unit
            start, end = rule.bounds(now)
            if unit == "requests":
                amount = 1
            else:
                if bound is None:
                    bound = self._bound(ctx, dep)
                if unit == "usd":
                    if bound.cost_nanos is not None:
                        amount = bound.cost_nanos
                    elif rule.unpriced_allow:
                        amount = 0
                    else:
                        raise self._unpriced(rule, label, end, dep)
                elif unit == "tokens":
                    amount = bound.input_tokens + bound.output_tokens
                elif unit == "input_tokens":
                    amount = bound.input_tokens
                else:
                    amount = bound.output_tokens
            rules.append(rule)
            charges.append(Charge(
                f"{rule.id}|{label}|{start}", rule.id, label, start, end, rule.limit, amount
            ))
        return rules, charges

    def _bound(self, ctx: CallContext, dep: Deployment) -> Bound:
        price: ModelPrice | None = self.prices.model_price(
            dep.provider.name, dep.model, deployment=dep.name
        )
        request = ctx.request
        if isinstance(request, EmbeddingRequest):
            return embedding_bound(request, price)
        if isinstance(request, ImageRequest):
            return image_bound(request, price)
        return upper_bound(
            request, price, default_max_output_tokens=self.default_max_output_tokens
        )

    def _unpriced(
        self, rule: _Rule, label: str, end: int | None, dep: Deployment
    ) -> UnpricedModelDeniedError:
        return UnpricedModelDeniedError(
            rule.display(label), rule.human(rule.limit), _reset_time(end, rule.tz),
            model=f"{dep.provider.name}/{dep.model}", budget=rule.id,
        )

    def _denied(self, rule: _Rule, charge: Charge, denial: Denial, now: float) -> BudgetExceededError:
        resets_at = _reset_time(charge.period_end, rule.tz)
        args = (
            rule.display(charge.scope), rule.human(rule.limit), rule.human(denial.spent),
            rule.human(denial.reserved), resets_at,
        )
        if rule.kind == "rate_limit":
            retry = max(0.0, (charge.period_end or now) - now)
            return RateLimitExceededError(
                *args, unit=rule.unit, requested=rule.human(charge.amount), retry_after=retry,
                budget=rule.id,
            )
        return BudgetExceededError(
            *args, unit=rule.unit, requested=rule.human(charge.amount), budget=rule.id
        )

    def _settled(
        self, rules: Sequence[_Rule], charges: Sequence[Charge], actuals: Sequence[int],
        spent: Sequence[int],
    ) -> None:
        """Fire soft-threshold events for counters this settle carried across them."""
        for rule, charge, actual, after in zip(rules, charges, actuals, spent, strict=True):
            soft = rule.soft
            if soft is None or not (after - actual < soft <= after):
                continue
            event = SoftLimitEvent(
                budget=rule.id, scope=charge.scope, unit=rule.unit,
                limit=rule.human(rule.limit), spent=rule.human(after),
                threshold=rule.soft_fraction or 0.0,
                period_start=charge.period_start, period_end=charge.period_end,
            )
            log.warning(
                "tollway: budget %s reached %.0f%% of its limit: %g of %g %s",
                rule.display(charge.scope), event.threshold * 100, event.spent, event.limit,
                rule.unit,
            )
            for callback in (rule.on_soft, self.on_soft_limit):
                if callback is None:
                    continue
                try:
                    callback(event)
                except Exception:  # a failing callback must not fail a paid call
                    log.exception("tollway: soft-limit callback for %s failed", rule.id)

    # ------------------------------------------------------------------ status

    def status(self, now: float | None = None) -> list[BudgetRow]:
        """One row per budget / rate-limit counter of the current period (see
        :func:`budget_status`)."""
        now = self._clock() if now is None else now
        return self._rows(self.store.counters(now), now)

    async def astatus(self, now: float | None = None) -> list[BudgetRow]:
        now = self._clock() if now is None else now
        return self._rows(await self.store.acounters(now), now)

    def _rows(self, counters: Sequence[CounterState], now: float) -> list[BudgetRow]:
        by_budget: dict[str, dict[str, CounterState]] = {}
        for state in counters:
            by_budget.setdefault(state.budget, {})[state.key] = state
        rows: list[BudgetRow] = []
        for rule in self._rules:
            start, end = rule.bounds(now)
            current = [s for s in by_budget.get(rule.id, {}).values() if s.period_start == start]
            fixed = rule.scope.fixed_label()
            if rule.scope.per_value:
                missing = not current  # an "each" budget no value has used yet
            else:
                missing = all(s.scope != fixed for s in current)
            if missing:
                current.append(CounterState(
                    counter_key(rule.id, fixed, start), rule.id, fixed, start, end, rule.limit
                ))
            for state in sorted(current, key=lambda s: s.scope):
                rows.append(BudgetRow.of(rule, state, start, end))
        return rows

    def close(self) -> None:
        self.store.close()


class BudgetHold:
    """The reservations of one attempt; exactly one of settle / release takes effect
    (later calls are no-ops, so a double settle never double-counts)."""

    __slots__ = ("_done", "charges", "guard", "hold_id", "rules")

    def __init__(self, guard: Budgets, hold_id: str, rules: list[_Rule],
                 charges: list[Charge]) -> None:
        self.guard = guard
        self.hold_id = hold_id
        self.rules = rules
        self.charges = charges
        self._done = False

    def _actuals(self, usage: Usage, cost_nanos: int | None) -> list[int]:
        if len(self.rules) == 1:
            return [self.rules[0].actual(self.charges[0], usage, cost_nanos)]
        return [
            rule.actual(charge, usage, cost_nanos)
            for rule, charge in zip(self.rules, self.charges, strict=True)
        ]

    def settle(self, usage: Usage, cost_nanos: int | None) -> None:
        if self._done:
            return
        self._done = True
        guard = self.guard
        actuals = self._actuals(usage, cost_nanos)
        spent = guard.store.settle(self.hold_id, self.charges, actuals, guard._clock())
        if guard._soft:
            guard._settled(self.rules, self.charges, actuals, spent)

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        self.guard.store.release(self.hold_id, self.charges, self.guard._clock())

    async def asettle(self, usage: Usage, cost_nanos: int | None) -> None:
        if self._done:
            return
        self._done = True
        guard = self.guard
        actuals = self._actuals(usage, cost_nanos)
        spent = await guard.store.asettle(self.hold_id, self.charges, actuals, guard._clock())
        if guard._soft:
            guard._settled(self.rules, self.charges, actuals, spent)

    async def arelease(self) -> None:
        if self._done:
            return
        self._done = True
        await self.guard.store.arelease(self.hold_id, self.charges, self.guard._clock())


class _NoHold:
    """The hold of a call no budget applies to."""

    __slots__ = ()

    def settle(self, usage: Usage, cost_nanos: int | None) -> None:
        return None

    def release(self) -> None:
        return None

    async def asettle(self, usage: Usage, cost_nanos: int | None) -> None:
        return None

    async def arelease(self) -> None:
        return None


_NO_HOLD = _NoHold()
