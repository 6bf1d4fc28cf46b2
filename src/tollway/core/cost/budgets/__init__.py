"""Budgets, rate limits and allowed hours, enforced by reservation.

- ``contract``: the BudgetStore protocol and its value types (what backends implement);
- ``rules``: policies compiled for the hot path;
- ``guard``: the Budgets guard and its holds (reserve, settle, release);
- ``status``: the rows ``tollway budgets`` shows;
- ``memory``: the in-process store (the default, and the contract's reference).

Backends with I/O live in ``core/stores``; ``core/stores/open.py`` chooses one.
"""

from tollway.core.cost.budgets.contract import (
    COUNTER_RETENTION,
    DEFAULT_RESERVATION_TTL,
    BudgetStore,
    Charge,
    CounterState,
    Denial,
    counter_key,
)
from tollway.core.cost.budgets.guard import BudgetHold, Budgets
from tollway.core.cost.budgets.status import BudgetRow

__all__ = [
    "COUNTER_RETENTION",
    "DEFAULT_RESERVATION_TTL",
    "BudgetHold",
    "BudgetRow",
    "BudgetStore",
    "Budgets",
    "Charge",
    "CounterState",
    "Denial",
    "counter_key",
]
