"""DESIGN.md's performance budgets, checked against one run's figures (run.py side).

Added time per call is over the fastest raw client on the same stack: raw httptools (a
blocking socket for sync calls, asyncio for async ones) when tollway's transports are
its httptools backends, else raw httpcore (sync) and raw aiohttp or httpx (async).

"Added time per call" is judged on CPU time per call (process-wide, background threads
included) because on this shared 2-core machine wall-clock time also measures whoever
else is running; the client's extra work is CPU-bound, so on an idle machine the two
agree. The paired wall-clock p50 difference is shown beside it. Redis budgets wait on
another process, so their CPU figure understates them: read the wall figure there.
"""

from __future__ import annotations

from typing import Any

from _report import Table

FLAT_MB = 2.0
"""'Memory flat': RSS may grow this much from call 100 to call 10,000 (allocator arenas,
SQLite page cache), not more."""


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def verdict(output: dict[str, Any]) -> tuple[Table, list[dict[str, Any]]]:
    cases = {name: case.get("data", {}) for name, case in output.get("cases", {}).items()}
    checks: list[dict[str, Any]] = []

    def check(name: str, budget: str, value: float | None, limit: float, *,
              shown: str, higher_is_better: bool = False, wall: str = "") -> None:
        if value is None:
            status = "not measured"
        elif higher_is_better:
            status = "met" if value >= limit else "NOT MET"
        else:
            status = "met" if value <= limit else "NOT MET"
        checks.append({"budget": name, "limit": budget, "measured": shown if value is not None else "-",
                       "wall": wall, "status": status, "value": value})

    imp = cases.get("import", {})
    httpx_ms = _get(imp, "httpx", "import_ms")
    tw_ms = _get(imp, "tollway", "import_ms")
    tw_model_ms = _get(imp, "tollway", "import_model_ms")
    diff = None if httpx_ms is None or tw_ms is None else tw_ms - httpx_ms
    check("import tollway", "<= import httpx + 50 ms", diff, 50.0,
          shown=f"{diff:+.1f} ms vs httpx" if diff is not None else "",
          wall=(f"from tollway import Model: {tw_model_ms - httpx_ms:+.1f} ms"
                if tw_model_ms is not None and httpx_ms is not None else ""))

    for case, title in (("sync", "sync"), ("async", "async")):
        seq = _get(cases, "sequential", case) or {}
        for client, limit, what in (
            ("tollway", 40.0, "ledger and budgets off"),
            ("tollway+ledger", 100.0, "ledger on (sqlite)"),
            ("tollway+ledger+budgets-sqlite", 100.0, "ledger + budgets on (sqlite)"),
        ):
            row = seq.get(client) or {}
            cpu, wall = row.get("added_cpu_us"), row.get("added_us")
            check(f"added per call, {title}, {what}", f"<= {limit:.0f} us", cpu, limit,
                  shown=f"{cpu:+.1f} us CPU" if cpu is not None else "",
                  wall=f"{wall:+.1f} us wall p50" if wall is not None else "")

    sync = _get(cases, "sequential", "sync") or {}
    for base, why in (("httpcore", "the stack tollway's sync calls used before httptools"),
                      ("httpx", "httpx's Client layer tollway skips")):
        base_cpu = _get(sync, base, "cpu_us")
        for client, what in (("tollway", "off"), ("tollway+ledger+budgets-sqlite",
                                                  "ledger + budgets on (sqlite)")):
            cpu = _get(sync, client, "cpu_us")
            diff = None if cpu is None or base_cpu is None else cpu - base_cpu
            checks.append({"budget": f"sync, {what}, vs raw {base} (info)", "limit": why,
                           "measured": f"{diff:+.1f} us CPU" if diff is not None else "-",
                           "wall": "", "status": "info", "value": diff})
    async_rows = _get(cases, "sequential", "async") or {}
    aio_cpu = _get(async_rows, "aiohttp", "cpu_us")
    for client, what in (("tollway", "off"), ("tollway+ledger+budgets-sqlite",
                                              "ledger + budgets on (sqlite)")):
        cpu = _get(async_rows, client, "cpu_us")
        diff = None if cpu is None or aio_cpu is None else cpu - aio_cpu
        checks.append({"budget": f"async, {what}, vs raw aiohttp (info)",
                       "limit": "the stack tollway's async calls used before httptools",
                       "measured": f"{diff:+.1f} us CPU" if diff is not None else "-",
                       "wall": "", "status": "info", "value": diff})

    for case in ("stream-sync", "stream-async"):
        row = _get(cases, "streaming", case, "tollway") or {}
        cpu, wall = row.get("added_cpu_per_chunk_us"), row.get("added_per_chunk_us")
        check(f"added per stream chunk ({case.split('-')[1]})", "<= 15 us", cpu, 15.0,
              shown=f"{cpu:+.2f} us CPU" if cpu is not None else "",
              wall=f"{wall:+.2f} us wall" if wall is not None else "")

    conc = cases.get("concurrency", {})
    summary = conc.get("_summary", {})
    default = summary.get("tollway_default_transport")
    row = conc.get(f"tollway-{default}") if default else None
    share = (row or {}).get("vs_fastest_raw")
    fastest = summary.get("fastest_raw")
    on = (conc.get(f"tollway-{default}+ledger+budgets-sqlite") or {}).get("vs_fastest_raw")
    check("256 concurrent async calls, ledger + budgets on (sqlite)",
          ">= 90% of the fastest raw client", on, 0.9, higher_is_better=True,
          shown=f"{on:.0%} of {fastest}" if on is not None else "",
          wall=f"off: {share:.0%} (tollway on {default})" if share is not None else "")

    mem = cases.get("memory", {})
    for client in ("tollway", "tollway+ledger+budgets-sqlite"):
        growth = _get(mem, client, "growth_mb")
        blocks = _get(mem, client, "py_blocks_growth")
        check(f"memory flat ({client})", f"RSS <= +{FLAT_MB:.0f} MB, call 100 -> last",
              growth, FLAT_MB,
              shown=f"{growth:+.2f} MB RSS" if growth is not None else "",
              wall=f"Python heap {blocks:+.0f} blocks" if blocks is not None else "")

    table = Table("DESIGN.md performance budgets", [
        ("budget", "budget", "s"), ("limit", "limit", "s"), ("measured", "measured", "s"),
        ("wall", "also", "s"), ("status", "verdict", "s"),
    ], rows=checks, notes=[
        "added per call is judged on CPU time per call (this machine is shared; wall "
        "clock includes other people's processes); the paired wall p50 is shown beside it",
    ])
    return table, checks
