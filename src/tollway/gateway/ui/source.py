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
from tollway.gateway.guard import key_budgets

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
            prices = clock = None
            if self.settings is not None:
                from tollway.core.assembly import price_book

                prices, clock = price_book(self.settings), self.settings.clock
            for key in self.keys.list():
                if key.revoked_at is not None or not (key.budgets or key.rpm or key.tpm):
                    continue
                guard = key_budgets(key, self.key_budget_store(), prices=prices, clock=clock)
                if guard is not None:
                    rows.extend(r for r in guard.status() if r.kind != "hours")
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
    keys_target = keys
    if keys_target is None and settings is not None and getattr(settings, "gateway", None):
        from tollway.gateway.config import gateway_spec

        spec = gateway_spec(settings)
        if spec.auth == "keys":
            keys_target = spec.keys_target()
    if keys_target is not None:
        from tollway.gateway.key_store import open_key_store

        source.keys = open_key_store(keys_target)
        source.owns.append(source.keys)
        source.key_budget_store = _budget_store_opener(settings, source)
    return source


def _budget_store_opener(settings: TollwaySettings | None,
                         source: DashboardSource) -> Callable[[], BudgetStore]:
    """The gateway's budget store for key budgets, opened once on first use."""
    opened: list[BudgetStore] = []

    def open_store() -> BudgetStore:
        if not opened:
            from tollway.core.stores.open import open_budget_store
            from tollway.gateway.config import gateway_spec

            spec = gateway_spec(settings)
            store_spec = spec.budget_store if spec.budget_store is not None else (
                settings.budget_store if settings is not None else None)
            opened.append(open_budget_store(store_spec))
            source.owns.append(opened[0])
        return opened[0]

    return open_store
