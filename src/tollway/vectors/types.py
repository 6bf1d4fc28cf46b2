"""The values of vector stores: chunks, scored chunks, ingestion results.

Plain slotted dataclasses: a backend builds them from its own rows, the facade hands
them to callers, the gateway and tools serialise them with :meth:`to_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["AddResult", "Chunk", "ChunkPage", "Metadata", "ScoredChunk", "SearchResult"]

Metadata = dict[str, Any]
"""Metadata of a chunk: str keys to str / int / float / bool values (what every backend
can store and filter on)."""


@dataclass(slots=True, frozen=True)
class Chunk:
    """One stored piece of text. ``id`` is unique in its store; ``source`` names where
    the text came from (a file name, or ``text:<n>`` for the n-th text of an add);
    ``metadata`` is the caller's, plus ``source`` and ``chunk_index``."""

    id: str
    text: str
    metadata: Metadata = field(default_factory=dict)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "metadata": dict(self.metadata),
                "source": self.source}


@dataclass(slots=True, frozen=True)
class ScoredChunk:
    """A search hit: the chunk and its similarity ``score`` (higher is closer; cosine
    similarity in [-1, 1] for the embedded and Chroma backends, the backend's own score
    for managed ones)."""

    chunk: Chunk
    score: float

    @property
    def id(self) -> str:
        return self.chunk.id

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def metadata(self) -> Metadata:
        return self.chunk.metadata

    @property
    def source(self) -> str | None:
        return self.chunk.source

    def to_dict(self) -> dict[str, Any]:
        return {**self.chunk.to_dict(), "score": self.score}


@dataclass(slots=True, frozen=True)
class AddResult:
    """What an ``add`` stored and what it cost: the chunk ids (in order), the chunks,
    the embedding tokens and cost in nano-USD (0 when a managed backend embeds itself
    and bills separately; None when the embedding model has no price)."""

    ids: list[str]
    chunks: list[Chunk]
    embedding_tokens: int = 0
    cost_nanos: int | None = 0
    trace_id: str | None = None

    @property
    def cost(self) -> Decimal | None:
        """The embedding cost in USD (None when unpriced)."""
        return None if self.cost_nanos is None else Decimal(self.cost_nanos) / 10**9


@dataclass(slots=True, frozen=True)
class SearchResult:
    """What a backend's ``search`` returns: the hits, best first, and the backend's
    own fee for the call in nano-USD (0 for self-hosted backends; managed backends
    that charge per search set it)."""

    hits: list[ScoredChunk]
    backend_fee_nanos: int = 0


@dataclass(slots=True, frozen=True)
class ChunkPage:
    """A page of ``list``: chunks in id order and the cursor for the next page
    (``after=next_after``; None on the last page)."""

    chunks: list[Chunk]
    next_after: str | None = None
