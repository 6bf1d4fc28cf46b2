"""The budget store contract on a real PostgreSQL (TOLLWAY_TEST_POSTGRES_URL; skipped when
unset). Each test gets its own schema, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.core.cost.budgets.store_contract import NOW, StoreContract, charge
from tollway.core.errors import ConfigError
from tollway.core.stores.postgres_budgets import PostgresBudgetStore

URL = os.environ.get("TOLLWAY_TEST_POSTGRES_URL")

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not URL, reason="TOLLWAY_TEST_POSTGRES_URL is not set"),
]


@pytest.fixture
def schema() -> str:
    return f"tollway_test_{uuid.uuid4().hex[:12]}"


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, schema: str) -> Iterator[PostgresBudgetStore]:
        store = PostgresBudgetStore(URL or "", schema=schema)
        yield store
        store.drop()

    @pytest.fixture
    def store_spec(self, schema: str) -> dict[str, Any]:
        return {"backend": "postgres", "url": URL, "schema": schema}

    def test_schema_name_must_be_a_plain_identifier(self) -> None:
        with pytest.raises(ConfigError, match="identifier"):
            PostgresBudgetStore(URL or "", schema="x; DROP TABLE y")


def test_store_without_synchronous_commit_keeps_the_same_semantics(schema: str) -> None:
    store = PostgresBudgetStore(URL or "", schema=schema, synchronous_commit=False)
    try:
        c = charge(amount=60)
        assert store.reserve("h1", [c], NOW + 60, NOW) is None
        assert store.reserve("h2", [c], NOW + 60, NOW) is not None
        assert store.settle("h1", [c], [10], NOW) == [10]
        with store._conn() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    finally:
        store.drop()
