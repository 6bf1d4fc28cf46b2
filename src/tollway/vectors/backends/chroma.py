"""The Chroma server backend: a collection on a ``chroma run`` server, over HTTP with
chromadb's ``HttpClient`` (imported when the store is first used; ``chromadb`` is not
a dependency of tollway: ``pip install 'tollway[chroma]'``).

tollway computes the vectors (the collection has no embedding function) and asks for
cosine distance; the score is ``1 - distance`` (cosine similarity, as the embedded
backend). Filters become Chroma ``where`` clauses, which speak the same operators.
Known difference: Chroma's ``$ne`` also matches chunks without the key (tollway's
reference semantics do not); ``source`` and ``chunk_index`` are on every chunk.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tollway.vectors.errors import BackendUnavailableError, VectorStoreError
from tollway.vectors.filters import All, Any_, Compare, Filter
from tollway.vectors.types import Chunk, ChunkPage, ScoredChunk, SearchResult

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.config.schema import VectorStoreSpec
    from tollway.vectors.backend import DocumentInput

__all__ = ["ChromaVectorBackend", "open_backend", "where_of"]


def open_backend(name: str, spec: VectorStoreSpec,
                 settings: TollwaySettings | None) -> ChromaVectorBackend:
    assert spec.url is not None  # the schema requires it for chroma
    return ChromaVectorBackend(spec.url, spec.collection or name, store=name,
                               timeout=spec.timeout)


def where_of(flt: Filter) -> dict[str, Any]:
    """The Chroma ``where`` of a filter (``$and`` / ``$or`` need two items or more)."""
    if isinstance(flt, All | Any_):
        parts = [where_of(f) for f in flt.items]
        if len(parts) == 1:
            return parts[0]
        return {"$and" if isinstance(flt, All) else "$or": parts}
    assert isinstance(flt, Compare)
    value: Any = list(flt.value) if isinstance(flt.value, tuple) else flt.value
    return {flt.key: {f"${flt.op}": value}}


class ChromaVectorBackend:
    """One collection of a Chroma server. Calls run in worker threads (the client is
    sync and thread-safe)."""

    name = "chroma"
    embeds_itself = False

    def __init__(self, url: str, collection: str, *, store: str | None = None,
                 timeout: float = 30.0) -> None:
        self.url = url
        self.collection_name = collection
        self.store = store
        self.timeout = timeout
        self._collection: Any = None

    def __repr__(self) -> str:
        return f"ChromaVectorBackend({self.url!r}, {self.collection_name!r})"

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"{type(exc).__name__}: {exc} (is the server running at {self.url}? start one "
            "with 'chroma run --path DIR --port PORT')", store=self.store, backend="chroma")

    def _coll(self) -> Any:
        if self._collection is None:
            try:
                import chromadb
                from chromadb.config import Settings
            except ImportError as exc:
                raise BackendUnavailableError(
                    "the chromadb package is not installed: pip install 'tollway[chroma]'",
                    store=self.store, backend="chroma") from exc
            parts = urlsplit(self.url)
            try:
                client = chromadb.HttpClient(
                    host=parts.hostname or "127.0.0.1",
                    port=parts.port or (443 if parts.scheme == "https" else 8000),
                    ssl=parts.scheme == "https",
                    settings=Settings(anonymized_telemetry=False))
                self._collection = client.get_or_create_collection(
                    self.collection_name, embedding_function=None,
                    metadata={"hnsw:space": "cosine"})
            except Exception as exc:
                raise self._unavailable(exc) from exc
        return self._collection

    async def _call(self, fn: Any, *args: Any) -> Any:
        def run() -> Any:
            coll = self._coll()
            try:
                return fn(coll, *args)
            except VectorStoreError:
                raise
            except Exception as exc:
                connect = "Connect" in type(exc).__name__
                if connect or isinstance(exc, OSError):
                    raise self._unavailable(exc) from exc
                raise VectorStoreError(f"chroma: {type(exc).__name__}: {exc}",
                                       store=self.store) from exc
        try:
            return await asyncio.wait_for(asyncio.to_thread(run), self.timeout)
        except TimeoutError as exc:
            raise self._unavailable(
                TimeoutError(f"no answer within {self.timeout:g}s ('timeout:' of the store)")
            ) from exc

    async def add_chunks(self, chunks: list[Chunk], vectors: list[list[float]]) -> None:
        if not chunks:
            return

        def upsert(coll: Any) -> None:
            coll.upsert(ids=[c.id for c in chunks], embeddings=vectors,
                        documents=[c.text for c in chunks],
                        metadatas=[dict(c.metadata) for c in chunks])
        await self._call(upsert)

    async def add_files(self, documents: list[DocumentInput]) -> list[Chunk]:
        raise NotImplementedError("the chroma backend stores chunks tollway embeds")

    async def search(self, query: str, query_vector: list[float] | None, k: int,
                     filters: Filter | None) -> SearchResult:
        if query_vector is None:
            raise VectorStoreError("the chroma backend needs a query vector", store=self.store)

        def run(coll: Any) -> SearchResult:
            got = coll.query(query_embeddings=[query_vector], n_results=k,
                             where=where_of(filters) if filters is not None else None,
                             include=["documents", "metadatas", "distances"])
            ids = got["ids"][0] if got.get("ids") else []
            hits = [ScoredChunk(_chunk(cid, got["documents"][0][i], got["metadatas"][0][i]),
                                1.0 - float(got["distances"][0][i]))
                    for i, cid in enumerate(ids)]
            return SearchResult(hits)
        return await self._call(run)

    async def delete(self, ids: list[str] | None, filters: Filter | None) -> int:
        def run(coll: Any) -> int:
            where = where_of(filters) if filters is not None else None
            if ids is not None and not ids:
                return 0
            found = coll.get(ids=ids, where=where, include=[])["ids"]
            if found:
                coll.delete(ids=found)
            return len(found)
        return await self._call(run)

    async def list(self, limit: int, after: str | None) -> ChunkPage:
        def run(coll: Any) -> ChunkPage:
            all_ids = sorted(coll.get(include=[])["ids"])
            rest = [i for i in all_ids if after is None or i > after]
            page = rest[:limit]
            if not page:
                return ChunkPage([])
            got = coll.get(ids=page, include=["documents", "metadatas"])
            by_id = {cid: _chunk(cid, got["documents"][i], got["metadatas"][i])
                     for i, cid in enumerate(got["ids"])}
            chunks = [by_id[i] for i in page if i in by_id]
            return ChunkPage(chunks, page[-1] if len(rest) > limit else None)
        return await self._call(run)

    async def close(self) -> None:
        self._collection = None


def _chunk(cid: str, text: str | None, metadata: dict[str, Any] | None) -> Chunk:
    meta = dict(metadata or {})
    source = meta.get("source")
    return Chunk(cid, text or "", meta, source if isinstance(source, str) else None)
