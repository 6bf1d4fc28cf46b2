"""tollway.vectors: named vector stores with metered embeddings, and retrieval as a tool.

::

    import tollway

    docs = tollway.VectorStore("docs")          # from vector_stores: in tollway.yaml
    docs.add(["Oslo is the capital of Norway."], metadata={"lang": "en"})
    for hit in docs.search("capital of Norway", k=3, filters={"lang": "en"}):
        print(hit.score, hit.text)

Backends (``backend:`` of a store): ``sqlite`` (embedded, the default: a file, no
server), ``chroma`` (a Chroma server over HTTP), ``openai`` and ``llama_stack``
(managed: they chunk and embed themselves). The contract is
:class:`tollway.vectors.backend.VectorBackend`. Names import lazily.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "VectorStore": "tollway.vectors.store",
    "Chunk": "tollway.vectors.types",
    "ScoredChunk": "tollway.vectors.types",
    "AddResult": "tollway.vectors.types",
    "SearchResult": "tollway.vectors.types",
    "ChunkPage": "tollway.vectors.types",
    "VectorBackend": "tollway.vectors.backend",
    "DocumentInput": "tollway.vectors.backend",
    "parse_filter": "tollway.vectors.filters",
    "Chunker": "tollway.vectors.chunking",
    "chunk_text": "tollway.vectors.chunking",
    "VectorStoreError": "tollway.vectors.errors",
    "UnknownVectorStoreError": "tollway.vectors.errors",
    "BackendUnavailableError": "tollway.vectors.errors",
    "BadFilterError": "tollway.vectors.errors",
    "register_backend": "tollway.vectors.registry",
}

__all__ = [
    "AddResult",
    "BackendUnavailableError",
    "BadFilterError",
    "Chunk",
    "ChunkPage",
    "Chunker",
    "DocumentInput",
    "ScoredChunk",
    "SearchResult",
    "UnknownVectorStoreError",
    "VectorBackend",
    "VectorStore",
    "VectorStoreError",
    "chunk_text",
    "parse_filter",
    "register_backend",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tollway.vectors' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


if TYPE_CHECKING:
    from tollway.vectors.backend import DocumentInput, VectorBackend
    from tollway.vectors.chunking import Chunker, chunk_text
    from tollway.vectors.errors import (
        BackendUnavailableError,
        BadFilterError,
        UnknownVectorStoreError,
        VectorStoreError,
    )
    from tollway.vectors.filters import parse_filter
    from tollway.vectors.registry import register_backend
    from tollway.vectors.store import VectorStore
    from tollway.vectors.types import AddResult, Chunk, ChunkPage, ScoredChunk, SearchResult
