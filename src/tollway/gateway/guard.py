"""A key's limits as the core's policies, and the guard that applies the right ones.

Each virtual key's budgets, rate limits and allowed hours become a core
:class:`~tollway.core.cost.budgets.Budgets` guard whose policies are scoped to
``key=<key id>`` and whose counters live in the gateway's budget store (Redis or
PostgreSQL for many machines): reservation, settlement, reset times and the 0-overshoot
guarantee are the core's. :class:`KeyGuard` is the one guard every gateway Model
carries; it hands each attempt to the Budgets of the key in the call's attribution, so
a call costs one dict lookup more than with a single key, however many keys exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tollway.core.cost.budgets import Budgets
from tollway.core.cost.policy import BudgetPolicy, HoursPolicy, RateLimitPolicy, Scope
from tollway.gateway.keys import VirtualKey, parse_budget

if TYPE_CHECKING:
    from tollway.core.cost.budgets import BudgetStore
    from tollway.core.cost.pricing import PriceBook
    from tollway.core.hooks import CallContext, Hold
    from tollway.core.providers import Deployment

__all__ = ["KeyGuard", "key_budgets"]


def key_budgets(key: VirtualKey, store: BudgetStore, *, prices: PriceBook | None = None,
                clock: Any = None) -> Budgets | None:
    """The Budgets guard for ``key``'s limits (None when it has none)."""
    scope = Scope.parse({"key": key.id})
    budgets = []
    for number, text in enumerate(key.budgets):
        limit, unit, period = parse_budget(text)
        budgets.append(BudgetPolicy(
            name=f"{key.id}/budget{number}", scope=scope, limit=limit,
            unit=unit, period=period,  # type: ignore[arg-type]
        ))
    limits = []
    if key.rpm is not None or key.tpm is not None:
        limits.append(RateLimitPolicy(
            name=f"{key.id}/rate", scope=scope, requests_per_minute=key.rpm,
            tokens_per_minute=key.tpm,
        ))
    hours = []
    if key.hours:
        hours.append(HoursPolicy(name=f"{key.id}/hours", scope=scope, windows=[key.hours]))
    if not (budgets or limits or hours):
        return None
    kw: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return Budgets(budgets, rate_limits=limits, hours=hours, store=store, prices=prices, **kw)


class KeyGuard:
    """The Guard of every gateway Model: the Budgets of the call's key, if any.

    :meth:`admit` registers a key's guard (the gateway calls it when it authenticates
    a request); keys without limits, and calls without a key, pass untouched."""

    def __init__(self, store: BudgetStore | Callable[[], BudgetStore], *,
                 prices: PriceBook | None = None, clock: Any = None) -> None:
        self._store = store
        self.prices = prices
        self.clock = clock
        self._by_key: dict[str, tuple[VirtualKey, Budgets | None]] = {}

    @property
    def store(self) -> BudgetStore:
        """The budget store, opened on first use (a gateway whose keys carry no limits
        never opens one)."""
        store = self._store
        if callable(store) and not hasattr(store, "reserve"):
            store = self._store = store()
        return store  # type: ignore[return-value]

    @property
    def opened(self) -> bool:
        return not (callable(self._store) and not hasattr(self._store, "reserve"))

    def admit(self, key: VirtualKey) -> None:
        entry = self._by_key.get(key.id)
        if entry is None or (entry[0] is not key and entry[0] != key):
            budgets = None
            if key.budgets or key.rpm is not None or key.tpm is not None or key.hours:
                budgets = key_budgets(key, self.store, prices=self.prices, clock=self.clock)
            self._by_key[key.id] = (key, budgets)

    def _budgets(self, ctx: CallContext) -> Budgets | None:
        key_id = ctx.attribution.key
        if key_id is None:
            return None
        entry = self._by_key.get(key_id)
        return None if entry is None else entry[1]

    def reserve(self, ctx: CallContext, deployment: Deployment) -> Hold:
        budgets = self._budgets(ctx)
        if budgets is None:
            return _PASS
        return budgets.reserve(ctx, deployment)

    async def areserve(self, ctx: CallContext, deployment: Deployment) -> Hold:
        budgets = self._budgets(ctx)
        if budgets is None:
            return _PASS
        return await budgets.areserve(ctx, deployment)


class _Pass:
    __slots__ = ()

    def settle(self, usage: Any, cost_nanos: int | None) -> None:
        return None

    def release(self) -> None:
        return None

    async def asettle(self, usage: Any, cost_nanos: int | None) -> None:
        return None

    async def arelease(self) -> None:
        return None


_PASS = _Pass()
