"""MCP tools as CrewAI tools (``crewai.tools.BaseTool`` subclasses).

::

    with MCPClient(servers).sync() as mcp:
        agent = Agent(role=..., goal=..., backstory=..., llm=TollwayLLM("smart"),
                      tools=to_crewai_tools(mcp))

Tool names are what CrewAI shows the model (it lowercases them and collapses ``__`` to
``_``: ``box__count`` becomes ``box_count``); names its rewrite would merge get a short
hash. CrewAI runs tools synchronously (``_run``) from its own threads, so the client's loop
must run elsewhere: a SyncMCPClient, or an MCPClient whose loop lives on another thread.
``_arun`` serves CrewAI's async paths. The ``args_schema`` is a pydantic model built from
the tool's JSON schema (CrewAI validates arguments with it). A failed call returns a
``crewai.tools.tool_failure.ToolFailure`` (reason ``mcp_error``), CrewAI's own signal
for a tool that ran but did not succeed: the agent sees the message and CrewAI's
``tool_failure_policy`` decides what happens.

Every call is a ledger row (the client's ledger: by default the one a ``Model`` uses)
with ``framework="crewai"``, the agent role, task and crew of the task running it, and
the crew run's trace id, the same as that run's model calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from crewai.tools import BaseTool
from crewai.tools.tool_failure import ToolFailure, ToolFailureReason
from crewai.utilities.string_utils import sanitize_tool_name
from pydantic import BaseModel, PrivateAttr

from tollway.adapters.crewai._scope import run_scope
from tollway.mcp.bridge import (
    ToolBinding,
    bind_tools,
    prune_unset,
    render_text,
    schema_to_model,
)
from tollway.mcp.client import MCPClient, SyncMCPClient
from tollway.mcp.errors import MCPConnectionError, MCPTimeoutError
from tollway.mcp.tools import ToolOutput

__all__ = ["MCPCrewTool", "to_crewai_tools"]


class MCPCrewTool(BaseTool):
    """A CrewAI tool that calls one MCP tool through the shared client session."""

    _binding: ToolBinding = PrivateAttr()

    @classmethod
    def of(cls, binding: ToolBinding, name: str | None = None) -> MCPCrewTool:
        model = schema_to_model(f"{binding.name}_args", binding.schema)
        tool = cls(name=name or crewai_name(binding.name), description=binding.description,
                   args_schema=model)
        tool._binding = binding
        return tool

    def _arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        fields = self.args_schema.model_fields
        wire = {(fields[k].alias or k) if k in fields else k: v for k, v in kwargs.items()}
        wire = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in wire.items()}
        return prune_unset(wire, self._binding.schema)

    def _result(self, output: ToolOutput) -> Any:
        if not output.is_error:
            return render_text(output)
        retryable = isinstance(output.error, MCPTimeoutError | MCPConnectionError)
        return ToolFailure(
            message=output.text or f"tool {self.name!r} failed",
            reason=ToolFailureReason.MCP_ERROR,
            code=output.status,
            retryable=retryable,
            details={"server": output.server, "tool": output.tool},
        )

    def _run(self, **kwargs: Any) -> Any:
        return self._result(self._binding.call(self._arguments(kwargs)))

    async def _arun(self, **kwargs: Any) -> Any:
        return self._result(await self._binding.acall(self._arguments(kwargs)))


def crewai_name(name: str) -> str:
    """The name CrewAI will show the model (it lowercases names and collapses ``__``)."""
    return sanitize_tool_name(name)


def to_crewai_tools(
    client: MCPClient | SyncMCPClient,
    names: Iterable[str] | None = None,
    *,
    timeout: float | None = None,
) -> list[MCPCrewTool]:
    """The client's tools (all, or the exposed ``names``) as CrewAI tools.

    CrewAI rewrites tool names for the model (``box__Count`` -> ``box_count``); the
    tools are named that way already, and names that CrewAI's rewrite would merge get a
    short hash of the exposed name, so every tool stays callable."""
    bindings = bind_tools(client, names, timeout=timeout, scope=run_scope)
    wanted = [crewai_name(b.name) for b in bindings]
    tools = []
    for binding, name in zip(bindings, wanted, strict=True):
        if wanted.count(name) > 1:
            tag = hashlib.sha256(binding.name.encode()).hexdigest()[:8]
            name = crewai_name(f"{name[:55]}_{tag}")
        tools.append(MCPCrewTool.of(binding, name))
    return tools
