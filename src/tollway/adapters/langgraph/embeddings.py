"""TollwayEmbeddings: LangChain ``Embeddings`` whose every call goes through a tollway Model.

Give it to any vector store or retriever (``InMemoryVectorStore(TollwayEmbeddings(
model="embed"))``) and each embedding call is routed, priced, budget-checked and written
to the ledger (kind ``embedding``) with the node that made it when it runs inside a
graph, and the model's org / project / user. Documents are embedded with input type
``document`` and queries with ``query`` (providers with asymmetric embeddings, Gemini
and Vertex, embed the two differently; the others ignore the hint). Sync and async
methods call tollway's own sync and async paths (no thread-pool hops).
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import Field, model_validator

from tollway.adapters.langgraph.connection import TollwayConnection, collect_model_kwargs
from tollway.adapters.langgraph.context import run_scope
from tollway.core.media_types import EmbeddingResponse
from tollway.core.model import Model


class TollwayEmbeddings(TollwayConnection, Embeddings):
    """``TollwayEmbeddings(model="embed")`` (an alias from tollway.yaml),
    ``TollwayEmbeddings(model="openai/text-embedding-3-small", api_key=...)``, or
    ``TollwayEmbeddings(client=tollway.Model(...))`` to share one configured Model.

    ``dimensions`` shortens the vectors where the model allows it; keyword arguments
    that are not fields go into ``model_kwargs`` and reach the provider untouched.
    ``org`` / ``project`` / ``user`` / ``tags`` / ``attribution`` are recorded with every
    call (an enclosing ``tollway.attribute(...)`` scope overrides them).
    """

    tags: dict[str, str] | list[str] | None = None
    dimensions: int | None = Field(default=None, gt=0)
    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, values: Any) -> Any:
        return collect_model_kwargs(values, set(cls.model_fields)) if isinstance(values, dict) else values

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client = self._tollway_client("TollwayEmbeddings")
        self._defaults = self._attribution_defaults(self.tags)

    @property
    def tollway_model(self) -> Model:
        """The tollway Model these embeddings call."""
        return self._client

    def _params(self, input_type: str) -> dict[str, Any]:
        return {"dimensions": self.dimensions, "input_type": input_type, **self.model_kwargs}

    # ------------------------------------------------------------------ Embeddings

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (an empty list makes no call)."""
        if not texts:
            return []
        with run_scope(self._defaults):
            return self._client.embed(texts, **self._params("document")).vectors

    def embed_query(self, text: str) -> list[float]:
        with run_scope(self._defaults):
            return _first(self._client.embed([text], **self._params("query")))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with run_scope(self._defaults):
            response = await self._client.aembed(texts, **self._params("document"))
        return response.vectors

    async def aembed_query(self, text: str) -> list[float]:
        with run_scope(self._defaults):
            return _first(await self._client.aembed([text], **self._params("query")))


def _first(response: EmbeddingResponse) -> list[float]:
    return response.vectors[0]


__all__ = ["TollwayEmbeddings"]
