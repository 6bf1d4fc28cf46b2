"""A low-level MCP server that reports failures the way servers on the 2.x SDK do: as
JSON-RPC errors (-32602 "invalid params") instead of ``isError`` results.

It lists ``ping`` and ``vanished``; calling ``vanished`` (or any unknown name) answers
with a JSON-RPC error, as a 2.x server does for a tool that no longer exists.
"""

from __future__ import annotations

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import McpError

server: Server = Server("rpc-errors")
EMPTY = {"type": "object", "properties": {}}


@server.list_tools()
async def list_tools() -> list[types.Tool]:
    return [
        types.Tool(name="ping", description="Answer pong.", inputSchema=EMPTY),
        types.Tool(name="vanished", description="A tool the server no longer has.", inputSchema=EMPTY),
    ]


async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
    if request.params.name == "ping":
        content = [types.TextContent(type="text", text="pong")]
        return types.ServerResult(types.CallToolResult(content=content))
    raise McpError(types.ErrorData(code=types.INVALID_PARAMS,
                                   message=f"Unknown tool: {request.params.name}"))


server.request_handlers[types.CallToolRequest] = call_tool


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
