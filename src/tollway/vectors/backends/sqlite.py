"""The embedded default backend: one SQLite file, exact cosine search with numpy.

Why not sqlite-vec or LanceDB (measured, see the README "Vector stores" section and
``benchmarks/vectors.py``): sqlite-vec is a loadable extension, and CPython builds
without ``enable_load_extension`` (this project's own interpreter among them) cannot
load it at all; LanceDB needs a fixed Arrow schema (arbitrary metadata keys to filter
on would mean schema evolution on every new key) and imports pyarrow. A SQLite table
with the metadata as JSON filters exactly (pre-filtering before the top-k, so ``k``
hits are ``k`` matching hits: numpy metadata columns for search, ``json_extract`` in
SQL for delete), needs nothing beyond the
standard library and numpy, and brute-force cosine over float32 vectors is what
sqlite-vec's ``vec0`` does too: exact, and fast enough at the sizes an embedded store
is for (10,000 chunks of 256 dimensions: a search is one matrix-vector product).

Vectors are unit-normalised at write time, so the score is the dot product (cosine
similarity). The vectors of a store are cached in memory per process and reloaded when
the file's ``generation`` changes (another process or connection wrote).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tollway.vectors.backends._columns import MetadataColumns
from tollway.vectors.backends._sql_filter import where_sql
from tollway.vectors.errors import BackendUnavailableError, VectorStoreError
from tollway.vectors.types import Chunk, ChunkPage, ScoredChunk, SearchResult

if TYPE_CHECKING:
    import numpy as np

    from tollway.core.config import TollwaySettings
    from tollway.core.config.schema import VectorStoreSpec
    from tollway.vectors.backend import DocumentInput
    from tollway.vectors.filters import Filter

__all__ = ["SQLiteVectorBackend", "default_path", "open_backend"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    source TEXT,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_path(store: str) -> Path:
    """``$TOLLWAY_VECTORS_DIR/<store>.db``, else ``~/.tollway/vectors/<store>.db``."""
    base = os.environ.get("TOLLWAY_VECTORS_DIR") or Path.home() / ".tollway" / "vectors"
    return Path(base) / f"{store}.db"


def open_backend(name: str, spec: VectorStoreSpec,
                 settings: TollwaySettings | None) -> SQLiteVectorBackend:
    from importlib.util import find_spec

    if find_spec("numpy") is None:
        raise BackendUnavailableError(
            "numpy is not installed: pip install 'tollway[vectors]'", store=name,
            backend="sqlite")
    path: str | Path = spec.path or default_path(name)
    if spec.path and settings is not None and settings.path is not None \
            and not Path(spec.path).is_absolute():
        path = settings.path.parent / spec.path  # relative to tollway.yaml
    return SQLiteVectorBackend(path, store=name)


class SQLiteVectorBackend:
    """Chunks in a SQLite file (``":memory:"`` for a throwaway store). Calls run in a
    worker thread under one lock: SQLite serialises writers anyway."""

    name = "sqlite"
    embeds_itself = False

    def __init__(self, path: str | Path, *, store: str | None = None) -> None:
        self.store = store
        self.path = str(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._cache: tuple[int, list[str], MetadataColumns, np.ndarray] | None = None
        self._dims: int | None = None

    def __repr__(self) -> str:
        return f"SQLiteVectorBackend({self.path!r})"

    # ------------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                db.execute("INSERT OR IGNORE INTO store_meta VALUES ('generation', '0')")
                db.commit()
            except (sqlite3.Error, OSError) as exc:
                raise BackendUnavailableError(
                    f"cannot open {self.path}: {exc} (check the directory exists and is "
                    "writable, or set 'path:' of the store)", store=self.store,
                    backend="sqlite") from exc
            row = db.execute("SELECT value FROM store_meta WHERE key='dimensions'").fetchone()
            self._dims = int(row[0]) if row else None
            self._db = db
        return self._db

    def _run(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                try:
                    return fn(self._conn(), *args)
                except sqlite3.Error as exc:
                    raise BackendUnavailableError(
                        f"{exc} ({self.path})", store=self.store, backend="sqlite") from exc
        return asyncio.to_thread(locked)

    @staticmethod
    def _generation(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT value FROM store_meta WHERE key='generation'")
                   .fetchone()[0])

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE store_meta SET value = CAST(value AS INTEGER) + 1 "
                   "WHERE key='generation'")

    # ------------------------------------------------------------------ protocol

    async def add_chunks(self, chunks: list[Chunk], vectors: list[list[float]]) -> None:
        if len(chunks) != len(vectors):
            raise VectorStoreError(f"{len(chunks)} chunks but {len(vectors)} vectors",
                                   store=self.store)
        if chunks:
            await self._run(self._add, chunks, vectors)

    def _add(self, db: sqlite3.Connection, chunks: list[Chunk],
             vectors: list[list[float]]) -> None:
        import numpy as np

        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2:
            raise VectorStoreError("vectors of different lengths", store=self.store)
        dims = int(matrix.shape[1])
        if self._dims is not None and dims != self._dims:
            raise VectorStoreError(
                f"this store holds {self._dims}-dimension vectors, got {dims}: the "
                "embedding model or its 'dimensions' changed; use a new store (or path)",
                store=self.store)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        matrix = matrix / norms
        with db:
            if self._dims is None:
                db.execute("INSERT OR REPLACE INTO store_meta VALUES ('dimensions', ?)",
                           (str(dims),))
                self._dims = dims
            db.executemany(
                "INSERT OR REPLACE INTO chunks (id, text, source, metadata, vector) "
                "VALUES (?, ?, ?, ?, ?)",
                [(c.id, c.text, c.source, json.dumps(c.metadata, sort_keys=True),
                  matrix[i].tobytes()) for i, c in enumerate(chunks)])
            self._bump(db)

    async def add_files(self, documents: list[DocumentInput]) -> list[Chunk]:
        raise NotImplementedError("the sqlite backend stores chunks tollway embeds")

    async def search(self, query: str, query_vector: list[float] | None, k: int,
                     filters: Filter | None) -> SearchResult:
        if query_vector is None:
            raise VectorStoreError("the sqlite backend needs a query vector", store=self.store)
        return await self._run(self._search, query_vector, k, filters)

    def _matrix(self, db: sqlite3.Connection
                ) -> tuple[list[str], MetadataColumns, np.ndarray]:
        """(ids, metadata columns, unit vectors) of every chunk, in rowid order, cached
        per generation of the file."""
        import numpy as np

        generation = self._generation(db)
        if self._cache is None or self._cache[0] != generation:
            rows = db.execute("SELECT id, metadata, vector FROM chunks ORDER BY rowid").fetchall()
            ids = [r[0] for r in rows]
            columns = MetadataColumns([json.loads(r[1]) for r in rows])
            dims = self._dims or 0
            matrix = (np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
                      .reshape(len(rows), dims) if rows else np.zeros((0, dims), np.float32))
            self._cache = (generation, ids, columns, matrix)
        return self._cache[1], self._cache[2], self._cache[3]

    def _search(self, db: sqlite3.Connection, query_vector: list[float], k: int,
                filters: Filter | None) -> SearchResult:
        import numpy as np

        ids, columns, matrix = self._matrix(db)
        if not ids:
            return SearchResult([])
        q = np.asarray(query_vector, dtype=np.float32)
        if q.shape[0] != matrix.shape[1]:
            raise VectorStoreError(
                f"the query vector has {q.shape[0]} dimensions, the store "
                f"{matrix.shape[1]}: search with the embedding model that filled it",
                store=self.store)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        scores = matrix @ q
        if filters is not None:
            mask = columns.mask(filters)
            scores = np.where(mask, scores, -np.inf)
            available = int(mask.sum())
        else:
            available = len(ids)
        k = min(k, available)
        if k <= 0:
            return SearchResult([])
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        chosen = [ids[i] for i in top]
        rows = {r[0]: r for r in db.execute(
            f"SELECT id, text, source, metadata FROM chunks WHERE id IN "
            f"({','.join('?' * len(chosen))})", chosen)}
        return SearchResult([
            ScoredChunk(_chunk(rows[cid]), float(scores[i])) for cid, i in zip(chosen, top, strict=True)
            if cid in rows])

    async def delete(self, ids: list[str] | None, filters: Filter | None) -> int:
        return await self._run(self._delete, ids, filters)

    def _delete(self, db: sqlite3.Connection, ids: list[str] | None,
                filters: Filter | None) -> int:
        clauses: list[str] = []
        params: list[Any] = []
        if ids is not None:
            if not ids:
                return 0
            clauses.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        if filters is not None:
            sql, fparams = where_sql(filters)
            clauses.append(sql)
            params.extend(fparams)
        if not clauses:
            raise VectorStoreError("delete needs ids or filters", store=self.store)
        with db:
            count = db.execute(f"DELETE FROM chunks WHERE {' AND '.join(clauses)}",
                               params).rowcount
            self._bump(db)
        return int(count)

    async def list(self, limit: int, after: str | None) -> ChunkPage:
        return await self._run(self._list, limit, after)

    def _list(self, db: sqlite3.Connection, limit: int, after: str | None) -> ChunkPage:
        rows = db.execute(
            "SELECT id, text, source, metadata FROM chunks WHERE id > ? ORDER BY id LIMIT ?",
            (after or "", limit + 1)).fetchall()
        more = len(rows) > limit
        chunks = [_chunk(r) for r in rows[:limit]]
        return ChunkPage(chunks, chunks[-1].id if more and chunks else None)

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._cache = None


def _chunk(row: tuple[Any, ...]) -> Chunk:
    return Chunk(id=row[0], text=row[1], source=row[2], metadata=json.loads(row[3]))
