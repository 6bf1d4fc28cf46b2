"""MCP tools as smolagents tools (``smolagents.Tool``).

::

    with MCPClient(servers).sync() as mcp:
        agent = ToolCallingAgent(tools=to_smolagents_tools(mcp), model=TollwayModel("smart"))
        agent.run("What time is it in Oslo?")

smolagents calls tools synchronously, so the client's loop must run on another thread
(a SyncMCPClient). Inputs are smolagents' flat ``{name: {type, description, nullable}}``
form of the JSON schema (optional arguments are ``nullable``, as smolagents requires);
names are made valid Python identifiers (CodeAgent calls tools as functions). A failed
call raises :class:`MCPToolCallError`, which smolagents reports to the model as a tool
error and the agent carries on.

Every call is a ledger row (the client's ledger: by default the one a ``Model`` uses)
with ``framework="smolagents"``, the calling agent's name and the agent run's trace id,
the same as that run's model calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from smolagents import Tool

from tollway.adapters.smolagents._agent import tool_scope
from tollway.mcp.bridge import ToolBinding, bind_tools, prune_unset, render_text
from tollway.mcp.client import MCPClient, SyncMCPClient
from tollway.mcp.errors import MCPToolError

__all__ = ["MCPSmolTool", "MCPToolCallError", "to_smolagents_tools"]

_TYPES = {"string", "boolean", "integer", "number", "array", "object", "null"}


class MCPToolCallError(MCPToolError):
    """A smolagents tool call that failed on the MCP side (raised so smolagents reports it)."""


def _input_type(schema: Any) -> str | list[str]:
    if not isinstance(schema, Mapping):
        return "any"
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _TYPES:
        return kind
    if isinstance(kind, list):
        kinds = [k for k in kind if k in _TYPES and k != "null"]
        return kinds[0] if len(kinds) == 1 else (kinds or "any")
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        kinds = sorted({k for o in options if isinstance(k := _input_type(o), str)
                        and k not in ("null", "any")})
        return kinds[0] if len(kinds) == 1 else "any"
    if "properties" in schema:
        return "object"
    return "any"


def smolagents_inputs(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """smolagents ``inputs`` for an object JSON schema."""
    required = set(schema.get("required") or ())
    inputs: dict[str, dict[str, Any]] = {}
    for name, prop in (schema.get("properties") or {}).items():
        spec: dict[str, Any] = {
            "type": _input_type(prop),
            "description": (prop.get("description") if isinstance(prop, Mapping) else None)
            or name,
        }
        if name not in required:
            spec["nullable"] = True
        inputs[name] = spec
    return inputs


def _python_name(name: str) -> str:
    out = re.sub(r"\W", "_", name)
    return out if out and not out[0].isdigit() else f"_{out}"


class MCPSmolTool(Tool):
    """A smolagents tool that calls one MCP tool through the shared client session."""

    skip_forward_signature_validation = True
    output_type = "string"

    def __init__(self, binding: ToolBinding) -> None:
        self.binding = binding
        self.name = _python_name(binding.name)
        self.description = binding.description
        self.inputs = smolagents_inputs(binding.schema)
        super().__init__()
        self.validate_arguments()

    def forward(self, **kwargs: Any) -> str:
        output = self.binding.call(prune_unset(kwargs, self.binding.schema))
        if output.is_error:
            raise MCPToolCallError(
                output.text or f"tool {self.name!r} failed ({output.status})",
                server=output.server, tool=output.tool,
            )
        return render_text(output)


def to_smolagents_tools(
    client: MCPClient | SyncMCPClient,
    names: Iterable[str] | None = None,
    *,
    timeout: float | None = None,
) -> list[MCPSmolTool]:
    """The client's tools (all, or the exposed ``names``) as smolagents tools."""
    return [MCPSmolTool(b) for b in bind_tools(client, names, timeout=timeout, scope=tool_scope)]
