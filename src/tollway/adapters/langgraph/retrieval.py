"""A tollway vector store as a LangChain retriever and tool (LangGraph agents,
``langchain.agents.create_agent``, any LCEL chain).

::

    docs = tollway.VectorStore("docs")
    retriever = TollwayRetriever(store=docs, k=4, filters={"lang": "en"})
    agent = create_agent(TollwayChatModel(model="smart"), tools=[retriever_tool(docs)])

Documents carry the chunk's metadata plus ``id`` and ``score``. Every search is a
``retrieval`` ledger row attributed like the graph's model calls (framework, node, run
id) and under the run's trace id.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import StructuredTool, ToolException
from pydantic import ConfigDict

from tollway.adapters.langgraph.context import run_scope
from tollway.vectors.errors import VectorStoreError
from tollway.vectors.store import VectorStore
from tollway.vectors.tool import render_hits, retrieval_tool
from tollway.vectors.types import ScoredChunk

__all__ = ["TollwayRetriever", "retriever_tool"]


def _document(hit: ScoredChunk) -> Document:
    return Document(page_content=hit.text, id=hit.id,
                    metadata={**hit.metadata, "id": hit.id, "score": hit.score})


class TollwayRetriever(BaseRetriever):
    """``store.search(query, k=k, filters=filters)`` as LangChain Documents."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: VectorStore
    k: int = 4
    filters: dict[str, Any] | None = None

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        with run_scope(None, run_manager):
            hits = self.store.search(query, k=self.k, filters=self.filters)
        return [_document(h) for h in hits]

    async def _aget_relevant_documents(
            self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        with run_scope(None, run_manager):
            hits = await self.store.asearch(query, k=self.k, filters=self.filters)
        return [_document(h) for h in hits]


def retriever_tool(store: VectorStore, *, name: str = "file_search", k: int = 5,
                   description: str | None = None) -> StructuredTool:
    """The store as a ``file_search`` StructuredTool (query, k, filters), answering with
    numbered passages; a bad filter becomes an error ToolMessage for the model."""
    spec = retrieval_tool(store, name=name, k=k, description=description)
    default_k = k

    def search(query: str, k: int = default_k, filters: dict[str, Any] | None = None) -> str:
        try:
            with run_scope():
                return render_hits(store.search(query, k=k, filters=filters))
        except VectorStoreError as exc:
            raise ToolException(str(exc)) from exc

    async def asearch(query: str, k: int = default_k,
                      filters: dict[str, Any] | None = None) -> str:
        try:
            with run_scope():
                return render_hits(await store.asearch(query, k=k, filters=filters))
        except VectorStoreError as exc:
            raise ToolException(str(exc)) from exc

    return StructuredTool(name=spec.name, description=spec.tool.description,
                          args_schema=spec.tool.parameters, func=search, coroutine=asearch,
                          handle_tool_error=True, metadata={"vector_store": store.name})
