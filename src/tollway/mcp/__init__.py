"""tollway.mcp: MCP server tools in any model call, and the tool loop that runs them.

::

    from tollway import Model
    from tollway.mcp import MCPClient, StdioServer, arun_tools

    servers = [StdioServer(name="time", command="mcp-server-time")]
    async with MCPClient(servers) as mcp:
        result = await arun_tools(Model("openai/gpt-4o-mini"), "Time in Oslo?", mcp=mcp)
        print(result.text, result.cost)

Names are imported lazily: ``import tollway.mcp`` does not import the ``mcp`` SDK until a
client is used (the configs and tool conversion need no SDK at all). Framework bridges
live next to each adapter: ``tollway.adapters.<framework>.tools``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "MCPServer": "tollway.mcp.config",
    "StdioServer": "tollway.mcp.config",
    "HTTPServer": "tollway.mcp.config",
    "SSEServer": "tollway.mcp.config",
    "server_from_dict": "tollway.mcp.config",
    "servers_from_config": "tollway.mcp.config",
    "MCPClient": "tollway.mcp.client",
    "SyncMCPClient": "tollway.mcp.client",
    "Disconnect": "tollway.mcp.client",
    "MCPTool": "tollway.mcp.tools",
    "ToolCatalog": "tollway.mcp.tools",
    "ToolOutput": "tollway.mcp.tools",
    "FunctionTool": "tollway.mcp.tools",
    "expose_names": "tollway.mcp.tools",
    "normalise_schema": "tollway.mcp.tools",
    "arun_tools": "tollway.mcp.loop",
    "run_tools": "tollway.mcp.loop",
    "astream_tools": "tollway.mcp.loop",
    "ToolLoopResult": "tollway.mcp.loop",
    "ToolCallRequest": "tollway.mcp.loop",
    "ToolRun": "tollway.mcp.loop",
    "RoundEnd": "tollway.mcp.loop",
    "ToolCallStarted": "tollway.mcp.loop",
    "ToolCallFinished": "tollway.mcp.loop",
    "ToolLoopEnd": "tollway.mcp.loop",
    "MCPError": "tollway.mcp.errors",
    "MCPConnectionError": "tollway.mcp.errors",
    "MCPTimeoutError": "tollway.mcp.errors",
    "MCPToolError": "tollway.mcp.errors",
    "MCPProtocolError": "tollway.mcp.errors",
    "MCPUnknownToolError": "tollway.mcp.errors",
    "MCPToolDenied": "tollway.mcp.errors",
}

__all__ = [
    "Disconnect",
    "FunctionTool",
    "HTTPServer",
    "MCPClient",
    "MCPConnectionError",
    "MCPError",
    "MCPProtocolError",
    "MCPServer",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolDenied",
    "MCPToolError",
    "MCPUnknownToolError",
    "RoundEnd",
    "SSEServer",
    "StdioServer",
    "SyncMCPClient",
    "ToolCallFinished",
    "ToolCallRequest",
    "ToolCallStarted",
    "ToolCatalog",
    "ToolLoopEnd",
    "ToolLoopResult",
    "ToolOutput",
    "ToolRun",
    "arun_tools",
    "astream_tools",
    "expose_names",
    "normalise_schema",
    "run_tools",
    "server_from_dict",
    "servers_from_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tollway.mcp' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


if TYPE_CHECKING:
    from tollway.mcp.client import Disconnect, MCPClient, SyncMCPClient
    from tollway.mcp.config import (
        HTTPServer,
        MCPServer,
        SSEServer,
        StdioServer,
        server_from_dict,
        servers_from_config,
    )
    from tollway.mcp.errors import (
        MCPConnectionError,
        MCPError,
        MCPProtocolError,
        MCPTimeoutError,
        MCPToolDenied,
        MCPToolError,
        MCPUnknownToolError,
    )
    from tollway.mcp.loop import (
        RoundEnd,
        ToolCallFinished,
        ToolCallRequest,
        ToolCallStarted,
        ToolLoopEnd,
        ToolLoopResult,
        ToolRun,
        arun_tools,
        astream_tools,
        run_tools,
    )
    from tollway.mcp.tools import (
        FunctionTool,
        MCPTool,
        ToolCatalog,
        ToolOutput,
        expose_names,
        normalise_schema,
    )
