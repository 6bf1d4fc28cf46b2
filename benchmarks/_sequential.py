"""Sequential non-streamed calls, sync and async: latency and CPU added per call.

One call after another on one connection (the pool keeps it alive), so the figures
are each library's own work per call on top of the same loopback round trip. The
tollway rows include the ledger (SQLite) and budgets (memory, SQLite, Redis) on,
which DESIGN.md budgets separately (<= 40 us added with both off, <= 100 us on).
Sync tollway rows are paired with the raw client of the stack its sync transport drives
(raw httptools on a blocking socket by default, the fastest raw sync client; raw
httpcore without httptools); raw httpx and raw httpcore stay beside it as information.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from _clients import async_call, same_stack, sync_call, sync_default_transport, sync_same_stack
from _measure import asequential, sequential
from _report import latency_table

SYNC_CLIENTS = [
    "httpx", "httpcore", "httptools", "openai", "litellm", "tollway", "tollway+otel", "tollway-httpx",
    "tollway+ledger",
    "tollway+budgets-memory", "tollway+budgets-sqlite", "tollway+budgets-redis",
    "tollway+ledger+budgets-sqlite",
]
ASYNC_CLIENTS = [
    "httpx", "aiohttp", "httptools", "httpx-aiohttp", "openai", "litellm", "tollway",
    "tollway+otel", "tollway-httpx", "tollway-aiohttp", "tollway+ledger+budgets-sqlite",
]


# --------------------------------------------------------------------------- worker side


def run(job: dict[str, Any]) -> dict[str, Any]:
    client, url, tmp, params = job["client"], job["url"], Path(job["tmp"]), job["params"]
    if job["case"] == "sync":
        return sequential(sync_call(client, url, tmp), params)

    async def main() -> dict[str, Any]:
        return await asequential(async_call(client, url, tmp), params)

    return asyncio.run(main())


# --------------------------------------------------------------------------- run.py side


def jobs(cfg: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    params = {"warmup": cfg["warmup"], "warmup_seconds": cfg.get("warmup_seconds", 0.0),
              "min_calls": cfg["min_calls"], "max_calls": cfg["max_calls"],
              "seconds": cfg["seconds"]}
    for case, clients in (("sync", SYNC_CLIENTS), ("async", ASYNC_CLIENTS)):
        usable = [c for c in clients if c not in env["skip"]]
        for rep in range(cfg["reps"]):
            shift = rep % len(usable)
            for client in usable[shift:] + usable[:shift]:  # rotate: no client always first
                out.append({"family": "sequential", "case": case, "client": client,
                            "url": env["url"], "params": params, "rep": rep})
    return out


def summarize(results: list[dict[str, Any]], env: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    skipped = [f"{c}: skipped ({env['skip'][c]})" for c in SYNC_CLIENTS if c in env["skip"]]
    sync_transport = sync_default_transport()
    sync_table, sync_data = latency_table(
        "sync sequential non-streamed calls", results, "sync", "httpx",
        notes=[*skipped, f"tollway's sync transport here: {sync_transport}; its rows are paired "
               "with the raw client of that stack (raw httptools on a blocking socket: the "
               "fastest raw sync client; raw httpcore when httptools is not installed), so the "
               "added figure is tollway's own code. tollway [httpx transport] "
               "(TOLLWAY_SYNC_TRANSPORT=httpx, what proxies get) is paired with raw httpx; "
               "the other clients with raw httpx"],
        against={c: sync_same_stack(c, sync_transport) for c in SYNC_CLIENTS
                 if c.startswith("tollway")})
    transport = env.get("tollway_transport", "httpx")
    async_table, async_data = latency_table(
        "async sequential non-streamed calls", results, "async", "httpx",
        notes=[f"tollway = its default async transport ({transport}), compared with the raw "
               "client on the same HTTP stack; tollway [httpx transport] forced with "
               "TOLLWAY_ASYNC_TRANSPORT=httpx"],
        against={c: same_stack(c, transport) for c in ASYNC_CLIENTS if c.startswith("tollway")},
    )
    return [sync_table, async_table], {"sync": sync_data, "async": async_data}
