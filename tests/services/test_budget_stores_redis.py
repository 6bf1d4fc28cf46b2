"""The budget store contract on a real Redis (TOLLWAY_TEST_REDIS_URL; skipped when unset).

Each test gets its own key prefix and deletes its keys afterwards, so runs never see
each other's counters.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.core.cost.budgets.store_contract import NOW, StoreContract, charge
from tollway.core.stores.redis_budgets import RedisBudgetStore

URL = os.environ.get("TOLLWAY_TEST_REDIS_URL")

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not URL, reason="TOLLWAY_TEST_REDIS_URL is not set"),
]


@pytest.fixture
def prefix() -> str:
    return f"{{tollway-test-{uuid.uuid4().hex[:12]}}}:"


class TestRedisStore(StoreContract):
    @pytest.fixture
    def store(self, prefix: str) -> Iterator[RedisBudgetStore]:
        store = RedisBudgetStore(URL or "", prefix=prefix)
        yield store
        store.delete_all()
        store.close()

    @pytest.fixture
    def store_spec(self, prefix: str) -> dict[str, Any]:
        return {"backend": "redis", "url": URL, "prefix": prefix}

    def test_counters_expire_in_redis_an_hour_after_their_period(
        self, store: RedisBudgetStore
    ) -> None:
        end = int(NOW) + 600
        store.reserve("h", [charge("d|all|1", amount=1, start=1, end=end)], NOW + 60, NOW)
        client, *_ = store._sync()
        assert client.expiretime(store.prefix + "c:d|all|1") == end + 3600

    def test_a_prefix_without_braces_becomes_a_cluster_hash_tag(self) -> None:
        assert RedisBudgetStore("redis://x", prefix="team-a:").prefix == "{team-a}:"


def test_a_guarded_call_costs_one_round_trip_to_reserve_and_one_to_settle(prefix: str) -> None:
    import redis

    from tests.core.cost.budgets import support
    from tollway.core.cost.budgets import Budgets
    from tollway.core.cost.policy import BudgetPolicy
    from tollway.core.types import Usage

    class CountingConnection(redis.Connection):
        sent = 0

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            type(self).sent += 1
            super().send_packed_command(command, check_health)

    store = RedisBudgetStore(URL or "", prefix=prefix, connection_class=CountingConnection)
    try:
        guard = Budgets(
            [BudgetPolicy(scope={"user": "each"}, limit=1, period="day"),
             BudgetPolicy(scope={"project": "p"}, limit=1, period="month")],
            store=store, prices=support.pricebook(),
        )
        ctx = support.call_context(user="alice", project="p")
        dep = support.deployment()
        guard.reserve(ctx, dep).settle(Usage(10, 5), 5000)  # loads the scripts
        guard.reserve(ctx, dep).release()
        CountingConnection.sent = 0
        for _ in range(10):
            guard.reserve(ctx, dep).settle(Usage(10, 5), 5000)
        assert CountingConnection.sent == 20
    finally:
        store.delete_all()
        store.close()
