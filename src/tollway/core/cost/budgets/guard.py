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
from tollway.core.cost.tool_images import dearest_tool_image, requested_image_model
from tollway.core.errors import (
    BudgetExceededError,
    ConfigError,
    OutsideAllowedHoursError,
    StoreUnavailableError,
    TollwayError,
)
from tollway.core.logs import logger
from tollway.core.media_types import EmbeddingRequest, FeeRequest, ImageRequest
from tollway.core.types import Request, Usage, requested_service_tier

if TYPE_CHECKING:
    from tollway.core.cost.pricing import ModelPrice, PriceBook
    from tollway.core.cost.records import CallRecord
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

log = logger("tollway.budgets")


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
        self._joins: dict[int, tuple[object, bool]] = {}

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
        try:
            denial = self.store.reserve(hold_id, charges, now + self.reservation_ttl, now)
        except Exception as exc:
            raise self._unavailable(exc) from exc
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
        try:
            denial = await self.store.areserve(hold_id, charges, now + self.reservation_ttl, now)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        if denial is not None:
            raise self._denied(rules[denial.index], charges[denial.index], denial, now)
        return BudgetHold(self, hold_id, rules, charges)

    def _unavailable(self, exc: Exception) -> TollwayError:
        """A store failure on reserve as a typed error (the provider is not called). A
        store that already raised a TollwayError (a pool timeout) passes through."""
        if isinstance(exc, TollwayError):
            return exc
        return StoreUnavailableError(
            f"budget store ({type(self.store).__name__})", "reserve",
            f"{type(exc).__name__}: {exc}; the call was not made. Check that the store "
            "is reachable and writable (budget_store in tollway.yaml)",
        )

    def joins(self, ledger: object) -> bool:
        """Whether this guard's store can end a hold in ``ledger``'s transaction (asked
        once per ledger; see :class:`~tollway.core.cost.budgets.contract.SharesLedgerDatabase`)."""
        key = id(ledger)
        known = self._joins.get(key)
        if known is None or known[0] is not ledger:
            shares = getattr(self.store, "shares_database", None)
            known = (ledger, bool(shares is not None and shares(ledger)))
            self._joins[key] = known
        return known[1]

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
        if isinstance(ctx.request, FeeRequest):  # known exactly: no price to look up
            return Bound(0, 0, ctx.request.fee_nanos)
        prices = self.prices
        price: ModelPrice | None = prices.model_price(
            dep.provider.name, dep.model, deployment=dep.name
        )
        request = ctx.request
        if isinstance(request, EmbeddingRequest):
            return embedding_bound(request, price)
        if isinstance(request, ImageRequest):
            return image_bound(request, price)
        bound = upper_bound(
            request, price, default_max_output_tokens=self.default_max_output_tokens
        )
        if request.wants_images and dep.api == "responses":
            bound = self._with_tool_image(bound, request, dep)
        tier = requested_service_tier(ctx.request)
        if tier is None or bound.cost_nanos is None:
            return bound
        # A call asking for another tier (priority, flex...) is billed at that tier's
        # rates, or at standard ones when the provider serves it there: reserve the
        # dearer of the two, so the reservation is never short.
        tiered = upper_bound(
            ctx.request,
            prices.model_price(dep.provider.name, dep.model, deployment=dep.name,
                               service_tier=tier),
            default_max_output_tokens=self.default_max_output_tokens,
            input_tokens=bound.input_tokens,
        )
        if tiered.cost_nanos is not None and tiered.cost_nanos > bound.cost_nanos:
            return tiered
        return bound

    def _with_tool_image(self, bound: Bound, request: Request, dep: Deployment) -> Bound:
        """A Responses call asked to draw also holds its dearest image (the
        image_generation tool bills it apart); unknown -> the cost bound is unknown."""
        if bound.cost_nanos is None:
            return bound
        model = requested_image_model(request.extra)
        image = dearest_tool_image(
            model, self.prices.model_price(dep.provider.name, model)
        )
        cost = None if image is None else bound.cost_nanos + image
        return Bound(bound.input_tokens, bound.output_tokens, cost)

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

    @property
    def budget_ids(self) -> list[str]:
        """The budgets and rate limits this hold reserved on (for warnings)."""
        return [rule.id for rule in self.rules]

    def joins(self, ledger: object) -> bool:
        """Whether this hold can end in the same transaction as ``ledger``'s row."""
        return self.guard.joins(ledger)

    def _begin(self) -> bool:
        if self._done:
            return False
        self._done = True
        return True

    def _after_settle(self, actuals: list[int], spent: list[int]) -> None:
        guard = self.guard
        if guard._soft:
            guard._settled(self.rules, self.charges, actuals, spent)

    def settle(self, usage: Usage, cost_nanos: int | None) -> None:
        if not self._begin():
            return
        guard = self.guard
        actuals = self._actuals(usage, cost_nanos)
        spent = guard.store.settle(self.hold_id, self.charges, actuals, guard._clock(),
                                   spent=guard._soft)
        self._after_settle(actuals, spent)

    def release(self) -> None:
        if not self._begin():
            return
        self.guard.store.release(self.hold_id, self.charges, self.guard._clock())

    async def asettle(self, usage: Usage, cost_nanos: int | None) -> None:
        if not self._begin():
            return
        guard = self.guard
        actuals = self._actuals(usage, cost_nanos)
        spent = await guard.store.asettle(self.hold_id, self.charges, actuals, guard._clock(),
                                          spent=guard._soft)
        self._after_settle(actuals, spent)

    async def arelease(self) -> None:
        if not self._begin():
            return
        await self.guard.store.arelease(self.hold_id, self.charges, self.guard._clock())

    def settle_and_record(self, usage: Usage | None, cost_nanos: int | None, ledger: Any,
                          row: CallRecord) -> None:
        """Settle (or release, ``usage`` None) and write ``row`` to ``ledger`` in one
        store transaction (only when :meth:`joins` said so). An ended hold writes the
        row alone."""
        if not self._begin():
            ledger.record(row)
            return
        guard = self.guard
        actuals = None if usage is None else self._actuals(usage, cost_nanos)
        store: Any = guard.store
        spent = store.settle_and_record(
            self.hold_id, self.charges, actuals, guard._clock(), ledger, row, spent=guard._soft
        )
        if actuals is not None:
            self._after_settle(actuals, spent)

    async def asettle_and_record(self, usage: Usage | None, cost_nanos: int | None,
                                 ledger: Any, row: CallRecord) -> None:
        if not self._begin():
            await ledger.arecord(row)
            return
        guard = self.guard
        actuals = None if usage is None else self._actuals(usage, cost_nanos)
        store: Any = guard.store
        spent = await store.asettle_and_record(
            self.hold_id, self.charges, actuals, guard._clock(), ledger, row, spent=guard._soft
        )
        if actuals is not None:
            self._after_settle(actuals, spent)


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
