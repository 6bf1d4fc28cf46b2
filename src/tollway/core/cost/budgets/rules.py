"""Budgets and rate limits compiled for the hot path: integer limits, the current
period cached, the actual amount a settled call charges."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from tollway.core.cost.policy import (
    BudgetPolicy,
    HoursPolicy,
    RateLimitPolicy,
    Scope,
    SoftLimitEvent,
)
from tollway.core.cost.windows import AllowedHours, period_bounds, zone
from tollway.core.errors import ConfigError
from tollway.core.types import NANOS_PER_USD, Usage

if TYPE_CHECKING:
    pass
from tollway.core.cost.budgets.contract import Charge

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
