"""Memory over many calls: resident memory after 100 calls and after N (10,000; 2,000
in quick mode), sync sequential calls, ``gc.collect()`` before each reading.

A steady client's RSS stops growing once its pools, caches and allocator arenas are
warm; steady growth per call is a leak (or an unbounded cache). DESIGN.md: tollway's
memory stays flat over 10,000 calls. tollway runs bare and with everything on (SQLite
ledger and budgets), the configuration with the most state. Python-heap growth
(``sys.getallocatedblocks``) is reported beside RSS to tell objects kept alive (a leak)
from native caches filling up.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

from _clients import label, sync_call
from _common import rss_kb
from _report import Table, by_client, errors_of, med

CLIENTS = ["httpx", "openai", "litellm", "tollway", "tollway+ledger+budgets-sqlite"]
FIRST = 100
CHECKPOINTS = 5


def run(job: dict[str, Any]) -> dict[str, Any]:
    client, url, tmp, total = job["client"], job["url"], Path(job["tmp"]), int(job["params"]["calls"])
    call = sync_call(client, url, tmp)
    for _ in range(FIRST):
        call()
    gc.collect()
    first = rss_kb()
    first_blocks = sys.getallocatedblocks()
    trace = [(FIRST, first)]
    step = max(1, (total - FIRST) // CHECKPOINTS)
    done = FIRST
    while done < total:
        for _ in range(min(step, total - done)):
            call()
        done += min(step, total - done)
        gc.collect()
        trace.append((done, rss_kb()))
    last = trace[-1][1]
    blocks = sys.getallocatedblocks() - first_blocks
    return {
        "py_blocks_growth": blocks, "py_blocks_per_call": blocks / max(1, total - FIRST),
        "calls": total, "rss_after_first_mb": first / 1024, "rss_after_all_mb": last / 1024,
        "growth_mb": (last - first) / 1024,
        "bytes_per_call": (last - first) * 1024 / max(1, total - FIRST),
        "trace_mb": [(n, kb / 1024) for n, kb in trace],
    }


def jobs(cfg: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    usable = [c for c in CLIENTS if c not in env["skip"]]
    return [
        {"family": "memory", "case": "memory", "client": c, "url": env["url"],
         "params": {"calls": cfg["memory_calls"]}, "rep": rep, "timeout": 400.0}
        for rep in range(cfg["memory_reps"]) for c in usable
    ]


def summarize(results: list[dict[str, Any]], env: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    calls = next((r["calls"] for r in results if "calls" in r), 0)
    table = Table(f"memory: RSS after {FIRST} calls vs after {calls:,}", [
        ("label", "client", "s"), ("rss_after_first_mb", f"RSS @{FIRST} MB", "{:.1f}"),
        ("rss_after_all_mb", f"RSS @{calls:,} MB", "{:.1f}"), ("growth_mb", "growth MB", "{:+.2f}"),
        ("bytes_per_call", "bytes/call", "{:+.0f}"),
        ("py_blocks_growth", "Python heap blocks", "{:+.0f}"),
        ("trace", "RSS at checkpoints (MB)", "s"),
    ], notes=["Python heap blocks = sys.getallocatedblocks() growth (objects Python still holds); "
              "RSS growth with a flat Python heap is native memory, e.g. SQLite's page cache "
              "(up to ~2 MB per connection by default), which stops growing once full"])
    data: dict[str, Any] = {}
    for client, rows in by_client(results, "memory").items():
        ok = [r for r in rows if "error" not in r]
        row = {"client": client, "label": label(client),
               **{k: med(rows, k) for k in ("rss_after_first_mb", "rss_after_all_mb",
                                             "growth_mb", "bytes_per_call",
                                             "py_blocks_growth", "py_blocks_per_call")},
               "trace": " ".join(f"{mb:.1f}" for _, mb in ok[0]["trace_mb"]) if ok else None}
        table.rows.append(row)
        data[client] = row
        for error in errors_of(rows):
            table.notes.append(f"{label(client)}: {error}")
    for client in CLIENTS:
        if client in env["skip"]:
            table.notes.append(f"{label(client)}: skipped ({env['skip'][client]})")
    return [table], data
