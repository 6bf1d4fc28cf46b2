"""256 concurrent async calls: throughput and latency under load.

Here the HTTP client's connection pool dominates (httpx's default async pool reached
~274 calls/s where raw aiohttp reached ~4,700/s on this machine), so tollway is run on
each of its async transports (``TOLLWAY_ASYNC_TRANSPORT=httptools|aiohttp|httpx``) to
confirm its
default is the faster one. "raw httpx (pool 1024/512)" is an httpx.AsyncClient with the
limits tollway's httpx transport uses (max_connections 1024, keep-alive 512): httpcore's
pool slows down badly once hundreds of idle keep-alive connections sit in it, which the
default pool (100 / 20) avoids. DESIGN.md: tollway >= 90% of the fastest raw client with
the ledger and budgets on (SQLite, one file: ``tollway-httptools+ledger+budgets-sqlite``);
the rows with them off show what the ledger and budgets cost under load.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from _clients import async_call, label, tollway_default_transport
from _measure import concurrent
from _report import Table, by_client, errors_of, med, spread

RAW = ["httpx", "httpx-pool1024", "aiohttp", "httptools", "httpx-aiohttp"]
LEDGER_BUDGETS = "tollway-httptools+ledger+budgets-sqlite"
"""The client DESIGN.md's 256-concurrent goal is about: ledger and budgets on (on the
default async transport)."""
CLIENTS = [*RAW, "openai", "litellm", "tollway-httptools", "tollway-aiohttp", "tollway-httpx",
           "tollway-aiohttp+ledger+budgets-sqlite", LEDGER_BUDGETS]


def run(job: dict[str, Any]) -> dict[str, Any]:
    client, url, tmp, params = job["client"], job["url"], Path(job["tmp"]), job["params"]

    async def main() -> dict[str, Any]:
        return await concurrent(async_call(client, url, tmp), int(params["concurrency"]), params)

    return asyncio.run(main())


def jobs(cfg: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    params = {"concurrency": cfg["concurrency"], "max_calls": cfg["conc_calls"],
              "seconds": cfg["conc_seconds"]}
    usable = [c for c in CLIENTS if c not in env["skip"]
              and not (c.startswith("tollway-aiohttp") and "aiohttp" in env["skip"])
              and not (c.startswith("tollway-httptools") and "httptools" in env["skip"])]
    out = []
    for rep in range(cfg["conc_reps"]):
        shift = rep % len(usable)
        for client in usable[shift:] + usable[:shift]:
            out.append({"family": "concurrency", "case": "c256", "client": client,
                        "url": env["url"], "params": params, "rep": rep, "timeout": 120.0})
    return out


def summarize(results: list[dict[str, Any]], env: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    groups = by_client(results, "c256")
    tput = {c: med(rows, "calls_per_s") for c, rows in groups.items()}
    raw_values = {c: v for c, v in tput.items() if c in RAW and v}
    fastest = max(raw_values, key=lambda c: raw_values[c]) if raw_values else None
    best = raw_values.get(fastest or "")
    conc = next((r["concurrency"] for r in results if "concurrency" in r), 256)
    table = Table(f"{conc} concurrent async calls", [
        ("label", "client", "s"),
        ("calls_per_s", "calls/s", "{:,.0f}"),
        ("vs_fastest_raw", "of fastest raw", "{:.0%}"),
        ("p50_us", "p50 us", "{:,.0f}"),
        ("p99_us", "p99 us", "{:,.0f}"),
        ("cpu_us", "CPU us/call", "{:.1f}"),
        ("errors", "errors", "{}"),
        ("reps", "reps", "{}"),
        ("spread", "calls/s range", "s"),
    ])
    data: dict[str, Any] = {}
    for client, rows in groups.items():
        value = tput.get(client)
        row = {
            "client": client, "label": label(client), "calls_per_s": value,
            "vs_fastest_raw": value / best if value and best else None,
            "p50_us": med(rows, "p50_us"), "p99_us": med(rows, "p99_us"),
            "cpu_us": med(rows, "cpu_us"),
            "errors": sum(int(r.get("errors", 0)) for r in rows if "error" not in r),
            "reps": len([r for r in rows if "error" not in r]),
            "spread": spread(rows, "calls_per_s"),
        }
        table.rows.append(row)
        data[client] = row
        for error in errors_of(rows):
            table.notes.append(f"{label(client)}: {error}")
        kinds: dict[str, int] = {}
        for r in rows:
            for name, count in (r.get("error_types") or {}).items():
                kinds[name] = kinds.get(name, 0) + count
        if kinds:
            table.notes.append(f"{label(client)} call errors: {kinds}")
    default = env.get("tollway_transport") or tollway_default_transport()
    tw = {t: v for t in ("httptools", "aiohttp", "httpx") if (v := tput.get(f"tollway-{t}"))}
    faster = max(tw, key=lambda t: tw[t]) if len(tw) > 1 else None
    table.notes.append(f"fastest raw client: {label(fastest) if fastest else '-'}; "
                       f"fake server capacity {env.get('capacity_rps', 0):,.0f} requests/s")
    table.notes.append(
        f"tollway's default async transport here: {default}; faster in this run: {faster or '-'}"
        + ("" if faster is None or default == faster else "  <-- the default is NOT the faster one")
    )
    for client in CLIENTS:
        if client in env["skip"]:
            table.notes.append(f"{label(client)}: skipped ({env['skip'][client]})")
    data["_summary"] = {"fastest_raw": fastest, "fastest_raw_calls_per_s": best,
                        "tollway_default_transport": default, "tollway_faster_transport": faster}
    return [table], data
