"""A tollway vector store as a Pydantic AI tool or toolset.

::

    docs = tollway.VectorStore("docs")
    agent = Agent(TollwayModel("smart"), toolsets=[retrieval_toolset(docs)])

Every search is a ``retrieval`` ledger row with ``framework="pydantic_ai"``, the
agent's name and the run id, under the run's trace id (the same as the run's model
requests). A bad filter from the model is a ``ToolFailed`` the model sees and adapts to.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai import RunContext, Tool
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.toolsets import FunctionToolset

from tollway.adapters.pydantic_ai.run import run_scope
from tollway.vectors.errors import VectorStoreError
from tollway.vectors.store import VectorStore
from tollway.vectors.tool import render_hits, tool_description

__all__ = ["retrieval_tool", "retrieval_toolset"]


def retrieval_tool(store: VectorStore, *, name: str = "file_search", k: int = 5,
                   description: str | None = None) -> Tool[Any]:
    """``file_search(query, k?, filters?)`` over ``store``."""
    default_k = k

    async def file_search(ctx: RunContext[Any], query: str, k: int = default_k,
                          filters: dict[str, Any] | None = None) -> str:
        try:
            with run_scope(ctx):
                return render_hits(await store.asearch(query, k=k, filters=filters))
        except VectorStoreError as exc:
            raise ToolFailed(str(exc)) from exc

    return Tool(file_search, takes_ctx=True, name=name,
                description=tool_description(store, k, description))


def retrieval_toolset(store: VectorStore, *, name: str = "file_search", k: int = 5,
                      description: str | None = None) -> FunctionToolset[Any]:
    """A toolset holding :func:`retrieval_tool`."""
    return FunctionToolset([retrieval_tool(store, name=name, k=k, description=description)])
