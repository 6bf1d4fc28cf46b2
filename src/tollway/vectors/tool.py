"""Retrieval as a tool: a ``file_search``-style tool over one store, for the core tool
loop and (through the adapters) every framework.

::

    docs = tollway.VectorStore("docs")
    result = run_tools(Model("smart"), "What does our travel policy say?",
                       tools=[docs.as_tool()])

The model calls ``file_search(query, k?, filters?)``; the tool searches (one
``retrieval`` ledger row under the loop's trace id, beside the loop's ``tool`` row) and
answers with the hits as numbered text, best first, each with its score and source, so
the model can cite them. A bad filter from the model comes back to it as an error
result (the loop's usual handling), not an exception in the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tollway.mcp.tools import FunctionTool
    from tollway.vectors.store import VectorStore
    from tollway.vectors.types import ScoredChunk

__all__ = ["DEFAULT_DESCRIPTION", "render_hits", "retrieval_tool", "tool_description"]

DEFAULT_DESCRIPTION = (
    "Search the document store {store!r} for passages relevant to a query and return "
    "them best first, with their source. Use it to answer from the documents; quote "
    "the source. Arguments: query (what to look for, in words), k (how many passages, "
    "default {k}), filters (optional metadata filter, e.g. {{\"lang\": \"en\"}})."
)


def tool_description(store: VectorStore, k: int, description: str | None = None) -> str:
    return description or DEFAULT_DESCRIPTION.format(store=store.name, k=k)


def render_hits(hits: list[ScoredChunk]) -> str:
    """The hits as the text a model reads."""
    if not hits:
        return "No matching passages."
    lines = []
    for n, hit in enumerate(hits, 1):
        source = f", source {hit.source}" if hit.source else ""
        lines.append(f"[{n}] (score {hit.score:.3f}{source})\n{hit.text}")
    return "\n\n".join(lines)


def retrieval_tool(store: VectorStore, *, name: str | None = None, k: int = 5,
                   description: str | None = None) -> FunctionTool:
    """A :class:`~tollway.mcp.FunctionTool` named ``name`` (default ``file_search``)."""
    from tollway.mcp.tools import FunctionTool

    default_k = k

    async def file_search(query: str, k: int = default_k,
                          filters: dict[str, Any] | None = None) -> str:
        return render_hits(await store.asearch(query, k=k, filters=filters))

    return FunctionTool.of(file_search, name=name or "file_search",
                           description=tool_description(store, k, description))
