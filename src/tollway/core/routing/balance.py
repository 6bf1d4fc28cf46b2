"""Balancing: which of the ready deployments takes the next attempt.

Every strategy narrows the ready set to the best candidates by its measure and then
draws among them by weight, so ties (and the weighted default) spread load instead of
hammering the first deployment in the file.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tollway.core.providers import Deployment
    from tollway.core.routing.health import HealthBoard

Strategy = Literal["weighted", "least_inflight", "latency", "cost"]
"""How an alias spreads calls over its ready deployments (``router: strategy:``)."""

LATENCY_SLACK = 1.2
"""Deployments within 20% of the fastest EWMA share the load (so a fast deployment that
had one slow answer is not abandoned, and close ones are not starved of measurements)."""


def choose(
    strategy: Strategy,
    ready: Sequence[Deployment],
    board: HealthBoard,
    rng: random.Random,
    cost_of: Callable[[Deployment], int | None],
) -> Deployment:
    if len(ready) == 1:
        return ready[0]
    pool: Sequence[Deployment] = ready
    if strategy == "least_inflight":
        loads = [board.health(d).in_flight for d in ready]
        low = min(loads)
        pool = [d for d, load in zip(ready, loads, strict=True) if load == low]
    elif strategy == "latency":
        latencies = [board.health(d).latency for d in ready]
        unmeasured = [d for d, lat in zip(ready, latencies, strict=True) if lat is None]
        if unmeasured:  # measure every deployment before comparing them
            pool = unmeasured
        else:
            best = min(lat for lat in latencies if lat is not None)
            pool = [
                d for d, lat in zip(ready, latencies, strict=True)
                if lat is not None and lat <= best * LATENCY_SLACK
            ]
    elif strategy == "cost":
        priced = [(c, d) for d in ready if (c := cost_of(d)) is not None]
        if priced:  # unpriced deployments only serve when no priced one is ready
            cheapest = min(c for c, _ in priced)
            pool = [d for c, d in priced if c == cheapest]
    return weighted(pool, rng)


def weighted(pool: Sequence[Deployment], rng: random.Random) -> Deployment:
    if len(pool) == 1:
        return pool[0]
    point = rng.random() * sum(d.weight for d in pool)
    for dep in pool:
        point -= dep.weight
        if point < 0:
            return dep
    return pool[-1]


__all__ = ["LATENCY_SLACK", "choose", "weighted"]
