"""The one test suite every budget store must pass (memory, sqlite, redis, postgres).

A store's test module subclasses :class:`StoreContract` and provides the ``store``
fixture (a fresh, isolated store) and ``store_spec`` (how a child process opens the
same store; None for stores that live in one process). The tests go through the store
API directly for exact semantics, and through ``tollway.Model`` against the loopback
fake provider for the concurrency proofs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import threading
import time
from typing import Any

import pytest

from tests.core.cost.budgets import support
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Received, Reply
from tollway import errors
from tollway.core.cost.budgets import Budgets, BudgetStore, Charge, CounterState, Denial
from tollway.core.types import Usage

NOW = 1_800_000_000.0


def charge(key: str = "b|all|0", amount: int = 10, limit: int = 100, *,
           start: int = 0, end: int | None = None) -> Charge:
    budget, scope, _ = key.split("|")
    return Charge(key, budget, scope, start, end, limit, amount)


def state(store: BudgetStore, key: str, now: float = NOW) -> CounterState:
    found = {c.key: c for c in store.counters(now)}
    return found[key]


def balanced(c: CounterState) -> bool:
    """The books close: every reserved unit was spent, given back, or is still held."""
    return c.reserved_total == c.spent - c.overrun_total + c.released_total + c.reserved


class StoreContract:
    """Subclasses provide fixtures ``store`` and ``store_spec``."""

    shared_between_processes = True

    # ------------------------------------------------------------------ exact semantics

    def test_reserve_takes_room_and_denies_what_does_not_fit(self, store: BudgetStore) -> None:
        assert store.reserve("h1", [charge(amount=60)], NOW + 60, NOW) is None
        denial = store.reserve("h2", [charge(amount=41)], NOW + 60, NOW)
        assert denial == Denial(0, 0, 60)
        assert store.reserve("h3", [charge(amount=40)], NOW + 60, NOW) is None
        c = state(store, "b|all|0")
        assert (c.spent, c.reserved, c.reserved_total) == (0, 100, 100)

    def test_reserve_is_all_or_nothing_across_counters(self, store: BudgetStore) -> None:
        small = charge("small|all|0", amount=10, limit=15)
        big = charge("big|all|0", amount=10, limit=1000)
        assert store.reserve("h1", [big, small], NOW + 60, NOW) is None
        denial = store.reserve("h2", [big, small], NOW + 60, NOW)
        assert denial == Denial(1, 0, 10)
        assert state(store, "big|all|0").reserved == 10  # untouched by the denied call
        assert state(store, "small|all|0").reserved == 10

    def test_zero_limit_denies_every_call(self, store: BudgetStore) -> None:
        assert store.reserve("h", [charge(amount=1, limit=0)], NOW + 60, NOW) == Denial(0, 0, 0)

    def test_settle_moves_the_real_amount_to_spent_and_frees_the_rest(
        self, store: BudgetStore
    ) -> None:
        c1 = charge(amount=60)
        store.reserve("h1", [c1], NOW + 60, NOW)
        assert store.settle("h1", [c1], [25], NOW) == [25]
        c = state(store, "b|all|0")
        assert (c.spent, c.reserved, c.released_total, c.overrun_total) == (25, 0, 35, 0)
        assert store.reserve("h2", [charge(amount=75)], NOW + 60, NOW) is None
        assert balanced(state(store, "b|all|0"))

    def test_settle_above_the_reservation_counts_the_overrun(self, store: BudgetStore) -> None:
        c1 = charge(amount=10)
        store.reserve("h1", [c1], NOW + 60, NOW)
        assert store.settle("h1", [c1], [14], NOW) == [14]
        c = state(store, "b|all|0")
        assert (c.spent, c.reserved, c.overrun_total, c.released_total) == (14, 0, 4, 0)
        assert balanced(c)

    def test_settle_twice_counts_the_reservation_once(self, store: BudgetStore) -> None:
        c1 = charge(amount=10)
        store.reserve("h1", [c1], NOW + 60, NOW)
        store.settle("h1", [c1], [10], NOW)
        c = state(store, "b|all|0")
        assert (c.spent, c.reserved) == (10, 0)

    def test_release_gives_the_whole_reservation_back(self, store: BudgetStore) -> None:
        c1, c2 = charge(amount=30), charge("u|user=a|0", amount=30)
        store.reserve("h1", [c1, c2], NOW + 60, NOW)
        store.release("h1", [c1, c2], NOW)
        store.release("h1", [c1, c2], NOW)  # a second release is a no-op
        for key in ("b|all|0", "u|user=a|0"):
            c = state(store, key)
            assert (c.spent, c.reserved, c.released_total, c.reserved_total) == (0, 0, 30, 30)

    def test_release_of_an_unknown_hold_changes_nothing(self, store: BudgetStore) -> None:
        store.reserve("h1", [charge(amount=30)], NOW + 60, NOW)
        store.release("nope", [charge(amount=30)], NOW)
        assert state(store, "b|all|0").reserved == 30

    def test_expired_reservation_is_swept_and_its_room_comes_back(self, store: BudgetStore) -> None:
        store.reserve("dead", [charge(amount=100)], NOW + 10, NOW)
        assert store.reserve("h2", [charge(amount=1)], NOW + 70, NOW + 9) is not None
        assert store.reserve("h3", [charge(amount=100)], NOW + 70, NOW + 10) is None
        c = state(store, "b|all|0", NOW + 10)
        assert (c.reserved, c.released_total, c.reserved_total) == (100, 100, 200)

    def test_settle_after_expiry_still_counts_the_spend(self, store: BudgetStore) -> None:
        c1 = charge(amount=40)
        store.reserve("slow", [c1], NOW + 10, NOW)
        store.counters(NOW + 11)  # sweeps it
        assert store.settle("slow", [c1], [30], NOW + 12) == [30]
        c = state(store, "b|all|0", NOW + 12)
        assert (c.spent, c.reserved, c.released_total, c.overrun_total) == (30, 0, 40, 30)
        assert balanced(c)

    def test_counters_lists_current_periods_only(self, store: BudgetStore) -> None:
        old = charge("d|all|100", amount=1, start=100, end=int(NOW) - 5)
        current = charge("d|all|200", amount=1, start=200, end=int(NOW) + 100)
        forever = charge("t|all|0", amount=1)
        store.reserve("h", [old, current, forever], NOW + 60, NOW - 10)
        keys = {c.key for c in store.counters(NOW)}
        assert keys == {"d|all|200", "t|all|0"}
        listed = {c.key: c for c in store.counters(NOW)}
        assert listed["d|all|200"].period_end == int(NOW) + 100
        assert listed["t|all|0"].period_end is None
        assert (listed["d|all|200"].budget, listed["d|all|200"].scope) == ("d", "all")

    def test_limit_follows_the_latest_policy(self, store: BudgetStore) -> None:
        store.reserve("h1", [charge(amount=50, limit=60)], NOW + 60, NOW)
        assert store.reserve("h2", [charge(amount=50, limit=60)], NOW + 60, NOW) is not None
        assert store.reserve("h3", [charge(amount=50, limit=100)], NOW + 60, NOW) is None
        assert state(store, "b|all|0").limit == 100

    async def test_async_methods_have_the_same_semantics(self, store: BudgetStore) -> None:
        try:
            c1 = charge(amount=60)
            assert await store.areserve("a1", [c1], NOW + 60, NOW) is None
            assert await store.areserve("a2", [c1], NOW + 60, NOW) == Denial(0, 0, 60)
            assert await store.asettle("a1", [c1], [20], NOW) == [20]
            assert await store.areserve("a3", [charge(amount=80)], NOW + 60, NOW) is None
            await store.arelease("a3", [charge(amount=80)], NOW)
            (c,) = [c for c in await store.acounters(NOW) if c.key == "b|all|0"]
            assert (c.spent, c.reserved, c.released_total, c.reserved_total) == (20, 0, 120, 140)
        finally:
            await _aclose(store)

    # ------------------------------------------------------------------ through the Model

    def _guard(self, store: BudgetStore, limit: str = support.LIMIT_2_5_CALLS_USD,
               **kw: Any) -> Budgets:
        return Budgets([support.usd_budget(limit)], store=store, prices=support.pricebook(), **kw)

    def _spent(self, guard: Budgets) -> CounterState:
        (row,) = [c for c in guard.store.counters(time.time()) if c.budget == "all/usd/total"]
        return row

    def test_50_threads_on_a_budget_worth_2_5_calls_let_exactly_2_through(
        self, store: BudgetStore, fake: FakeProvider
    ) -> None:
        fake.default = oai.text_reply("hi", usage=Usage(input_tokens=10, output_tokens=5))
        guard = self._guard(store)
        model = support.make_model(fake.url, guard)
        results = support.run_threads(50, lambda: model.complete("hi", max_tokens=5))
        answered = [r for r in results if not isinstance(r, BaseException)]
        denied = [r for r in results if isinstance(r, errors.BudgetExceededError)]
        assert len(answered) == 2 and len(denied) == 48, results
        assert len(fake.requests) == 2
        c = self._spent(guard)
        assert c.spent == 2 * support.CALL_NANOS <= 12_500
        assert c.reserved == 0 and balanced(c)
        assert sum(r.cost_nanos for r in answered) == c.spent

    async def test_50_async_tasks_on_a_budget_worth_2_5_calls_let_exactly_2_through(
        self, store: BudgetStore, fake: FakeProvider
    ) -> None:
        fake.default = oai.text_reply("hi", usage=Usage(input_tokens=10, output_tokens=5))
        guard = self._guard(store)
        model = support.make_model(fake.url, guard)
        try:
            results = await asyncio.gather(
                *(model.acomplete("hi", max_tokens=5) for _ in range(50)), return_exceptions=True
            )
            counters = await store.acounters(time.time())
        finally:
            await _aclose(store)
        answered = [r for r in results if not isinstance(r, BaseException)]
        denied = [r for r in results if isinstance(r, errors.BudgetExceededError)]
        assert len(answered) == 2 and len(denied) == 48, results
        assert len(fake.requests) == 2
        (c,) = [c for c in counters if c.budget == "all/usd/total"]
        assert c.spent == 2 * support.CALL_NANOS and c.reserved == 0 and balanced(c)

    def test_4_processes_share_one_budget_worth_2_5_calls(
        self, store: BudgetStore, store_spec: dict[str, Any] | None, fake: FakeProvider
    ) -> None:
        if store_spec is None:
            pytest.skip("this store lives in one process")
        fake.default = oai.text_reply("hi", usage=Usage(input_tokens=10, output_tokens=5))
        ctx = multiprocessing.get_context("spawn")
        start_at = time.time() + 3.0
        jobs = [(store_spec, fake.url, support.LIMIT_2_5_CALLS_USD, n, start_at)
                for n in (13, 13, 12, 12)]
        with ctx.Pool(4) as pool:
            results = pool.starmap(support.child_calls, jobs)
        answered = sum(r[0] for r in results)
        denied = sum(r[1] for r in results)
        assert (answered, denied, sum(r[2] for r in results)) == (2, 48, 0), results
        assert len(fake.requests) == 2
        c = self._spent(self._guard(store))
        assert c.spent == 2 * support.CALL_NANOS and c.reserved == 0 and balanced(c)

    def test_500_calls_with_random_costs_stay_within_the_limit_and_balance(
        self, store: BudgetStore, fake: FakeProvider
    ) -> None:
        rng = random.Random(5)
        lock = threading.Lock()

        def reply(received: Received) -> Reply:
            max_tokens = received.json["max_completion_tokens"]
            with lock:
                used = Usage(input_tokens=rng.randint(1, 8), output_tokens=rng.randint(0, max_tokens))
            return oai.text_reply("x", usage=used)

        fake.default = reply
        guard = Budgets(
            [support.usd_budget("0.01")], store=store,
            prices=support.pricebook({"input": 2, "output": 3}),
        )
        model = support.make_model(fake.url, guard)
        sizes = [rng.randint(1, 60) for _ in range(500)]
        results: list[Any] = []

        def worker(chunk: list[int]) -> None:
            for size in chunk:
                try:
                    results.append(model.complete("hello there", max_tokens=size))
                except errors.BudgetExceededError as exc:
                    results.append(exc)

        threads = [threading.Thread(target=worker, args=(sizes[i::10],))
                   for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        answered = [r for r in results if not isinstance(r, BaseException)]
        assert len(results) == 500
        assert 0 < len(answered) < 500
        assert len(fake.requests) == len(answered)
        c = self._spent(guard)
        assert c.spent <= 10_000_000
        assert c.spent == sum(r.cost_nanos for r in answered)
        assert c.reserved == 0 and c.overrun_total == 0
        assert c.spent + c.released_total == c.reserved_total

    def test_provider_failure_releases_the_reservation(
        self, store: BudgetStore, fake: FakeProvider
    ) -> None:
        fake.add(oai.error_reply(500, "boom"))
        fake.default = oai.text_reply("hi", usage=Usage(input_tokens=10, output_tokens=5))
        guard = self._guard(store, limit="0.000005")  # room for exactly one call
        model = support.make_model(fake.url, guard)
        with pytest.raises(errors.ServerError):
            model.complete("hi", max_tokens=5)
        c = self._spent(guard)
        assert (c.spent, c.reserved, c.released_total) == (0, 0, support.CALL_NANOS)
        assert model.complete("hi", max_tokens=5).cost_nanos == support.CALL_NANOS
        assert self._spent(guard).spent == support.CALL_NANOS

    def test_reservation_of_a_sigkilled_holder_expires_after_its_ttl(
        self, store: BudgetStore, store_spec: dict[str, Any] | None, fake: FakeProvider
    ) -> None:
        if store_spec is None:
            pytest.skip("this store lives in one process")
        fake.default = oai.text_reply("hi", usage=Usage(input_tokens=10, output_tokens=5))
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        ttl = 30.0
        child = ctx.Process(
            target=support.child_reserve_and_hang, args=(store_spec, "0.000005", ttl, ready)
        )
        child.start()
        try:
            pid = ready.get(timeout=60)
            reserved_at = time.time()
        finally:
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            child.join(10)
        assert pid == child.pid and child.exitcode == -signal.SIGKILL

        clock = {"now": reserved_at}
        guard = self._guard(store, limit="0.000005", clock=lambda: clock["now"])
        model = support.make_model(fake.url, guard)
        with pytest.raises(errors.BudgetExceededError) as denied:
            model.complete("hi", max_tokens=5)
        assert denied.value.reserved == pytest.approx(support.CALL_NANOS / 1e9)
        assert fake.requests == []

        clock["now"] = reserved_at + ttl + 1  # the dead holder's TTL has passed
        assert model.complete("hi", max_tokens=5).cost_nanos == support.CALL_NANOS
        assert len(fake.requests) == 1
        c = self._spent(guard)
        assert (c.spent, c.reserved, c.released_total) == (support.CALL_NANOS, 0, support.CALL_NANOS)


async def _aclose(store: BudgetStore) -> None:
    close = getattr(store, "aclose", None)
    if close is not None:
        await close()
