"""A backend's per-search fee under the config's budgets (tollway.vectors.fees), both
drivers: a managed store (the loopback OpenAI vector stores server) reserves the fee
before each search and settles to it, so a USD budget stops searches once the fees
fill it, before the backend is called; a store that embeds the query AND charges a fee
(a SQLite backend with a fee, as a paid self-hosted service would be) is denied when
the budget has room for the embedding but not the fee, before the embedding or the
backend is called, and settles to embedding + fee."""

from __future__ import annotations

import asyncio
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Driver
from tests.fakes.server import FakeProvider
from tests.fakes.vector_stores import FakeVectorStores
from tests.vectors.conftest import KEY
from tollway.core.assembly import guards
from tollway.core.config import TollwaySettings
from tollway.core.errors import BudgetExceededError, BudgetSettleWarning
from tollway.vectors import VectorStore
from tollway.vectors.backends.openai import OPENAI_SEARCH_FEE_NANOS
from tollway.vectors.backends.sqlite import SQLiteVectorBackend
from tollway.vectors.types import SearchResult

MANAGED_KEY = "sk-test-fees-managed-0123456789"
FEE = 1_000_000  # $0.001 a search


class PaidSQLite(SQLiteVectorBackend):
    """The embedded backend with a per-search fee (counts its searches)."""

    search_fee_nanos = FEE

    def __init__(self, path: Path) -> None:
        super().__init__(path, store="paid")
        self.searches = 0

    async def search(self, query: str, query_vector: list[float] | None, k: int,
                     filters: Any) -> SearchResult:
        self.searches += 1
        result = await super().search(query, query_vector, k, filters)
        return SearchResult(result.hits, FEE)


def _search(driver: Driver, store: VectorStore, query: str) -> Any:
    if driver.is_async:
        return asyncio.run(store.asearch(query, k=1))
    return store.search(query, k=1)


def _spent(settings: TollwaySettings) -> tuple[Decimal, Decimal]:
    (row,) = guards(settings)[0].status()  # type: ignore[attr-defined]
    return row.spent, row.reserved


def test_a_managed_stores_fee_is_reserved_and_stops_searches_when_spent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: Driver) -> None:
    monkeypatch.setenv("FEES_MANAGED_KEY", MANAGED_KEY)
    with FakeVectorStores(api_key=MANAGED_KEY) as fake:
        limit = Decimal(OPENAI_SEARCH_FEE_NANOS) * Decimal("1.6") / 10**9
        settings = TollwaySettings.from_dict({
            "budgets": [{"limit": str(limit), "unit": "usd", "period": "day"}],
            "budget_store": {"backend": "memory"}, "ledger": str(tmp_path / "ledger.db"),
            "vector_stores": {"kb": {"backend": "openai", "base_url": fake.url,
                                     "api_key": "env:FEES_MANAGED_KEY",
                                     "options": {"poll_interval": 0.01}}},
        })
        with VectorStore("kb", config=settings) as store:
            store.add(["Oslo is the capital of Norway."])
            assert _search(driver, store, "capital of Norway")[0].text.startswith("Oslo")
            assert fake.searches == 1
            assert _spent(settings) == (Decimal(OPENAI_SEARCH_FEE_NANOS) / 10**9, 0)
            with pytest.raises(BudgetExceededError, match="usd"):
                _search(driver, store, "capital of Norway")
            assert fake.searches == 1  # denied before the backend was called
            assert _spent(settings)[1] == 0  # the refused reservation left nothing held
            rows = [(r.status, r.cost_nanos) for r in store.ledger.records()  # type: ignore[union-attr]
                    if r.kind == "retrieval"]
            assert rows == [("ok", OPENAI_SEARCH_FEE_NANOS), ("BudgetExceededError", 0)]


def _paid_store(tmp_path: Path, media: FakeProvider, limit: str, name: str
                ) -> tuple[VectorStore, PaidSQLite, TollwaySettings]:
    settings = TollwaySettings.from_dict({
        "models": {"embedder": {"model": "openai/text-embedding-3-small",
                                "api_base": media.url, "api_key": "env:VEC_TEST_KEY"}},
        "budgets": [{"limit": limit, "unit": "usd", "period": "day"}],
        "budget_store": {"backend": "memory"}, "ledger": str(tmp_path / f"{name}.ledger.db"),
        "vector_stores": {"paid": {"embedding": "embedder", "path": str(tmp_path / f"{name}.db")}},
    })
    backend = PaidSQLite(tmp_path / f"{name}.db")
    return VectorStore("paid", config=settings, backend=backend), backend, settings


def test_room_for_the_embedding_but_not_the_fee_denies_before_anything_is_called(
        tmp_path: Path, media: FakeProvider, monkeypatch: pytest.MonkeyPatch,
        driver: Driver) -> None:
    monkeypatch.setenv("VEC_TEST_KEY", KEY)
    store, backend, _ = _paid_store(tmp_path, media, "0.0005", "short")  # fee: 0.001
    with store:
        with pytest.raises(BudgetExceededError, match="usd"):
            _search(driver, store, "the Paris office")
        assert backend.searches == 0 and media.requests == []  # no embedding, no search

    store, backend, settings = _paid_store(tmp_path, media, "0.01", "roomy")
    with store:
        store.add(["The Paris office opens at nine.", "Oslo is cold in winter."])
        hit = _search(driver, store, "When does the Paris office open?")[0]
        assert hit.text == "The Paris office opens at nine." and backend.searches == 1
        (row,) = [r for r in store.ledger.records() if r.kind == "retrieval"]  # type: ignore[union-attr]
        assert row.cost_nanos is not None and row.cost_nanos > FEE  # embedding + fee
        adds = sum(r.cost_nanos or 0 for r in store.ledger.records()  # type: ignore[union-attr]
                   if r.kind == "embedding")
        spent, reserved = _spent(settings)
        assert reserved == 0 and spent == Decimal(adds + row.cost_nanos) / 10**9


class LockingPaidSQLite(PaidSQLite):
    """A paid backend during whose search another connection takes the budget file's
    write lock while the fee is settled after the search."""

    def __init__(self, path: Path, lock: Any) -> None:
        super().__init__(path)
        self.lock = lock

    async def search(self, query: str, query_vector: list[float] | None, k: int,
                     filters: Any) -> SearchResult:
        result = await super().search(query, query_vector, k, filters)
        self.lock.take()
        return result


def test_a_store_locked_on_the_fees_settle_keeps_the_answer_the_row_and_the_settle(
        tmp_path: Path, media: FakeProvider, monkeypatch: pytest.MonkeyPatch,
        driver: Driver) -> None:
    from tests.core.test_settle_and_write import _WriteLock

    monkeypatch.setenv("VEC_TEST_KEY", KEY)
    budgets_db = tmp_path / "budgets.db"
    settings = TollwaySettings.from_dict({
        "models": {"embedder": {"model": "openai/text-embedding-3-small",
                                "api_base": media.url, "api_key": "env:VEC_TEST_KEY"}},
        "budgets": [{"limit": "0.01", "unit": "usd", "period": "day"}],
        "budget_store": {"backend": "sqlite", "path": str(budgets_db), "busy_timeout": 0.2},
        "ledger": str(tmp_path / "ledger.db"),
        "vector_stores": {"paid": {"embedding": "embedder", "path": str(tmp_path / "v.db")}},
    })
    with _WriteLock(budgets_db) as lock:
        backend = LockingPaidSQLite(tmp_path / "v.db", lock)
        with VectorStore("paid", config=settings, backend=backend) as store:
            store.add(["The Paris office opens at nine."])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                hits = _search(driver, store, "When does the Paris office open?")
            assert hits[0].text == "The Paris office opens at nine."
            (row,) = [r for r in store.ledger.records() if r.kind == "retrieval"]  # type: ignore[union-attr]
            assert row.status == "ok" and row.cost_nanos is not None and row.cost_nanos > FEE
            # the settle is a spool write: the lock delays it, nothing fails
            assert [w for w in caught if isinstance(w.message, BudgetSettleWarning)] == []
    (counter,) = guards(settings)[0].store.counters(time.time())  # type: ignore[attr-defined]
    assert counter.reserved == 0 and counter.spent >= row.cost_nanos  # applied once free
