"""The read side: what was spent (``tollway.spend``, over time: ``spend_series``), the
calls themselves (``calls``, one ``trace``) and where each budget stands
(``tollway.budget_status``), from the ledger and the budget store a config names.

``tollway spend``, ``tollway budgets`` and the dashboard all read through these
functions, so the command line and the page never disagree."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from tollway.core.assembly import guards, settings_of
from tollway.core.config import TollwaySettings, load_config
from tollway.core.cost.budgets import BudgetRow, Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.cost.records import CallRecord
from tollway.core.cost.series import Bucket, SpendSeries, build_series
from tollway.core.cost.spend import CallsQuery, SpendQuery, SpendRow
from tollway.core.errors import ConfigError
from tollway.core.stores.open import existing_shared_ledger, open_ledger

__all__ = ["budget_status", "calls", "spend", "spend_series", "trace"]

LedgerSource = Ledger | str | os.PathLike[str] | None
T = TypeVar("T")
TRACE_WINDOW = timedelta(days=1)
"""How far either side of a trace's known time its rows are looked for (the ledger is
indexed by time, not by trace id)."""


def _with_ledger(source: LedgerSource, read: Callable[[Ledger], T], config: Any = None) -> T:
    """Run ``read`` on the Ledger given; else on the ledger ``source`` names, or, when
    it is None, the one a Model built with ``config`` writes to (read in place when this
    process already has it open; otherwise opened and closed here)."""
    if isinstance(source, Ledger):
        return read(source)
    if source is not None and config not in (None, False):
        raise ConfigError(
            "spend() takes a ledger or a config, not both: the config only says which "
            "ledger to read", key="ledger",
        )
    target = source if source is not None else _ledger_of(config)
    shared = existing_shared_ledger(target)
    if shared is not None:
        return read(shared)
    ledger = open_ledger(target)
    try:
        return read(ledger)
    finally:
        ledger.close()


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
    return _with_ledger(ledger_or_target, lambda ledger: ledger.query(query), config)


def spend_series(
    ledger_or_target: LedgerSource = None,
    *,
    config: Any = None,
    every: Bucket = "day",
    stack_by: str | None = None,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    filters: Mapping[str, Any] | None = None,
    top: int | None = None,
) -> SpendSeries:
    """Spend per ``every`` (hour / day, UTC) bucket, one line per value of ``stack_by``
    (any spend group key; None: one line), zero-filled across ``[since, until)``. The
    numbers are :func:`spend`'s for ``group_by=[every, stack_by]``; ``top`` keeps the
    most expensive values and merges the rest into one ``other`` line."""
    if stack_by in ("hour", "day", "month"):
        raise ConfigError(f"stack by a dimension, not a time bucket ({stack_by!r})",
                          key="stack_by")
    query = SpendQuery.build([every, stack_by] if stack_by else [every], since, until, filters)
    rows = _with_ledger(ledger_or_target, lambda ledger: ledger.query(query), config)
    return build_series(rows, bucket=every, stack_by=stack_by, since=query.since,
                        until=query.until, top=top)


def calls(
    ledger_or_target: LedgerSource = None,
    *,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    filters: Mapping[str, Any] | None = None,
    limit: int = 100,
) -> list[CallRecord]:
    """The newest ``limit`` ledger rows in ``[since, until)`` matching ``filters``
    (the keys of :func:`spend`), newest first."""
    query = CallsQuery.build(since=since, until=until, filters=filters, limit=limit)
    return _with_ledger(ledger_or_target, lambda ledger: ledger.calls(query))


def trace(
    ledger_or_target: LedgerSource, trace_id: str, *, around: datetime | None = None,
    limit: int = 1000,
) -> list[CallRecord]:
    """Every row of one trace (an agent run, an MCP tool loop), oldest first. ``around``
    (a time of one of its rows) narrows the search to a day either side."""
    since = until = None
    if around is not None:
        since, until = around - TRACE_WINDOW, around + TRACE_WINDOW
    query = CallsQuery.build(since=since, until=until, trace_id=trace_id, limit=limit)
    return _with_ledger(ledger_or_target, lambda ledger: ledger.calls(query))


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
