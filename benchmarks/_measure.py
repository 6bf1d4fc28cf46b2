"""Timing loops shared by the case modules (worker side).

Every loop is bounded twice: by a call count and by a deadline, whichever comes first
(after a minimum number of samples), so a slow client cannot stretch a run. CPU time
is ``time.process_time()``: the whole process, background threads included.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import latency_stats


def bounds(params: dict[str, Any]) -> tuple[int, int, int, float]:
    """(warm-up calls, minimum calls, maximum calls, seconds) from a job's params."""
    return (
        int(params.get("warmup", 20)),
        int(params.get("min_calls", 30)),
        int(params.get("max_calls", 2000)),
        float(params.get("seconds", 1.0)),
    )


def warm_until(params: dict[str, Any]) -> int:
    """When the warm-up may end (``perf_counter_ns``): after its calls AND at least
    ``warmup_seconds``, so what a client does once in its first tenth of a second (a
    spool flusher's first pass: its thread's connection, SQLite's first statements) is
    not billed to the measured calls. The same for every client."""
    return time.perf_counter_ns() + int(float(params.get("warmup_seconds", 0.0)) * 1e9)


def sequential(fn: Callable[[], Any], params: dict[str, Any],
               on_start: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Call ``fn`` one call after another; per-call latency, CPU per call.
    ``on_start`` runs after the warm-up, before timing (e.g. reset server counters)."""
    warmup, least, most, seconds = bounds(params)
    warm = warm_until(params)
    for _ in range(warmup):
        fn()
    while time.perf_counter_ns() < warm:
        fn()
    if on_start is not None:
        on_start()
    gc.collect()
    clock = time.perf_counter_ns
    samples: list[int] = []
    cpu0 = time.process_time()
    start = clock()
    deadline = start + int(seconds * 1e9)
    while len(samples) < most:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        if t1 > deadline and len(samples) >= least:
            break
    wall = (clock() - start) / 1e9
    cpu = time.process_time() - cpu0
    return {**latency_stats(samples), "cpu_us": cpu / len(samples) * 1e6,
            "calls_per_s": len(samples) / wall}


async def asequential(fn: Callable[[], Awaitable[Any]], params: dict[str, Any],
                      on_start: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Await ``fn`` one call after another on one event loop."""
    warmup, least, most, seconds = bounds(params)
    warm = warm_until(params)
    for _ in range(warmup):
        await fn()
    while time.perf_counter_ns() < warm:
        await fn()
    if on_start is not None:
        on_start()
    gc.collect()
    clock = time.perf_counter_ns
    samples: list[int] = []
    cpu0 = time.process_time()
    start = clock()
    deadline = start + int(seconds * 1e9)
    while len(samples) < most:
        t0 = clock()
        await fn()
        t1 = clock()
        samples.append(t1 - t0)
        if t1 > deadline and len(samples) >= least:
            break
    wall = (clock() - start) / 1e9
    cpu = time.process_time() - cpu0
    return {**latency_stats(samples), "cpu_us": cpu / len(samples) * 1e6,
            "calls_per_s": len(samples) / wall}


async def concurrent(
    fn: Callable[[], Awaitable[Any]], concurrency: int, params: dict[str, Any]
) -> dict[str, Any]:
    """``concurrency`` callers in one loop, each calling ``fn`` back to back until the
    shared count or the deadline is reached. One warm-up wave opens the pool first."""
    _, _, most, seconds = bounds(params)
    errors: dict[str, int] = {}

    async def guarded() -> bool:
        try:
            await fn()
        except Exception as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
            return False
        return True

    # Warm-up wave: opens the pool's connections; bounded in time (a pathological pool
    # can take a minute for 256 calls), unfinished calls are cancelled.
    await _bounded([guarded() for _ in range(concurrency)], seconds)
    warm_errors = sum(errors.values())
    errors.clear()
    gc.collect()
    clock = time.perf_counter_ns
    samples: list[int] = []
    issued = 0
    start = clock()
    deadline = start + int(seconds * 1e9)
    cpu0 = time.process_time()

    async def caller() -> None:
        nonlocal issued
        while issued < most and clock() < deadline:
            issued += 1
            t0 = clock()
            if await guarded():
                samples.append(clock() - t0)

    cancelled = await _bounded([caller() for _ in range(concurrency)], seconds + 0.5)
    wall = (clock() - start) / 1e9
    cpu = time.process_time() - cpu0
    done = len(samples)
    return {
        **latency_stats(samples),
        "calls_per_s": done / wall if wall else 0.0,
        "cpu_us": cpu / done * 1e6 if done else None,
        "errors": sum(errors.values()),
        "error_types": errors,
        "warmup_errors": warm_errors,
        "issued": issued,
        "cancelled_at_deadline": cancelled,
        "concurrency": concurrency,
    }


async def _bounded(coros: list[Awaitable[Any]], seconds: float) -> int:
    """Run ``coros`` concurrently for at most ``seconds``; cancel the rest (how many)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)
