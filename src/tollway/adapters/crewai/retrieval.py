"""A tollway vector store as a CrewAI tool.

::

    docs = tollway.VectorStore("docs")
    agent = Agent(role=..., llm=TollwayLLM(model="smart"), tools=[RetrievalCrewTool.of(docs)])

Every search is a ``retrieval`` ledger row attributed to the crew, agent and task,
under the run's trace id. A bad filter comes back to the agent as a ``ToolFailure``.
"""

from __future__ import annotations

from typing import Any

from crewai.tools import BaseTool
from crewai.tools.tool_failure import ToolFailure, ToolFailureReason
from pydantic import BaseModel, Field, PrivateAttr

from tollway.adapters.crewai._scope import run_scope
from tollway.vectors.errors import BadFilterError, VectorStoreError
from tollway.vectors.store import VectorStore
from tollway.vectors.tool import render_hits, tool_description

__all__ = ["RetrievalCrewTool"]


class _SearchArgs(BaseModel):
    query: str = Field(..., description="What to look for, in words")
    k: int | None = Field(None, description="How many passages (default: the tool's)")
    filters: dict[str, Any] | None = Field(None, description="Optional metadata filter")


class RetrievalCrewTool(BaseTool):
    """``file_search`` over one store."""

    args_schema: type[BaseModel] = _SearchArgs
    _store: VectorStore = PrivateAttr()
    _k: int = PrivateAttr(5)

    @classmethod
    def of(cls, store: VectorStore, *, name: str = "file_search", k: int = 5,
           description: str | None = None) -> RetrievalCrewTool:
        tool = cls(name=name, description=tool_description(store, k, description))
        tool._store, tool._k = store, k
        return tool

    def _failure(self, exc: VectorStoreError) -> ToolFailure:
        return ToolFailure(message=str(exc), reason=(ToolFailureReason.INVALID_INPUT if isinstance(exc, BadFilterError)
                                   else ToolFailureReason.EXCEPTION),
                           code=type(exc).__name__, retryable=False,
                           details={"vector_store": self._store.name})

    def _run(self, query: str, k: int | None = None,
             filters: dict[str, Any] | None = None) -> Any:
        try:
            with run_scope():
                return render_hits(self._store.search(query, k=k or self._k, filters=filters))
        except VectorStoreError as exc:
            return self._failure(exc)

    async def _arun(self, query: str, k: int | None = None,
                    filters: dict[str, Any] | None = None) -> Any:
        try:
            with run_scope():
                return render_hits(await self._store.asearch(query, k=k or self._k,
                                                             filters=filters))
        except VectorStoreError as exc:
            return self._failure(exc)
