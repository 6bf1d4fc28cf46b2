"""The contract every vector backend keeps (embedded, Chroma, OpenAI, Llama Stack).

The facade (:class:`tollway.vectors.store.VectorStore`) does chunking, embedding,
metering and ledger rows; a backend only stores and searches. Two kinds:

- ``embeds_itself = False`` (embedded, Chroma): tollway chunks and embeds, the backend
  gets ``add_chunks(chunks, vectors)`` and ``search(query, query_vector, ...)`` with a
  vector.
- ``embeds_itself = True`` (managed: OpenAI vector stores, Llama Stack): the backend
  takes whole files or texts (``add_files``) and does its own chunking and embedding;
  ``search`` gets ``query_vector=None``.

Filters arrive already validated in the canonical form of
:func:`tollway.vectors.filters.parse_filter` (a :class:`Filter` tree); each backend
translates it to its own query language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tollway.vectors.filters import Filter
    from tollway.vectors.types import Chunk, ChunkPage, Metadata, SearchResult

__all__ = ["DocumentInput", "VectorBackend"]


@dataclass(slots=True, frozen=True)
class DocumentInput:
    """A whole document for a managed backend: its name, bytes and metadata."""

    name: str
    data: bytes
    metadata: Metadata
    media_type: str = "text/plain"


@runtime_checkable
class VectorBackend(Protocol):
    """Async storage and search of chunks. Implementations must be safe to call from
    one event loop at a time; ``close`` frees connections and may be called twice."""

    name: str
    """The backend kind (``sqlite``, ``chroma``, ``openai``, ``llama_stack``)."""

    embeds_itself: bool
    """True for managed backends that chunk and embed on their side."""

    async def add_chunks(self, chunks: list[Chunk], vectors: list[list[float]]) -> None:
        """Store ``chunks`` with their ``vectors`` (same order, same length); a chunk
        with an existing id replaces it. Only called when ``embeds_itself`` is False."""
        ...

    async def add_files(self, documents: list[DocumentInput]) -> list[Chunk]:
        """Hand whole documents to a managed backend; returns one chunk-like record
        per document (its id is the backend's file id). Only called when
        ``embeds_itself`` is True; others raise NotImplementedError."""
        ...

    async def search(self, query: str, query_vector: list[float] | None, k: int,
                     filters: Filter | None) -> SearchResult:
        """The ``k`` closest chunks to the query, best first, restricted by
        ``filters``."""
        ...

    async def delete(self, ids: list[str] | None, filters: Filter | None) -> int:
        """Delete chunks by id and/or matching ``filters`` (at least one is given);
        returns how many were deleted (managed backends may return the count of ids
        asked for when they do not report one)."""
        ...

    async def list(self, limit: int, after: str | None) -> ChunkPage:
        """Up to ``limit`` chunks in id order, starting after the id ``after``."""
        ...

    async def close(self) -> None:
        """Free connections and files."""
        ...
