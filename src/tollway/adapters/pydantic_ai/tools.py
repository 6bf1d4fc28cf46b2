"""MCP tools as a Pydantic AI toolset.

::

    async with MCPClient(servers) as mcp:
        agent = Agent(TollwayModel("smart"), toolsets=[MCPToolset(mcp)])
        result = await agent.run("What time is it in Oslo?")

Unlike ``pydantic_ai.mcp.MCPServer`` (one connection per toolset, opened and closed
with each agent run), this toolset calls through a tollway client, so several agents
share its one long-lived session per server, names are collision-safe across servers,
and every call is a ledger row (the client's ledger: by default the one a ``Model``
uses) with ``framework="pydantic_ai"``, the agent's name, the run id and the run's trace
id, the same as the run's model requests. A failed call raises
Pydantic AI's ``ToolFailed``: the model sees the failure and adapts, without spending
the tool's retry budget. Images come back as ``BinaryContent``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.messages import BinaryContent
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets.abstract import AbstractToolset, ToolsetTool
from pydantic_core import SchemaValidator, core_schema

from tollway.adapters.pydantic_ai.run import run_scope
from tollway.core.types import Image, Text
from tollway.mcp.bridge import ToolBinding, bind_tools
from tollway.mcp.client import MCPClient, SyncMCPClient

__all__ = ["MCPToolset"]

_ANY_ARGS = SchemaValidator(core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema()))
"""Arguments are checked by the MCP server itself (its schema is the authority)."""


class MCPToolset(AbstractToolset[Any]):
    """The tools of a tollway MCP client (all, or the exposed ``names``) for an Agent.

    ``max_retries``: how often the model may retry a call whose arguments Pydantic AI
    rejected (None: the agent's setting). ``timeout`` overrides the servers' call
    timeouts. ``id`` names the toolset (needed only for durable execution)."""

    def __init__(
        self,
        client: MCPClient | SyncMCPClient,
        names: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        id: str | None = None,
    ) -> None:
        self._client = client
        self._names = list(names) if names is not None else None
        self._timeout = timeout
        self._max_retries = max_retries
        self._id = id

    @property
    def id(self) -> str | None:
        return self._id

    def _bindings(self) -> dict[str, ToolBinding]:
        return {b.name: b for b in bind_tools(self._client, self._names, timeout=self._timeout)}

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        retries = self._max_retries if self._max_retries is not None else ctx.max_retries
        tools: dict[str, ToolsetTool[Any]] = {}
        for name, binding in self._bindings().items():
            definition = ToolDefinition(
                name=name,
                description=binding.description,
                parameters_json_schema=binding.schema,
                metadata={"mcp_server": binding.tool.server, "mcp_tool": binding.tool.name},
            )
            tools[name] = ToolsetTool(
                toolset=self, tool_def=definition, max_retries=retries, args_validator=_ANY_ARGS
            )
        return tools

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        binding = self._bindings().get(name)
        if binding is None:
            raise ToolFailed(f"there is no MCP tool named {name!r}")
        with run_scope(ctx):
            output = await binding.acall(tool_args)
        if output.is_error:
            raise ToolFailed(output.text or f"tool {name!r} failed ({output.status})")
        if all(isinstance(p, Text) for p in output.content):
            return output.text
        parts: list[Any] = []
        for part in output.content:
            if isinstance(part, Text):
                parts.append(part.text)
            elif isinstance(part, Image) and part.data is not None:
                parts.append(BinaryContent(data=part.data, media_type=part.media_type or "image/png"))
        return parts
