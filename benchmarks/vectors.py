"""Ingestion and search throughput of the embedded default (SQLite + numpy) beside a
Chroma server and LanceDB, on the same vectors.

    python benchmarks/vectors.py                 # 10,000 chunks, 256 dimensions
    python benchmarks/vectors.py --n 1000 --queries 50

The vectors are fixed random unit vectors (numpy, seed 7), the same for every backend,
so the figures measure storage and search, not an embedding model (tollway's embedding
calls are measured by run.py). Each chunk has metadata ``{"lang": "en"|"de", "n": i}``;
the filtered search asks for ``lang == "de"`` (half the chunks).

- ``sqlite``: tollway's embedded backend, through its VectorBackend interface.
- ``chroma``: tollway's Chroma backend against a ``chroma run`` server started here (its
  own process, on loopback, HNSW index: approximate search).
- ``lancedb``: LanceDB used directly (not a tollway backend: it is measured to justify
  the choice of the embedded default), flat search with a ``where`` pre-filter.

Wall-clock figures: the machine may be shared; the script prints the CPU count and load
average so a reader can judge. Each search figure is the median of 3 passes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tollway.vectors.filters import parse_filter  # noqa: E402
from tollway.vectors.types import Chunk  # noqa: E402

BATCH = 500
K = 5


def data(n: int, dims: int, queries: int) -> tuple[list[Chunk], Any, Any]:
    import numpy as np

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    qs = rng.standard_normal((queries, dims)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    chunks = [Chunk(f"c{i:06d}", f"chunk number {i}", {"lang": "de" if i % 2 else "en", "n": i,
                                                      "source": f"doc{i // 10}",
                                                      "chunk_index": i % 10})
              for i in range(n)]
    return chunks, vectors, qs


async def bench_backend(backend: Any, chunks: list[Chunk], vectors: Any,
                        qs: Any) -> dict[str, float]:
    started = time.perf_counter()
    for i in range(0, len(chunks), BATCH):
        await backend.add_chunks(chunks[i:i + BATCH], vectors[i:i + BATCH].tolist())
    ingest = len(chunks) / (time.perf_counter() - started)
    flt = parse_filter({"lang": "de"})
    out = {"ingest_per_s": ingest}
    for label, f in (("search_per_s", None), ("filtered_search_per_s", flt)):
        rates = []
        for _ in range(3):
            t = time.perf_counter()
            for q in qs:
                await backend.search("", q.tolist(), K, f)
            rates.append(len(qs) / (time.perf_counter() - t))
        out[label] = statistics.median(rates)
    await backend.close()
    return out


def bench_lancedb(tmp: Path, chunks: list[Chunk], vectors: Any, qs: Any) -> dict[str, float]:
    import lancedb

    db = lancedb.connect(str(tmp / "lance"))
    started = time.perf_counter()
    table = None
    for i in range(0, len(chunks), BATCH):
        rows = [{"id": c.id, "text": c.text, "lang": c.metadata["lang"], "n": c.metadata["n"],
                 "vector": vectors[i + j].tolist()} for j, c in enumerate(chunks[i:i + BATCH])]
        if table is None:
            table = db.create_table("chunks", data=rows)
        else:
            table.add(rows)
    ingest = len(chunks) / (time.perf_counter() - started)
    assert table is not None
    out = {"ingest_per_s": ingest}
    for label, where in (("search_per_s", None), ("filtered_search_per_s", "lang = 'de'")):
        rates = []
        for _ in range(3):
            t = time.perf_counter()
            for q in qs:
                search = table.search(q.tolist()).metric("cosine").limit(K)
                if where:
                    search = search.where(where, prefilter=True)
                search.to_list()
            rates.append(len(qs) / (time.perf_counter() - t))
        out[label] = statistics.median(rates)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--only", default="sqlite,chroma,lancedb")
    args = parser.parse_args()
    chunks, vectors, qs = data(args.n, args.dims, args.queries)
    only = set(args.only.split(","))
    results: dict[str, dict[str, float] | str] = {}
    with tempfile.TemporaryDirectory(prefix="tollway-vec-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "sqlite" in only:
            from tollway.vectors.backends.sqlite import SQLiteVectorBackend

            results["sqlite (tollway default)"] = asyncio.run(
                bench_backend(SQLiteVectorBackend(tmp / "v.db"), chunks, vectors, qs))
        if "chroma" in only:
            from tests.vectors._servers import ChromaServer, chroma_command

            from tollway.vectors.backends.chroma import ChromaVectorBackend

            if chroma_command() is None:
                results["chroma server"] = "skipped: chromadb is not installed"
            else:
                with ChromaServer() as server:
                    results["chroma server"] = asyncio.run(bench_backend(
                        ChromaVectorBackend(server.url, "bench"), chunks, vectors, qs))
        if "lancedb" in only:
            try:
                results["lancedb (direct)"] = bench_lancedb(tmp, chunks, vectors, qs)
            except ImportError:
                results["lancedb (direct)"] = "skipped: lancedb is not installed"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    print(f"{args.n} chunks x {args.dims} dims, {args.queries} queries, k={K}; "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} (figures are wall-clock)")
    print(f"{'backend':<26}{'ingest chunks/s':>17}{'search q/s':>13}{'filtered q/s':>15}")
    for name, row in results.items():
        if isinstance(row, str):
            print(f"{name:<26}{row}")
        else:
            print(f"{name:<26}{row['ingest_per_s']:>17,.0f}{row['search_per_s']:>13,.0f}"
                  f"{row['filtered_search_per_s']:>15,.0f}")


if __name__ == "__main__":
    main()
