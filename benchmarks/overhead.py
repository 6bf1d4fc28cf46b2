"""Per-call overhead of tollway over a raw httpx call, measured side by side in one run.

    uv run python benchmarks/overhead.py [--quick] [--json out.json]

Against the same loopback fake server (a separate process pinned to another core):
raw httpx vs tollway ``complete`` (sync), ``acomplete`` (async sequential and 256
concurrent), streaming per-chunk cost, and tollway with the ledger (sqlite) and budgets
(memory / sqlite / redis when available) on. Rounds interleave the cases so machine
noise hits every column alike; figures are medians over rounds. Added time = tollway's
median minus raw httpx's median from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from fake_server import STREAM_CHUNKS, BenchServer, measure_capacity

PROMPT = [{"role": "user", "content": "What is the answer?"}]
BODY = {"model": "gpt-4o-mini", "messages": PROMPT}
HEADERS = {"authorization": "Bearer sk-bench", "content-type": "application/json"}


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def per_call(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(wall seconds per call, CPU seconds per call incl. background threads)."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls, (time.process_time() - cpu0) / calls


def aper_call(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        await fn()  # warm the per-loop client
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            await fn()
        result = (time.perf_counter() - t0) / calls, (time.process_time() - cpu0) / calls
        for session in getattr(fn, "session", ()):
            await session.close()
        return result

    return asyncio.run(run())


def throughput(make: Callable[[], Callable[[], Any]], total: int, concurrency: int) -> float:
    """Calls per second with ``concurrency`` calls in flight (asyncio)."""

    async def run() -> float:
        fn = make()
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await fn()

        await asyncio.gather(*(one() for _ in range(concurrency)))  # warm up the pool
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        rate = total / (time.perf_counter() - t0)
        for session in getattr(fn, "session", ()):
            await session.close()
        return rate

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    calls, rounds, total = (300, 3, 1024) if args.quick else (1500, 7, 4096)

    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    import tollway
    from tollway.core.types import StreamEnd

    results: dict[str, Any] = {"calls_per_round": calls, "rounds": rounds}
    with BenchServer(cpu=1) as url:
        pin(0)
        cap = measure_capacity(url)
        results["server_capacity_rps"] = cap
        print(f"fake server raw capacity: {cap:,.0f} requests/s (pipelined raw sockets)")

        client = httpx.Client()
        target = f"{url}/chat/completions"
        raw_body = json.dumps(BODY, separators=(",", ":")).encode()

        def raw_sync() -> Any:
            return json.loads(client.post(target, content=raw_body, headers=HEADERS).content)

        import httpcore

        pool = httpcore.ConnectionPool()
        core_url = httpcore.URL(target)
        core_headers = list(HEADERS.items())

        def raw_httpcore() -> Any:
            resp = pool.request("POST", core_url, headers=core_headers, content=raw_body)
            return json.loads(resp.content)

        def raw_stream() -> Any:
            body = json.dumps({**BODY, "stream": True}, separators=(",", ":")).encode()
            out = []
            with client.stream("POST", target, content=body, headers=HEADERS) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        out.append(json.loads(line[6:]))
            return out

        model = tollway.Model("openai/gpt-4o-mini", api_base=url, ledger=False)
        # The budget cases below attribute calls to a user and a project (their budgets'
        # scopes): this row is their fair baseline.
        attributed = tollway.Model("openai/gpt-4o-mini", api_base=url, ledger=False,
                                   attribution={"user": "alice", "project": "bench"})
        tmp = tempfile.mkdtemp(prefix="tollway-bench-")
        cases: dict[str, Callable[[], Any]] = {
            "raw httpx": raw_sync,
            "raw httpcore": raw_httpcore,
            "tollway": lambda: model.complete(PROMPT),
            "tollway + attribution": lambda: attributed.complete(PROMPT),
        }
        try:
            ledger_model = tollway.Model(
                "openai/gpt-4o-mini", api_base=url, ledger=str(Path(tmp) / "ledger.db")
            )
            cases["tollway + ledger (sqlite)"] = lambda: ledger_model.complete(PROMPT)
        except Exception as exc:  # the ledger lands with the cost issue
            print(f"(ledger case skipped: {exc})")
        for name, fn in _budget_cases(url, tmp).items():
            cases[name] = fn

        samples: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for fn in cases.values():
            fn()
        for _ in range(rounds):
            for name, fn in cases.items():
                wall, cpu_s = per_call(fn, calls)
                samples[name].append(wall)
                cpu[name].append(cpu_s)
        base = statistics.median(samples["raw httpx"])
        core = statistics.median(samples["raw httpcore"])
        print(f"\nsync sequential ({calls} calls x {rounds} rounds), median per call "
              "(added = vs raw httpx, the budget's baseline; own = vs raw httpcore, the "
              "transport tollway drives):")
        results["sync"] = {}
        for name in cases:
            med = statistics.median(samples[name])
            row = {"us_per_call": med * 1e6, "added_us": (med - base) * 1e6,
                   "own_us": (med - core) * 1e6,
                   "cpu_us_per_call": statistics.median(cpu[name]) * 1e6, "ratio": med / base}
            results["sync"][name] = row
            print(f"  {name:32s} {row['us_per_call']:8.1f} us  added {row['added_us']:+7.1f} us"
                  f"  own {row['own_us']:+7.1f} us  cpu {row['cpu_us_per_call']:7.1f} us"
                  f"  x{row['ratio']:.2f}")

        # async sequential
        async_cases: dict[str, Callable[[], Callable[[], Any]]] = {
            "raw httpx": lambda: _raw_async(target, raw_body),
            "raw aiohttp": lambda: _raw_aiohttp(target, raw_body),
            "tollway": lambda: (lambda: model.acomplete(PROMPT)),
        }
        asamples: dict[str, list[float]] = {n: [] for n in async_cases}
        for _ in range(rounds):
            for name, make in async_cases.items():
                asamples[name].append(aper_call(make(), calls)[0])
        abase = min(statistics.median(asamples["raw httpx"]), statistics.median(asamples["raw aiohttp"]))
        print("\nasync sequential, median per call (added = vs the faster raw client):")
        results["async"] = {}
        for name in async_cases:
            med = statistics.median(asamples[name])
            results["async"][name] = {"us_per_call": med * 1e6, "added_us": (med - abase) * 1e6}
            print(f"  {name:32s} {med * 1e6:8.1f} us  added {(med - abase) * 1e6:+7.1f} us")

        # 256 concurrent
        conc_cases: dict[str, Callable[[], Callable[[], Any]]] = {
            "raw httpx (default pool)": lambda: _raw_async(target, raw_body, default_pool=True),
            "raw aiohttp": lambda: _raw_aiohttp(target, raw_body),
            "tollway": lambda: (lambda: model.acomplete(PROMPT)),
        }
        print(f"\n256 concurrent async calls ({total} calls), throughput:")
        results["concurrent_256"] = {}
        tput: dict[str, list[float]] = {n: [] for n in conc_cases}
        for _ in range(max(1, rounds // 2)):
            for name, make in conc_cases.items():
                try:
                    tput[name].append(throughput(make, total, 256))
                except ImportError as exc:
                    print(f"  ({name} skipped: {exc})")
        best_raw = max(statistics.median(v) for n, v in tput.items() if v and n != "tollway")
        for name, values in tput.items():
            if not values:
                continue
            med = statistics.median(values)
            results["concurrent_256"][name] = {"calls_per_s": med, "vs_fastest_raw": med / best_raw}
            print(f"  {name:32s} {med:8.0f} calls/s  ({med / best_raw:.0%} of the fastest raw)")

        # streaming
        def tw_stream() -> Any:
            with model.stream(PROMPT) as stream:
                for event in stream:
                    if isinstance(event, StreamEnd):
                        return event.response
            return None

        ssamples: dict[str, list[float]] = {"raw httpx": [], "tollway": []}
        scalls = max(50, calls // 5)
        for _ in range(rounds):
            ssamples["raw httpx"].append(per_call(raw_stream, scalls)[0])
            ssamples["tollway"].append(per_call(tw_stream, scalls)[0])
        sraw = statistics.median(ssamples["raw httpx"])
        stw = statistics.median(ssamples["tollway"])
        per_chunk = (stw - sraw) / (STREAM_CHUNKS + 3) * 1e6
        results["stream"] = {"raw_us_per_stream": sraw * 1e6, "tollway_us_per_stream": stw * 1e6,
                             "chunks": STREAM_CHUNKS + 3, "added_us_per_chunk": per_chunk}
        print(f"\nstreaming ({STREAM_CHUNKS} content chunks + role/finish/usage):")
        print(f"  raw httpx {sraw * 1e6:8.1f} us/stream   tollway {stw * 1e6:8.1f} us/stream"
              f"   added per chunk {per_chunk:+.2f} us")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")


def _raw_async(target: str, body: bytes, default_pool: bool = False) -> Callable[[], Any]:
    client = httpx.AsyncClient() if default_pool else httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1024, max_keepalive_connections=512)
    )

    async def call() -> Any:
        return json.loads((await client.post(target, content=body, headers=HEADERS)).content)

    return call


def _raw_aiohttp(target: str, body: bytes) -> Callable[[], Any]:
    import aiohttp

    session: list[aiohttp.ClientSession] = []

    async def call() -> Any:
        if not session:
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024)))
        async with session[0].post(target, data=body, headers=HEADERS) as resp:
            return json.loads(await resp.read())

    call.session = session  # type: ignore[attr-defined]
    return call


def _budget_cases(url: str, tmp: str) -> dict[str, Callable[[], Any]]:
    """Budgets on: two budgets per call (a per-user daily USD budget and a project
    monthly one), reserve before and settle after every call, per store."""
    import uuid

    import tollway
    from tollway.core.cost.budgets import Budgets
    from tollway.core.cost.budgets.memory import MemoryBudgetStore
    from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore

    policies = [
        {"scope": {"user": "each"}, "limit": 1_000_000, "period": "day"},
        {"scope": {"project": "bench"}, "limit": 1_000_000, "period": "month"},
    ]
    stores: dict[str, Callable[[], Any]] = {
        "memory": MemoryBudgetStore,
        "sqlite": lambda: SQLiteBudgetStore(str(Path(tmp) / "budgets.db")),
    }
    redis_url = os.environ.get("TOLLWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

    def redis_store() -> Any:
        from tollway.core.stores.redis_budgets import RedisBudgetStore

        store = RedisBudgetStore(redis_url, prefix=f"{{tollway-bench-{uuid.uuid4().hex[:8]}}}:")
        return store

    stores["redis"] = redis_store
    cases: dict[str, Callable[[], Any]] = {}
    for name, make_store in stores.items():
        try:
            guard = Budgets(policies, store=make_store())
            model = tollway.Model(
                "openai/gpt-4o-mini", api_base=url, ledger=False, guards=[guard],
                attribution={"user": "alice", "project": "bench"},
            )
            model.complete(PROMPT)
        except Exception as exc:  # e.g. redis not running
            print(f"(budgets on ({name}) skipped: {type(exc).__name__}: {exc})")
            continue
        cases[f"tollway + budgets ({name})"] = lambda m=model: m.complete(PROMPT)
    return cases


if __name__ == "__main__":
    main()
