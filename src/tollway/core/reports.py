"""The read side: what was spent (``tollway.spend``) and where each budget stands
(``tollway.budget_status``), from the ledger and the budget store a config names."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from tollway.core.assembly import guards, settings_of
from tollway.core.config import TollwaySettings, load_config
from tollway.core.cost.budgets import BudgetRow, Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.cost.spend import SpendQuery, SpendRow
from tollway.core.errors import ConfigError
from tollway.core.stores.open import existing_shared_ledger, open_ledger

__all__ = ["budget_status", "spend"]


def spend(
    ledger_or_target: Ledger | str | os.PathLike[str] | None = None,
    *,
    config: Any = None,
    group_by: Sequence[str] | str = ("model",),
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    filters: Mapping[str, Any] | None = None,
) -> list[SpendRow]:
    """Spend grouped by ``group_by`` (any of :data:`GROUP_KEYS` or ``tag:<name>``) over
    ``[since, until)``, keeping rows whose ``filters`` keys equal the given value (or
    one of the given values; None matches unset).

    Which ledger: ``ledger_or_target`` (a Ledger, or anything :func:`open_ledger`
    takes) when given; else the one a Model built with ``config`` writes to: its
    ``ledger:``, or the default ledger when it names none. ``config`` is a tollway.yaml
    path, settings or a mapping; None finds the file the way ``Model`` does
    (``$TOLLWAY_CONFIG``, else ``./tollway.yaml``); False ignores any file. A ledger this
    process already has open (an in-memory one too) is read in place."""
    query = SpendQuery.build(group_by, since, until, filters)
    if isinstance(ledger_or_target, Ledger):
        return ledger_or_target.query(query)
    if ledger_or_target is not None and config not in (None, False):
        raise ConfigError(
            "spend() takes a ledger or a config, not both: the config only says which "
            "ledger to read", key="ledger",
        )
    target = ledger_or_target if ledger_or_target is not None else _ledger_of(config)
    shared = existing_shared_ledger(target)
    if shared is not None:
        return shared.query(query)
    ledger = open_ledger(target)
    try:
        return ledger.query(query)
    finally:
        ledger.close()


def _ledger_of(config: Any) -> str | None:
    """The ``ledger:`` target of the config (None: the default ledger); a config that
    turns the ledger off has recorded nothing, which is an error, not an empty report."""
    settings = settings_of(config)
    if settings is None:
        return None
    target = settings.ledger_target
    if target is False:
        raise settings.error(
            "ledger",
            "this config turns the ledger off (ledger: false), so its calls were never "
            "recorded: turn it on, or name the ledger to read (--ledger / ledger_or_target)",
        )
    return target if isinstance(target, str) else None


def budget_status(
    source: Any = None, *, config: Any = None, now: float | None = None
) -> list[BudgetRow]:
    """What ``tollway budgets`` prints: one row per budget and rate limit (and per
    counter of an ``each`` budget) with limit, spent, reserved, remaining and next reset.

    ``source`` (or ``config=``): a Budgets guard; a settings object (its shared guard is
    used, so an in-memory store reports this process's counters); a tollway.yaml path; or
    None for the config tollway finds the way ``Model`` does (``$TOLLWAY_CONFIG``, else
    ``./tollway.yaml``)."""
    if source is not None and config is not None:
        raise ConfigError("budget_status() takes a source or config=, not both", key="config")
    if source is None:
        source = config
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
