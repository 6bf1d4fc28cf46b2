"""What the dashboard reads: a ledger, the budgets, and (when there is one) a key store.

Two ways to get one. On ``tollway gateway`` (:func:`gateway_source`) the pages read the
gateway's own ledger, config budgets and key store, and key budgets are counted in the
gateway's budget store, exactly where the keys' calls reserve them. For
``tollway dashboard`` (:func:`standalone_source`) a ledger alone is enough; a config
adds its budgets, and a key store appears only when one is named (``--keys``, or a
config with a ``gateway:`` section), otherwise the keys pages are hidden.

Numbers come from :mod:`tollway.core.reports` (``spend_series``, ``calls``, ``trace``,
``budget_status``): the functions behind ``tollway spend`` and ``tollway budgets``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tollway.core.cost.budgets import BudgetRow
from tollway.core.cost.ledger import Ledger
from tollway.gateway.key_budget_rows import key_budget_rows, key_store_of, open_key_budget_store

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.cost.budgets import BudgetStore
    from tollway.gateway.key_store import KeyStore
    from tollway.gateway.runtime import Gateway

__all__ = ["DashboardSource", "gateway_source", "standalone_source"]


@dataclass
class DashboardSource:
    ledger: Ledger
    settings: TollwaySettings | None = None
    keys: KeyStore | None = None
    key_budget_store: Callable[[], BudgetStore] | None = None
    """Where key budgets count (opened on first use)."""
    owns: list[object] = field(default_factory=list)
    """What :meth:`close` closes (stores this source opened itself)."""

    def budgets(self) -> list[BudgetRow]:
        """Every config budget's counters, then every key's (``tollway budgets`` rows)."""
        from tollway.core.reports import budget_status

        rows = list(budget_status(self.settings)) if self.settings is not None else []
        if self.keys is not None and self.key_budget_store is not None:
            rows.extend(key_budget_rows(self.keys, self.key_budget_store(), self.settings))
        return rows

    def close(self) -> None:
        for item in self.owns:
            close = getattr(item, "close", None)
            if close is not None:
                close()


def gateway_source(gw: Gateway) -> DashboardSource:
    """The gateway's own ledger, budgets and key store. The ledger is read through a
    connection of its own: a long spend query then never holds the lock the gateway's
    calls take to write their rows (SQLite's WAL lets the reader run beside them). A
    gateway with the ledger off shows an empty one."""
    from tollway.core.stores.open import open_ledger

    settings = gw.settings
    target = settings.ledger_target
    ledger = open_ledger("memory" if target is False else None if target is True else target)
    return DashboardSource(
        ledger=ledger, settings=settings, keys=gw.keys.store if gw.keys is not None else None,
        key_budget_store=lambda: gw.guard.store, owns=[ledger],
    )


def standalone_source(ledger: str | os.PathLike[str] | None, *, config: str | None = None,
                      keys: str | None = None) -> DashboardSource:
    """A source for ``tollway dashboard``: ``ledger`` (a path or URL; default the
    config's ledger, else the default ledger), budgets from ``config``, keys from
    ``keys`` or the config's ``gateway:`` section."""
    from tollway.core.stores.open import open_ledger

    settings = None
    if config is not None:
        from tollway.core.config import TollwaySettings

        settings = TollwaySettings.load(config)
    if ledger is None and settings is not None and isinstance(settings.ledger_target, str):
        ledger = settings.ledger_target
    opened = open_ledger(ledger)
    source = DashboardSource(ledger=opened, settings=settings, owns=[opened])
    keys_target = keys if keys is not None else key_store_of(settings)
    if keys_target is not None:
        from tollway.gateway.key_store import open_key_store

        source.keys = open_key_store(keys_target)
        source.owns.append(source.keys)
        source.key_budget_store = _opened_once(lambda: open_key_budget_store(settings),
                                               source.owns)
    return source


def _opened_once(open_store: Callable[[], BudgetStore],
                 owns: list[object]) -> Callable[[], BudgetStore]:
    """``open_store()`` on first use, then the same store; ``owns`` gets it to close."""
    opened: list[BudgetStore] = []

    def store() -> BudgetStore:
        if not opened:
            opened.append(open_store())
            owns.append(opened[0])
        return opened[0]

    return store
