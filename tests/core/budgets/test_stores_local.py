"""The store contract on the two stores that need no service: memory and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.core.budgets.store_contract import StoreContract
from tollway.core.stores.memory_budgets import MemoryBudgetStore
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryBudgetStore:
        return MemoryBudgetStore()

    @pytest.fixture
    def store_spec(self) -> None:
        return None


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "nested" / "budgets.db"

    @pytest.fixture
    def store(self, path: Path) -> Iterator[SQLiteBudgetStore]:
        store = SQLiteBudgetStore(path)
        yield store
        store.close()

    @pytest.fixture
    def store_spec(self, path: Path) -> dict[str, Any]:
        return {"backend": "sqlite", "path": str(path)}
