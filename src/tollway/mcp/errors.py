"""Errors of the MCP layer, all under :class:`tollway.errors.TollwayError`.

A failed *tool call* is normally not an exception: the tool loop hands it back to the
model as a ``ToolResult(is_error=True)`` so the model can react. These classes describe
why (they are also what ``on_tool_error="raise"`` raises, and what a caller of
:meth:`ToolOutput.raise_for_error` gets).
"""

from __future__ import annotations

from tollway.core.errors import TollwayError

__all__ = [
    "MCPConnectionError",
    "MCPError",
    "MCPProtocolError",
    "MCPTimeoutError",
    "MCPToolDenied",
    "MCPToolError",
    "MCPUnknownToolError",
]


class MCPError(TollwayError):
    """Base of the MCP errors; ``server`` names the server (None when unknown)."""

    def __init__(self, message: str, *, server: str | None = None, tool: str | None = None):
        self.server = server
        self.tool = tool
        super().__init__(message)


class MCPConnectionError(MCPError):
    """A server could not be started / reached, or dropped the connection (a stdio
    process died, an HTTP server went away). The client reconnects on the next call."""


class MCPTimeoutError(MCPError):
    """A tool call (or the connect) took longer than its timeout."""


class MCPToolError(MCPError):
    """The tool ran and reported a failure (an ``isError`` result)."""


class MCPProtocolError(MCPError):
    """The server answered the call with a JSON-RPC error (``code``): servers on the
    2.x SDK do so for unknown tools and invalid arguments (-32602)."""

    def __init__(self, message: str, *, code: int, server: str | None = None,
                 tool: str | None = None) -> None:
        self.code = code
        super().__init__(message, server=server, tool=tool)


class MCPUnknownToolError(MCPError):
    """No connected server exposes a tool by that name (or it is not allowed)."""


class MCPToolDenied(MCPError):
    """The approval hook refused the call."""
