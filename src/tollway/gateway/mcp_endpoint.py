"""``POST /mcp``: the gateway as one MCP server (streamable HTTP, stateless, JSON replies).

Any MCP client (the mcp SDK's ``streamablehttp_client``, IDEs, agents) connects with
``Authorization: Bearer <virtual key>`` and sees the tools of the configured ``mcp:``
servers that the key's grants allow, under the collision-safe names of the core's
catalog (``server__tool``; a server's ``prefix`` replaces ``server``). Calls are
proxied to the upstream server and each is a ledger row (kind "tool") attributed to
the key. A tool the key may not use is absent from ``tools/list`` and a call to it
is an ``isError`` result saying so.

Why JSON-RPC here rather than the SDK's ``StreamableHTTPSessionManager``: the gateway
is a raw ASGI app whose route table already does authentication, body limits and
errors; the session manager wants a task group held open by the app's lifespan and
its own request objects, and the gateway needs only four methods (initialize, ping,
tools/list, tools/call) answered with one JSON body each, which the transport allows
for a server that never streams. Stateless: no ``mcp-session-id``; ``GET`` (a server
stream) is 405, which the transport defines as "this server offers none".
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tollway.core.cost.attribution import attribute
from tollway.core.errors import scrub
from tollway.core.logs import logger
from tollway.core.tracing import trace
from tollway.core.types import Image, Text
from tollway.gateway.http import HttpRequest, JSONReply, dumps
from tollway.mcp.errors import MCPError

if TYPE_CHECKING:
    from tollway.gateway.runtime import Gateway
    from tollway.mcp.tools import ToolOutput

__all__ = ["mcp_endpoint"]

log = logger("tollway.gateway.mcp")

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
INTERNAL_ERROR = -32603


class _RPCError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _reply(message_id: Any, result: Any = None, error: _RPCError | None = None) -> JSONReply:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": message_id}
    if error is not None:
        body["error"] = {"code": error.code, "message": str(error)}
    else:
        body["result"] = result
    return JSONReply(200, dumps(body))


async def mcp_endpoint(gw: Gateway, req: HttpRequest) -> JSONReply:
    try:
        message = req.json()
    except Exception as exc:
        return _reply(None, error=_RPCError(PARSE_ERROR, str(exc)))
    if not isinstance(message, Mapping) or message.get("jsonrpc") != "2.0":
        return _reply(None, error=_RPCError(
            INVALID_REQUEST, "send one JSON-RPC 2.0 message per request (batches are not supported)"))
    method = message.get("method")
    if "id" not in message:  # a notification (notifications/initialized, cancelled): accepted
        return JSONReply(202, b"")
    message_id = message["id"]
    params = message.get("params") or {}
    try:
        if not isinstance(params, Mapping):
            raise _RPCError(INVALID_PARAMS, "params must be an object")
        if method == "initialize":
            result = _initialize(params)
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = await _list(gw, req)
        elif method == "tools/call":
            result = await _call(gw, req, params)
        else:
            raise _RPCError(METHOD_NOT_FOUND, f"the gateway's /mcp serves tools only; no method "
                                              f"{method!r} (initialize, ping, tools/list, tools/call)")
    except _RPCError as exc:
        return _reply(message_id, error=exc)
    except MCPError as exc:  # an upstream server cannot be reached: say which
        return _reply(message_id, error=_RPCError(INTERNAL_ERROR, scrub(str(exc), 500)))
    return _reply(message_id, result)


def _initialize(params: Mapping[str, Any]) -> dict[str, Any]:
    from tollway import __version__

    asked = params.get("protocolVersion")
    version = asked if asked in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1]
    return {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "tollway-gateway", "version": __version__},
        "instructions": "Tools of the MCP servers this gateway's key may use, named server__tool.",
    }


def _servers_for(gw: Gateway, req: HttpRequest) -> list[str]:
    return gw.mcp.granted_servers(req.key, list(gw.mcp.servers))


async def _list(gw: Gateway, req: HttpRequest) -> dict[str, Any]:
    names = _servers_for(gw, req)
    if not names:
        return {"tools": []}
    allow = gw.mcp.permitted(req.key, names)
    async with gw.mcp.client(names, req.headers) as client:
        tools = [t for t in await client.list_tools() if allow(t)]
    listed = []
    for tool in tools:
        entry: dict[str, Any] = {"name": tool.exposed_name, "description": tool.tool.description,
                                 "inputSchema": tool.tool.parameters}
        if tool.annotations:
            entry["annotations"] = dict(tool.annotations)
        listed.append(entry)
    return {"tools": listed}


def _refusal(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


async def _call(gw: Gateway, req: HttpRequest, params: Mapping[str, Any]) -> dict[str, Any]:
    name = params.get("name")
    arguments = params.get("arguments") or {}
    if not isinstance(name, str) or not isinstance(arguments, Mapping):
        raise _RPCError(INVALID_PARAMS, "tools/call needs 'name' (a string) and 'arguments' (an object)")
    who = req.key.id if req.key is not None else "this caller"
    names = _servers_for(gw, req)
    allow = gw.mcp.permitted(req.key, names)
    if names:
        async with gw.mcp.client(names, req.headers) as client:
            tool = (await client.catalog()).get(name)
            if tool is not None and allow(tool):
                with trace(), attribute(gw.attribution(req.key, req.headers)):
                    output = await client.call_server_tool(tool.server, tool.name, dict(arguments))
                return _result(output)
    log.warning("refused MCP tool %r for key %s: not granted (or no such tool)", name, who)
    return _refusal(f"tool {name!r} is not available to key {who}: it does not exist or the key "
                    "has no grant for it (tools/list shows what the key may call; an admin "
                    "grants more with `tollway keys create --mcp server:tool`)")


def _result(output: ToolOutput) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in output.content:
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, Image) and part.data is not None:
            content.append({"type": "image", "data": base64.b64encode(part.data).decode(),
                            "mimeType": part.media_type or "image/png"})
        else:
            content.append({"type": "text", "text": str(part)})
    result: dict[str, Any] = {"content": content, "isError": output.is_error}
    if output.structured is not None and not output.is_error:
        result["structuredContent"] = output.structured
    return result
