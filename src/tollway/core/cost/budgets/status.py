"""Budget status rows: what ``tollway budgets`` and the dashboard show per counter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tollway.core.types import NANOS_PER_USD

if TYPE_CHECKING:
    pass
from tollway.core.cost.budgets.contract import CounterState
from tollway.core.cost.budgets.rules import _Rule

# =========================================================================== status rows


def _reset_time(end: int | None, tz: tzinfo) -> datetime | None:
    return None if end is None else datetime.fromtimestamp(end, tz)


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
