"""Streaming: time to the first text chunk and the cost of each chunk.

The fake server sends one role chunk, ``STREAM_CHUNKS`` (50) text chunks, a finish
chunk, a usage chunk and ``[DONE]``. Every client reads the stream to its end and
counts text chunks (a count other than 50 is reported as an error). Added per chunk =
(client's per-stream time - raw httpx's, paired per repetition) / the 53 data events;
it includes the per-call overhead spread over the chunks, so it is an upper bound.
DESIGN.md: <= 15 us per chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _clients import async_stream, label, same_stack, sync_stream
from _common import latency_stats
from _measure import asequential, sequential
from _report import latency_table, paired
from fake_server import STREAM_CHUNKS

EVENTS = STREAM_CHUNKS + 3
SYNC_CLIENTS = ["httpx", "openai", "litellm", "tollway"]
ASYNC_CLIENTS = ["httpx", "aiohttp", "httptools", "httpx-aiohttp", "openai", "litellm", "tollway"]


def run(job: dict[str, Any]) -> dict[str, Any]:
    client, url, tmp, params = job["client"], job["url"], Path(job["tmp"]), job["params"]
    firsts: list[int] = []
    counts: set[int] = set()

    if job["case"] == "stream-sync":
        stream = sync_stream(client, url, tmp)

        def one() -> None:
            first, count = stream()
            firsts.append(first)
            counts.add(count)

        result = sequential(one, params, on_start=firsts.clear)
    else:
        async def main() -> dict[str, Any]:
            astream: Callable[[], Awaitable[tuple[int, int]]] = async_stream(client, url, tmp)

            async def aone() -> None:
                first, count = await astream()
                firsts.append(first)
                counts.add(count)

            return await asequential(aone, params, on_start=firsts.clear)

        result = asyncio.run(main())
    ttfc = latency_stats(firsts)
    result["ttfc_p50_us"] = ttfc.get("p50_us")
    result["ttfc_p99_us"] = ttfc.get("p99_us")
    result["chunk_counts"] = sorted(counts)
    if counts != {STREAM_CHUNKS}:
        result["error"] = f"expected {STREAM_CHUNKS} text chunks per stream, got {sorted(counts)}"
    return result


def jobs(cfg: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    params = {"warmup": max(5, cfg["warmup"] // 4), "min_calls": max(10, cfg["min_calls"] // 3),
              "max_calls": max(100, cfg["max_calls"] // 10), "seconds": cfg["stream_seconds"]}
    out = []
    for case, clients in (("stream-sync", SYNC_CLIENTS), ("stream-async", ASYNC_CLIENTS)):
        usable = [c for c in clients if c not in env["skip"]]
        for rep in range(cfg["reps"]):
            shift = rep % len(usable)
            for client in usable[shift:] + usable[:shift]:
                out.append({"family": "streaming", "case": case, "client": client,
                            "url": env["url"], "params": params, "rep": rep})
    return out


def summarize(results: list[dict[str, Any]], env: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    tables = []
    data: dict[str, Any] = {}
    for case, title in (("stream-sync", "streaming, sync (per stream of 50 text chunks)"),
                        ("stream-async", "streaming, async (per stream of 50 text chunks)")):
        transport = env.get("tollway_transport", "httpx") if case == "stream-async" else "httpx"
        against = {"tollway": same_stack("tollway", transport)}
        table, rows = latency_table(title, results, case, "httpx", against=against)
        rows_of: dict[str, list[dict[str, Any]]] = {}
        for r in results:
            if r.get("case") == case:
                rows_of.setdefault(r["client"], []).append(r)
        table.columns[1:1] = [("ttfc_p50_us", "first chunk p50 us", "{:.1f}")]
        table.columns.append(("added_per_chunk_us", "added us/chunk", "{:+.2f}"))
        table.columns.append(("added_cpu_per_chunk_us", "added CPU us/chunk", "{:+.2f}"))
        for row in table.rows:
            client = row["client"]
            mine = rows_of.get(client, [])
            ok = [r for r in mine if "error" not in r and r.get("ttfc_p50_us") is not None]
            row["ttfc_p50_us"] = sorted(r["ttfc_p50_us"] for r in ok)[len(ok) // 2] if ok else None
            base = rows_of.get(against.get(client, "httpx"), [])
            if client != "httpx" and base:
                added = paired(mine, base, "p50_us")
                added_cpu = paired(mine, base, "cpu_us")
                row["added_per_chunk_us"] = None if added is None else added / EVENTS
                row["added_cpu_per_chunk_us"] = None if added_cpu is None else added_cpu / EVENTS
        table.notes.append(f"per chunk = per-stream difference / {EVENTS} data events "
                           f"({STREAM_CHUNKS} text + role + finish + usage)")
        tables.append(table)
        data[case] = rows
    for client in SYNC_CLIENTS:
        if client in env["skip"]:
            tables[0].notes.append(f"{label(client)}: skipped ({env['skip'][client]})")
    return tables, data
