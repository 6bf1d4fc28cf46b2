"""Shared pieces of the budget tests: a fixed price, Models wired to a store, and the
functions child processes run (importable by name, so ``spawn`` can start them)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tollway import errors
from tollway.core.cost.attribution import Attribution
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.policy import BudgetPolicy
from tollway.core.cost.pricing import PriceBook
from tollway.core.hooks import CallContext
from tollway.core.inputs import build_request
from tollway.core.model import Model
from tollway.core.providers import Deployment, resolve_deployment
from tollway.core.stores.open import open_budget_store

KEY = "sk-test-budget-key-0123456789"
MODEL = "openai/gpt-4o-mini"
PRICE = {"input": 0, "output": 1}
"""USD per million tokens: a call with 5 output tokens costs exactly 5,000 nano-USD, and
its upper bound with max_tokens=5 is the same 5,000 (input is free)."""
CALL_NANOS = 5_000
LIMIT_2_5_CALLS_USD = "0.0000125"
"""12,500 nano-USD: room for two calls and a half."""


def pricebook(price: Mapping[str, Any] | None = None) -> PriceBook:
    return PriceBook({MODEL: dict(price or PRICE)})


def usd_budget(limit: str = LIMIT_2_5_CALLS_USD, **kw: Any) -> BudgetPolicy:
    """A USD budget over all calls. Its period is ``total`` by default: with ``day`` a
    test that calls before midnight UTC and reads the counters after it looks in the
    wrong window (the likeliest cause of a CI failure seen once); period windows are
    tested with explicit clocks elsewhere."""
    kw.setdefault("period", "total")
    return BudgetPolicy(limit=limit, **kw)


def make_model(url: str, guard: Budgets, book: PriceBook | None = None, **kw: Any) -> Model:
    return Model(
        MODEL, api_key=KEY, api_base=url, guards=[guard], ledger=False,
        prices=book or guard.prices, **kw,
    )


def call_context(prompt: str = "hi", *, max_tokens: int = 5, alias: str | None = None,
                 **attribution: Any) -> CallContext:
    return CallContext(
        request=build_request(prompt, max_tokens=max_tokens),
        attribution=Attribution.of(attribution),
        trace_id="trace",
        stream=False,
        alias=alias,
        started=time.perf_counter(),
        started_at=datetime.now(UTC),
    )


def deployment(url: str = "http://127.0.0.1:9", target: str = MODEL, **kw: Any) -> Deployment:
    return resolve_deployment(target, api_key=KEY, api_base=url, **kw)


def run_threads(n: int, fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn`` in ``n`` threads released together; results or exceptions, in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except BaseException as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# --------------------------------------------------------------------------- children


def child_calls(store_spec: dict[str, Any], url: str, limit: str, calls: int,
                start_at: float) -> tuple[int, int, int]:
    """Run in a spawned process: ``calls`` concurrent calls through a Model sharing the
    store. Returns (answered, denied, other errors)."""
    store = open_budget_store(store_spec)
    guard = Budgets([usd_budget(limit)], store=store, prices=pricebook())
    model = make_model(url, guard)
    delay = start_at - time.time()
    if delay > 0:  # line the processes up so their calls really overlap
        time.sleep(delay)
    results = run_threads(calls, lambda: model.complete("hi", max_tokens=5))
    answered = sum(1 for r in results if not isinstance(r, BaseException))
    denied = sum(1 for r in results if isinstance(r, errors.BudgetExceededError))
    store.close()
    return answered, denied, calls - answered - denied


def child_reserve_and_hang(store_spec: dict[str, Any], limit: str, ttl: float,
                           ready: Any) -> None:
    """Run in a spawned process: take a reservation, say so, then wait to be killed."""
    store = open_budget_store(store_spec)
    guard = Budgets([usd_budget(limit)], store=store, prices=pricebook(), reservation_ttl=ttl)
    guard.reserve(call_context(), deployment())
    ready.put(os.getpid())
    time.sleep(120)
