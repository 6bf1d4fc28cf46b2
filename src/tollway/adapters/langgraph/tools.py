"""MCP tools as LangChain tools (LangGraph agents, ``langchain.agents.create_agent``).

::

    async with MCPClient(servers) as mcp:
        agent = create_agent(TollwayChatModel(model="smart"), tools=to_langchain_tools(mcp))
        await agent.ainvoke({"messages": [("user", "What time is it in Oslo?")]})

Each tool is a ``StructuredTool`` whose ``args_schema`` is the tool's normalised JSON
schema (refs inlined, so every chat model accepts it), with both ``coroutine`` (async
agents) and ``func`` (sync agents: the client's loop must run on another thread, i.e. a
SyncMCPClient). A failed call raises ``ToolException``; with ``handle_tool_error`` on
(the default here) LangChain hands its text back to the model as an error ToolMessage.
Images come back as LangChain image content blocks.

Every call is a ledger row (the client's ledger: by default the one a ``Model`` uses)
with ``framework="langgraph"``, the node that ran the tool (``tools`` in
``create_agent``), the graph's run / thread id and the run's trace id: the same trace id
as the model calls of that run when the run has an id (``config={"run_id": ...}``,
always set by LangGraph Server) or runs inside ``tollway.trace()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.tools import StructuredTool, ToolException

from tollway.adapters.langgraph.context import run_scope
from tollway.core.types import Image, Text
from tollway.mcp.bridge import ToolBinding, bind_tools
from tollway.mcp.client import MCPClient, SyncMCPClient
from tollway.mcp.tools import ToolOutput

__all__ = ["to_langchain_tool", "to_langchain_tools"]


def _content(output: ToolOutput) -> str | list[dict[str, Any]]:
    if output.is_error:
        raise ToolException(output.text or f"tool {output.tool!r} failed ({output.status})")
    if all(isinstance(p, Text) for p in output.content):
        return output.text
    blocks: list[dict[str, Any]] = []
    for part in output.content:
        if isinstance(part, Text):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            blocks.append({"type": "image", "base64": part.base64,
                           "mime_type": part.media_type or "image/png"})
    return blocks


def to_langchain_tool(binding: ToolBinding, *, handle_tool_error: Any = True) -> StructuredTool:
    """One bound MCP tool as a StructuredTool."""

    async def call_async(**arguments: Any) -> Any:
        return _content(await binding.acall(arguments))

    def call_sync(**arguments: Any) -> Any:
        return _content(binding.call(arguments))

    return StructuredTool(
        name=binding.name,
        description=binding.description,
        args_schema=binding.schema,
        func=call_sync,
        coroutine=call_async,
        handle_tool_error=handle_tool_error,
        metadata={"mcp_server": binding.tool.server, "mcp_tool": binding.tool.name},
    )


def to_langchain_tools(
    client: MCPClient | SyncMCPClient,
    names: Iterable[str] | None = None,
    *,
    timeout: float | None = None,
    handle_tool_error: Any = True,
) -> list[StructuredTool]:
    """The client's tools (all, or the exposed ``names``) as LangChain tools.
    ``timeout`` overrides the servers' call timeouts; ``handle_tool_error`` is passed to
    every tool (True: a failed call's message goes back to the model)."""
    return [
        to_langchain_tool(binding, handle_tool_error=handle_tool_error)
        for binding in bind_tools(client, names, timeout=timeout, scope=run_scope)
    ]
