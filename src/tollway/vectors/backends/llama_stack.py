"""``backend: llama_stack``: a Llama Stack / OGX distribution's vector stores, which
speak the OpenAI vector stores API under ``/v1`` (default ``http://127.0.0.1:8321/v1``);
the same code as :mod:`tollway.vectors.backends.openai`, without OpenAI's per-search fee.
Llama Stack's create body takes ``embedding_model``, ``embedding_dimension`` and
``provider_id`` (the vector DB: faiss, chroma, milvus...): put them under
``options.create`` of the store."""

from __future__ import annotations

from tollway.vectors.backends.openai import open_backend

__all__ = ["open_backend"]
