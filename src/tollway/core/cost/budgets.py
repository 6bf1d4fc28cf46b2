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
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import ValidationError

from tollway.core.cost.estimate import DEFAULT_MAX_OUTPUT_TOKENS, Bound, upper_bound
from tollway.core.cost.policy import (
    BudgetPolicy,
    HoursPolicy,
    RateLimitPolicy,
    Scope,
    SoftLimitEvent,
)
from tollway.core.cost.windows import AllowedHours, period_bounds, zone
from tollway.core.errors import BudgetExceededError, ConfigError, OutsideAllowedHoursError
from tollway.core.types import NANOS_PER_USD, Usage

if TYPE_CHECKING:
    from tollway.core.cost.pricing import ModelPrice, PriceBook
    from tollway.core.hooks import CallContext, Guard, Hold
    from tollway.core.providers import Deployment

__all__ = [
    "DEFAULT_RESERVATION_TTL",
    "BudgetRow",
    "BudgetStore",
    "Budgets",
    "Charge",
    "CounterState",
    "Denial",
    "RateLimitExceededError",
    "UnpricedModelDeniedError",
    "budget_status",
    "guards_from_config",
    "open_budget_store",
]

log = logging.getLogger("tollway.budgets")

DEFAULT_RESERVATION_TTL = 600.0
"""Seconds a reservation lives without being settled or released (a crashed holder's
reservation is freed after this). Set it above your longest call."""


# =========================================================================== store contract


@dataclass(slots=True)
class Charge:
    """One counter a reservation touches, and the amount reserved on it."""

    key: str
    """``budget|scope|period_start``: unique per counter."""
    budget: str
    scope: str
    period_start: int
    period_end: int | None
    """Epoch seconds; None for ``total`` budgets (never reset)."""
    limit: int
    amount: int


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a reservation failed: the index of the first charge without room and what
    its counter held."""

    index: int
    spent: int
    reserved: int


@dataclass(slots=True)
class CounterState:
    """A counter as stored (amounts in counter units: nano-USD, tokens or requests)."""

    key: str
    budget: str
    scope: str
    period_start: int
    period_end: int | None
    limit: int
    spent: int = 0
    reserved: int = 0
    reserved_total: int = 0
    released_total: int = 0
    overrun_total: int = 0


class BudgetStore(Protocol):
    """Where counters live. Every method is atomic on its own; the four stores
    (memory, sqlite, redis, postgres) implement exactly these semantics:

    - ``reserve``: sweep holds whose ``expires_at <= now`` (their amounts go back:
      ``reserved -= a``, ``released_total += a``), then if every charge fits
      (``spent + reserved + amount <= limit``) add each amount to ``reserved`` and
      ``reserved_total``, remember them under ``hold_id`` and return None; else change
      nothing (but the sweep) and return the Denial of the first charge that did not fit.
    - ``settle``: for each charge, ``spent += actual``; if the hold still holds it,
      ``reserved -= amount``, ``released_total += amount - min(actual, amount)`` and
      ``overrun_total += actual - min(actual, amount)``; if it expired meanwhile,
      ``overrun_total += actual``. Returns the counters' ``spent`` after the settle, one
      per charge (soft thresholds use it: exactly one settle crosses a threshold).
    - ``release``: give the hold's amounts back (``reserved -= a``,
      ``released_total += a``); a no-op for an unknown or expired hold.
    - ``counters``: every counter whose period has not ended (expired holds swept).
    """

    def reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None: ...

    def settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float
    ) -> list[int]: ...

    def release(self, hold_id: str, charges: Sequence[Charge], now: float) -> None: ...

    def counters(self, now: float) -> list[CounterState]: ...

    async def areserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None: ...

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float
    ) -> list[int]: ...

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None: ...

    async def acounters(self, now: float) -> list[CounterState]: ...

    def close(self) -> None: ...


COUNTER_RETENTION = 3600
"""Seconds a counter is kept after its period ended (late settles still land in it)."""


def counter_key(budget: str, scope: str, period_start: int) -> str:
    return f"{budget}|{scope}|{period_start}"


# =========================================================================== errors


class RateLimitExceededError(BudgetExceededError):
    """A scope's requests or tokens per minute would be exceeded; ``retry_after`` is
    the seconds until the minute resets. The provider was not called."""

    def __init__(self, scope: str, limit: float, spent: float, reserved: float,
                 resets_at: datetime | None, *, unit: str, requested: float | None,
                 retry_after: float) -> None:
        super().__init__(scope, limit, spent, reserved, resets_at, unit=unit, requested=requested)
        self.retry_after = retry_after
        self.args = (
            f"rate limit for {scope} reached: {limit:g} {unit} per minute, used {spent:g}, "
            f"in flight {reserved:g}, this call needs up to {requested:g}; retry in "
            f"{retry_after:.0f}s",
        )


class UnpricedModelDeniedError(BudgetExceededError):
    """A USD budget applies to a call whose model has no known price, and the budget's
    ``unpriced`` policy is ``deny`` (an unknown cost cannot be bounded). Decided before
    the store is asked, so ``spent`` and ``reserved`` are not read (reported as 0)."""

    def __init__(self, scope: str, limit: float, resets_at: datetime | None, *,
                 model: str) -> None:
        super().__init__(scope, limit, 0, 0, resets_at, unit="usd")
        self.model = model
        self.args = (
            f"budget for {scope} counts USD but {model} has no known price, so the call "
            f"was not made; add a price for it under 'prices' in tollway.yaml, or set "
            f"'unpriced: allow' on the budget to let such calls through at 0 USD",
        )


# =========================================================================== engine


_PER = {
    "minute": "per minute",
    "hour": "per hour",
    "day": "per day",
    "week": "per week",
    "month": "per month",
    "total": "in total",
}


class _Rule:
    """A compiled budget or rate limit: integer limit, cached current period."""

    __slots__ = (
        "_window", "id", "kind", "limit", "named", "on_soft", "period", "scope", "soft",
        "soft_fraction", "tz", "unit", "unpriced_allow",
    )

    def __init__(
        self, *, id: str, named: bool, kind: Literal["budget", "rate_limit"], scope: Scope,
        unit: str, period: str, tz: tzinfo, limit: int, soft_fraction: float | None = None,
        unpriced_allow: bool = False, on_soft: Callable[[SoftLimitEvent], Any] | None = None,
    ) -> None:
        self.id = id
        self.named = named
        self.kind = kind
        self.scope = scope
        self.unit = unit
        self.period = period
        self.tz = tz
        self.limit = limit
        self.soft_fraction = soft_fraction
        self.soft = (
            None if soft_fraction is None else math.ceil(limit * Decimal(str(soft_fraction)))
        )
        self.unpriced_allow = unpriced_allow
        self.on_soft = on_soft
        self._window: tuple[int, int | None] = (0, -1)

    def bounds(self, now: float) -> tuple[int, int | None]:
        """The current period (cached until it ends)."""
        window = self._window
        end = window[1]
        if end is None or window[0] <= now < end:
            return window
        window = period_bounds(self.period, now, self.tz)
        self._window = window
        return window

    def human(self, amount: int) -> float:
        """Counter units as the policy's unit (nano-USD -> USD)."""
        return amount / NANOS_PER_USD if self.unit == "usd" else float(amount)

    def display(self, label: str) -> str:
        what = "all calls" if label == "all" else label
        if self.named:
            return f"'{self.id}' ({what} {_PER[self.period]})"
        return f"{what} {_PER[self.period]}"

    def actual(self, charge: Charge, usage: Usage, cost_nanos: int | None) -> int:
        unit = self.unit
        if unit == "usd":
            return charge.amount if cost_nanos is None else cost_nanos
        if unit == "tokens":
            return usage.input_tokens + usage.output_tokens
        if unit == "input_tokens":
            return usage.input_tokens
        if unit == "output_tokens":
            return usage.output_tokens
        return 1


class _HoursRule:
    __slots__ = ("id", "reroute_to", "schedule", "scope")

    def __init__(self, policy: HoursPolicy) -> None:
        self.id = policy.id
        self.scope = policy.scope
        self.schedule: AllowedHours = policy.schedule()
        self.reroute_to = policy.to if policy.action == "reroute" else None


def _rules_of(
    budgets: Iterable[BudgetPolicy], rate_limits: Iterable[RateLimitPolicy]
) -> list[_Rule]:
    rules: list[_Rule] = []
    for p in budgets:
        limit = int(p.limit * NANOS_PER_USD) if p.unit == "usd" else int(p.limit)
        rules.append(_Rule(
            id=p.id, named=p.name is not None, kind="budget", scope=p.scope, unit=p.unit,
            period=p.period, tz=zone(p.timezone), limit=limit, soft_fraction=p.soft_threshold,
            unpriced_allow=p.unpriced == "allow", on_soft=p.on_soft_limit,
        ))
    for r in rate_limits:
        if r.requests_per_minute is not None:
            rules.append(_Rule(
                id=f"{r.id}/requests", named=r.name is not None, kind="rate_limit",
                scope=r.scope, unit="requests", period="minute", tz=UTC,
                limit=r.requests_per_minute,
            ))
        if r.tokens_per_minute is not None:
            rules.append(_Rule(
                id=f"{r.id}/tokens", named=r.name is not None, kind="rate_limit",
                scope=r.scope, unit="tokens", period="minute", tz=UTC,
                limit=r.tokens_per_minute,
            ))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ConfigError(
                f"two budgets share the id {rule.id!r}; give them different 'name's"
            )
        seen.add(rule.id)
    return rules


def _coerce(items: Iterable[Any], model: type[Any]) -> list[Any]:
    return [item if isinstance(item, model) else model.model_validate(item) for item in items]


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
    :class:`~tollway.core.stores.memory_budgets.MemoryBudgetStore` (one process);
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
            from tollway.core.stores.memory_budgets import MemoryBudgetStore

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
                error = OutsideAllowedHoursError(what, schedule.text, schedule.next_open(at))
                error.reroute_to = rule.reroute_to  # type: ignore[attr-defined]
                error.policy = rule.id  # type: ignore[attr-defined]
                raise error

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
        return upper_bound(
            ctx.request, price, default_max_output_tokens=self.default_max_output_tokens
        )

    def _unpriced(
        self, rule: _Rule, label: str, end: int | None, dep: Deployment
    ) -> UnpricedModelDeniedError:
        error = UnpricedModelDeniedError(
            rule.display(label), rule.human(rule.limit), _reset_time(end, rule.tz),
            model=f"{dep.provider.name}/{dep.model}",
        )
        error.budget = rule.id  # type: ignore[attr-defined]
        return error

    def _denied(self, rule: _Rule, charge: Charge, denial: Denial, now: float) -> BudgetExceededError:
        resets_at = _reset_time(charge.period_end, rule.tz)
        args = (
            rule.display(charge.scope), rule.human(rule.limit), rule.human(denial.spent),
            rule.human(denial.reserved), resets_at,
        )
        error: BudgetExceededError
        if rule.kind == "rate_limit":
            retry = max(0.0, (charge.period_end or now) - now)
            error = RateLimitExceededError(
                *args, unit=rule.unit, requested=rule.human(charge.amount), retry_after=retry
            )
        else:
            error = BudgetExceededError(
                *args, unit=rule.unit, requested=rule.human(charge.amount)
            )
        error.budget = rule.id  # type: ignore[attr-defined]
        return error

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


def _reset_time(end: int | None, tz: tzinfo) -> datetime | None:
    return None if end is None else datetime.fromtimestamp(end, tz)


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


# =========================================================================== status rows


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """One counter for ``tollway budgets``: amounts in the budget's unit (USD as
    Decimal, tokens / requests as int)."""

    budget: str
    kind: str
    scope: str
    unit: str
    period: str
    limit: Decimal | int
    spent: Decimal | int
    reserved: Decimal | int
    remaining: Decimal | int
    period_start: datetime | None
    resets_at: datetime | None

    @classmethod
    def of(cls, rule: _Rule, state: CounterState, start: int, end: int | None) -> BudgetRow:
        def amount(value: int) -> Decimal | int:
            return Decimal(value) / NANOS_PER_USD if rule.unit == "usd" else value

        remaining = max(0, rule.limit - state.spent - state.reserved)
        return cls(
            budget=rule.id, kind=rule.kind, scope=state.scope, unit=rule.unit,
            period=rule.period, limit=amount(rule.limit), spent=amount(state.spent),
            reserved=amount(state.reserved), remaining=amount(remaining),
            period_start=None if end is None else datetime.fromtimestamp(start, rule.tz),
            resets_at=_reset_time(end, rule.tz),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: USD amounts as numbers, times as ISO 8601 (None = never)."""
        def num(value: Decimal | int) -> float | int:
            return float(value) if isinstance(value, Decimal) else value

        return {
            "budget": self.budget,
            "kind": self.kind,
            "scope": self.scope,
            "unit": self.unit,
            "period": self.period,
            "limit": num(self.limit),
            "spent": num(self.spent),
            "reserved": num(self.reserved),
            "remaining": num(self.remaining),
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
        }


# =========================================================================== config


def _default_store_path() -> Path:
    env = os.environ.get("TOLLWAY_BUDGETS_DB")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tollway" / "budgets.db"


_STORE_OPTIONS = {"backend", "path", "url", "prefix", "schema", "busy_timeout",
                  "synchronous_commit"}
_GUARD_OPTIONS = {"reservation_ttl", "default_max_output_tokens"}


def open_budget_store(spec: Mapping[str, Any] | str | None = None) -> BudgetStore:
    """A store from its config: ``{backend: memory | sqlite | redis | postgres, ...}``
    (``path`` and ``busy_timeout`` for sqlite, ``url`` for redis / postgres, ``prefix``
    for redis, ``schema`` and ``synchronous_commit`` for postgres), or a string:
    ``memory``, a SQLite path, ``redis://...``, ``postgresql://...``. None: the SQLite
    file ``$TOLLWAY_BUDGETS_DB`` or ``~/.local/share/tollway/budgets.db`` (shared by
    every process on the machine)."""
    if spec is None or isinstance(spec, str):
        text = spec or ""
        if text in ("memory", ":memory:"):
            spec = {"backend": "memory"}
        elif text.startswith(("redis://", "rediss://", "unix://")):
            spec = {"backend": "redis", "url": text}
        elif text.startswith(("postgres://", "postgresql://")):
            spec = {"backend": "postgres", "url": text}
        else:
            spec = {"backend": "sqlite", "path": text.removeprefix("sqlite:///") or None}
    options = {k: v for k, v in spec.items() if k not in _GUARD_OPTIONS}
    backend = str(options.pop("backend", None) or ("sqlite" if "path" in options else "memory"))
    unknown = set(options) - _STORE_OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown budget_store option(s) {', '.join(sorted(unknown))}; expected "
            f"{', '.join(sorted(_STORE_OPTIONS | _GUARD_OPTIONS))}",
            key="budget_store",
        )
    if backend == "memory":
        from tollway.core.stores.memory_budgets import MemoryBudgetStore

        return MemoryBudgetStore()
    if backend == "sqlite":
        from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore

        path = options.get("path") or _default_store_path()
        kw = {"busy_timeout": float(options["busy_timeout"])} if "busy_timeout" in options else {}
        return SQLiteBudgetStore(path, **kw)
    if backend == "redis":
        from tollway.core.stores.redis_budgets import RedisBudgetStore

        if not options.get("url"):
            raise ConfigError("the redis budget store needs 'url: redis://host:6379/0'",
                              key="budget_store.url")
        prefix = str(options["prefix"]) if options.get("prefix") else None
        if prefix is None:
            return RedisBudgetStore(str(options["url"]))
        return RedisBudgetStore(str(options["url"]), prefix=prefix)
    if backend in ("postgres", "postgresql"):
        from tollway.core.stores.postgres_budgets import PostgresBudgetStore

        if not options.get("url"):
            raise ConfigError("the postgres budget store needs 'url: postgresql://...'",
                              key="budget_store.url")
        pg_kw: dict[str, Any] = {}
        if options.get("schema"):
            pg_kw["schema"] = str(options["schema"])
        if "synchronous_commit" in options:
            pg_kw["synchronous_commit"] = bool(options["synchronous_commit"])
        return PostgresBudgetStore(str(options["url"]), **pg_kw)
    raise ConfigError(
        f"unknown budget_store backend {backend!r}; expected memory, sqlite, redis or postgres",
        key="budget_store.backend",
    )


def _settings_error(settings: Any, path: tuple[str | int, ...], message: str) -> ConfigError:
    """A ConfigError naming file and line through ``settings.error`` when available."""
    reporter = getattr(settings, "error", None)
    if callable(reporter):
        return reporter(path, message)
    return ConfigError(message, key=".".join(str(p) for p in path))


def _validated(settings: Any, section: str, model: type[Any]) -> list[Any]:
    """A config section as policies: a list of mappings, or a mapping of name -> mapping
    (the key becomes the policy's name)."""
    raw = getattr(settings, section, None) or []
    items: list[tuple[str | int, Any]]
    if isinstance(raw, Mapping):
        items = []
        for name, body in raw.items():
            if isinstance(body, Mapping) and "name" not in body:
                body = {"name": str(name), **body}
            items.append((str(name), body))
    elif isinstance(raw, list):
        items = list(enumerate(raw))
    else:
        raise _settings_error(
            settings, (section,), f"'{section}' must be a list of mappings or a mapping of "
            "name -> mapping"
        )
    out = []
    for where, item in items:
        if not isinstance(item, Mapping):
            raise _settings_error(
                settings, (section, where),
                f"expected a mapping with keys such as scope, limit, period; got "
                f"{type(item).__name__}",
            )
        try:
            out.append(model.model_validate(dict(item)))
        except ValidationError as exc:
            found = exc.errors()
            # A misspelt key also makes the real one "missing": report the typo first.
            err = next((e for e in found if e["type"] == "extra_forbidden"), found[0])
            loc = tuple(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(n for n in model.model_fields if n != "on_soft_limit")
                message = f"unknown key {loc[-1]!r}; expected one of {allowed}"
            elif err["type"] == "missing":
                message = f"missing required key {loc[-1]!r}"
            elif loc and loc[-1] == "limit":
                message = (
                    f"a limit must be a number >= 0: USD (e.g. 5 or 0.50) for unit usd, a "
                    f"whole count for tokens or requests (got {err.get('input')!r})"
                )
            else:
                message = f"{message} (got {err.get('input')!r})" if loc else message
            raise _settings_error(settings, (section, where, *loc), message) from None
    return out


def _pricebook_from(settings: Any) -> PriceBook | None:
    """The PriceBook the config describes (price overrides), if the settings carry one."""
    book = getattr(settings, "pricebook", None)
    if callable(book):
        book = book()
    if book is not None:
        return book
    overrides = getattr(settings, "prices", None)
    if overrides:
        from tollway.core.cost.pricing import PriceBook

        return PriceBook(overrides)
    return None


def budgets_from_config(
    settings: Any, *, clock: Callable[[], float] | None = None
) -> Budgets | None:
    """The Budgets guard tollway.yaml describes (None when it configures none). The
    clock is ``clock``, else the settings' own ``clock``, else real time."""
    clock = clock or getattr(settings, "clock", None) or time.time
    policies = _validated(settings, "budgets", BudgetPolicy)
    hours = _validated(settings, "hours", HoursPolicy)
    limits = _validated(settings, "rate_limits", RateLimitPolicy)
    store_spec = getattr(settings, "budget_store", None)
    if not (policies or hours or limits):
        return None
    if store_spec is not None and not isinstance(store_spec, Mapping | str):
        raise _settings_error(settings, ("budget_store",),
                              "'budget_store' must be a mapping like {backend: sqlite, path: ...}")
    guard_kw: dict[str, Any] = {}
    if isinstance(store_spec, Mapping):
        for name in _GUARD_OPTIONS:
            if name in store_spec:
                value = store_spec[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise _settings_error(settings, ("budget_store", name),
                                          f"'{name}' must be a positive number")
                guard_kw[name] = int(value) if name == "default_max_output_tokens" else float(value)
    try:
        store = open_budget_store(store_spec)
        return Budgets(
            policies, hours=hours, rate_limits=limits, store=store,
            prices=_pricebook_from(settings), clock=clock, **guard_kw,
        )
    except ConfigError as exc:
        raise _settings_error(settings, tuple((exc.key or "budgets").split(".")),
                              str(exc).split(": ", 1)[-1] if exc.key else str(exc)) from None


def guards_from_config(settings: Any) -> tuple[Guard, ...]:
    """The guards tollway.yaml's ``budgets`` / ``hours`` / ``rate_limits`` /
    ``budget_store`` sections describe (empty when none is configured)."""
    guard = budgets_from_config(settings)
    return () if guard is None else (guard,)


def budget_status(source: Any = None, *, now: float | None = None) -> list[BudgetRow]:
    """What ``tollway budgets`` prints: one row per budget and rate limit (and per
    counter of an ``each`` budget) with limit, spent, reserved, remaining and next reset.

    ``source``: a Budgets guard; a settings object (its shared guard is used, so an
    in-memory store reports this process's counters); a tollway.yaml path; or None for
    the config tollway finds itself (``$TOLLWAY_CONFIG``, ``./tollway.yaml``)."""
    if isinstance(source, Budgets):
        return source.status(now)
    settings = source
    if source is None or isinstance(source, str | os.PathLike):
        from tollway.core.config import load_settings

        settings = load_settings(source)
        if settings is None:
            raise ConfigError(
                "no config found: pass a path, set $TOLLWAY_CONFIG or create ./tollway.yaml"
            )
    shared = getattr(settings, "guards", None)
    if callable(shared):
        for guard in shared():
            if isinstance(guard, Budgets):
                return guard.status(now)
        return []
    guard = budgets_from_config(settings)
    if guard is None:
        return []
    try:
        return guard.status(now)
    finally:
        guard.close()
