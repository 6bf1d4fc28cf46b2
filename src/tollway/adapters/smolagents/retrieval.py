"""A tollway vector store as a smolagents tool.

::

    docs = tollway.VectorStore("docs")
    agent = ToolCallingAgent(tools=[RetrievalSmolTool(docs)], model=TollwaySmolModel("smart"))

Every search is a ``retrieval`` ledger row with ``framework="smolagents"``, the calling
agent's name and the agent run's trace id. A bad filter raises a
:class:`~tollway.vectors.errors.BadFilterError`, which smolagents reports to the model.
"""

from __future__ import annotations

from typing import Any

from smolagents import Tool

from tollway.adapters.smolagents._agent import tool_scope
from tollway.vectors.store import VectorStore
from tollway.vectors.tool import render_hits, tool_description

__all__ = ["RetrievalSmolTool"]


class RetrievalSmolTool(Tool):
    """``file_search(query, k?)`` over one store (filters are fixed per tool: smolagents
    inputs are flat, so ``filters=`` is given at construction)."""

    skip_forward_signature_validation = True
    output_type = "string"

    def __init__(self, store: VectorStore, *, name: str = "file_search", k: int = 5,
                 filters: dict[str, Any] | None = None, description: str | None = None) -> None:
        self.store = store
        self.k = k
        self.filters = filters
        self.name = name
        self.description = tool_description(store, k, description)
        self.inputs = {
            "query": {"type": "string", "description": "What to look for, in words"},
            "k": {"type": "integer", "description": f"How many passages (default {k})",
                  "nullable": True},
        }
        super().__init__()
        self.validate_arguments()

    def forward(self, query: str, k: int | None = None) -> str:
        with tool_scope():
            return render_hits(self.store.search(query, k=k or self.k, filters=self.filters))
