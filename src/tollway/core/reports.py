"""The read side: what was spent (``tollway.spend``) and where each budget stands
(``tollway.budget_status``), from the ledger and the budget store a config names."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from tollway.core.assembly import guards
from tollway.core.config import TollwaySettings, load_config
from tollway.core.cost.budgets import BudgetRow, Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.cost.spend import SpendQuery, SpendRow
from tollway.core.errors import ConfigError
from tollway.core.stores.open import open_ledger

__all__ = ["budget_status", "spend"]


def spend(
    ledger_or_target: Ledger | str | os.PathLike[str] | None = None,
    *,
    group_by: Sequence[str] | str = ("model",),
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    filters: Mapping[str, Any] | None = None,
) -> list[SpendRow]:
    """Spend grouped by ``group_by`` (any of :data:`GROUP_KEYS` or ``tag:<name>``) over
    ``[since, until)``, keeping rows whose ``filters`` keys equal the given value (or
    one of the given values; None matches unset). ``ledger_or_target`` is a Ledger or
    anything :func:`open_ledger` takes (None: the default ledger)."""
    query = SpendQuery.build(group_by, since, until, filters)
    if isinstance(ledger_or_target, Ledger):
        return ledger_or_target.query(query)
    ledger = open_ledger(ledger_or_target)
    try:
        return ledger.query(query)
    finally:
        ledger.close()


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
        settings = load_config(source)
        if settings is None:
            raise ConfigError(
                "no config found: pass a path, set $TOLLWAY_CONFIG or create ./tollway.yaml"
            )
    if not isinstance(settings, TollwaySettings):
        raise ConfigError(
            f"budget_status takes a Budgets guard, TollwaySettings, a path or None; got "
            f"{type(settings).__name__}"
        )
    for guard in guards(settings):
        if isinstance(guard, Budgets):
            return guard.status(now)
    return []
