"""The virtual keys' budgets and rate limits as ``tollway budgets`` rows.

A key's limits count in the gateway's budget store (``gateway.budget_store``, else the
config's ``budget_store``), under policies scoped to ``key=<id>`` (see ``guard``). The
dashboard's budgets page and ``tollway budgets`` both list them after the config's own
budgets, through this module, so the page and the command show the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.gateway.guard import key_budgets

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.cost.budgets import BudgetRow, BudgetStore
    from tollway.gateway.key_store import KeyStore

__all__ = ["config_key_budget_rows", "key_budget_rows", "key_store_of", "open_key_budget_store"]


def key_budget_rows(keys: KeyStore, store: BudgetStore,
                    settings: TollwaySettings | None) -> list[BudgetRow]:
    """One row per budget and rate limit of every key that is not revoked (hours have
    no counter and are left out, as for config budgets with counters)."""
    prices = clock = None
    if settings is not None:
        from tollway.core.assembly import price_book

        prices, clock = price_book(settings), settings.clock
    rows: list[BudgetRow] = []
    for key in keys.list():
        if key.revoked_at is not None or not (key.budgets or key.rpm or key.tpm):
            continue
        guard = key_budgets(key, store, prices=prices, clock=clock)
        if guard is not None:
            rows.extend(r for r in guard.status() if r.kind != "hours")
    return rows


def key_store_of(settings: TollwaySettings | None) -> str | None:
    """The key store a config's ``gateway:`` section names (None without a section or
    with ``auth: none``)."""
    if settings is None or not getattr(settings, "gateway", None):
        return None
    from tollway.gateway.config import gateway_spec

    spec = gateway_spec(settings)
    return spec.keys_target() if spec.auth == "keys" else None


def open_key_budget_store(settings: TollwaySettings | None) -> BudgetStore:
    """The gateway's budget store, where key budgets count: ``gateway.budget_store``,
    else the config's ``budget_store``."""
    from tollway.core.stores.open import open_budget_store
    from tollway.gateway.config import gateway_spec

    spec = gateway_spec(settings)
    return open_budget_store(spec.budget_store if spec.budget_store is not None else (
        settings.budget_store if settings is not None else None))


def config_key_budget_rows(settings: TollwaySettings) -> list[BudgetRow]:
    """:func:`key_budget_rows` for the key store and budget store a config names (none
    without a ``gateway:`` section with keys), both opened for the read and closed."""
    target = key_store_of(settings)
    if target is None:
        return []
    from tollway.gateway.key_store import open_key_store

    keys = open_key_store(target)
    try:
        store = open_key_budget_store(settings)
        try:
            return key_budget_rows(keys, store, settings)
        finally:
            store.close()
    finally:
        keys.close()
