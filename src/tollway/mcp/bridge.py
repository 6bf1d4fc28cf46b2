"""What every framework bridge shares: a tool bound to a client, sync and async calls,
argument clean-up and a JSON schema -> pydantic model conversion.

Each call's ledger row is written by the client under the attribution and trace id in
force when the call is made. A framework runs a tool outside the model call that asked
for it, so each bridge gives its bindings a ``scope``: a context manager, entered
around every call, that opens the framework's run as the model adapter sees it
(framework, agent or node, and the run's trace id), so tool rows and model rows of one
run line up.
"""

from __future__ import annotations

import asyncio
import keyword
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from tollway.core.types import Image, Text
from tollway.mcp.client import MCPClient, SyncMCPClient, as_async_client, run_sync, submit
from tollway.mcp.errors import MCPUnknownToolError
from tollway.mcp.tools import MCPTool, ToolOutput

__all__ = [
    "RunScope",
    "ToolBinding",
    "bind_tools",
    "prune_unset",
    "render_text",
    "schema_to_model",
]


RunScope = Callable[[], AbstractContextManager[Any]]
"""Opens the framework run a tool call belongs to (attribution and trace id)."""


class ToolBinding:
    """One MCP tool bound to the client whose session runs it, and the ``scope`` its
    calls run in (see the module docstring)."""

    __slots__ = ("client", "scope", "timeout", "tool")

    def __init__(self, client: MCPClient, tool: MCPTool, timeout: float | None,
                 scope: RunScope = nullcontext) -> None:
        self.client = client
        self.tool = tool
        self.timeout = timeout
        self.scope = scope

    @property
    def name(self) -> str:
        return self.tool.exposed_name

    @property
    def description(self) -> str:
        return self.tool.tool.description or f"{self.tool.name} (MCP server {self.tool.server})"

    @property
    def schema(self) -> dict[str, Any]:
        return self.tool.tool.parameters

    def _coro(self, arguments: Mapping[str, Any]) -> Any:
        return self.client.call_server_tool(
            self.tool.server, self.tool.name, dict(arguments), timeout=self.timeout
        )

    async def acall(self, arguments: Mapping[str, Any]) -> ToolOutput:
        """Call from async code (hops to the client's loop if it runs elsewhere)."""
        home = self.client.loop
        with self.scope():
            if home is None or home is asyncio.get_running_loop():
                return await self._coro(arguments)
            return await asyncio.wrap_future(submit(home, self._coro(arguments)))

    def call(self, arguments: Mapping[str, Any]) -> ToolOutput:
        """Call from sync code (the client's loop must run on another thread)."""
        with self.scope():
            return run_sync(self.client, self._coro(arguments))


def bind_tools(
    client: MCPClient | SyncMCPClient,
    names: Iterable[str] | None = None,
    *,
    timeout: float | None = None,
    scope: RunScope = nullcontext,
) -> list[ToolBinding]:
    """Bindings for the client's tools (all, or the exposed ``names``), from the catalog
    listed at connect time (no I/O); every call runs in ``scope``."""
    inner = as_async_client(client)
    catalog = inner.snapshot()
    if names is None:
        chosen = list(catalog)
    else:
        chosen = []
        for name in names:
            tool = catalog.get(name)
            if tool is None:
                known = ", ".join(sorted(catalog.tools))
                raise MCPUnknownToolError(f"no MCP tool named {name!r}; available: {known}",
                                          tool=name)
            chosen.append(tool)
    return [ToolBinding(inner, tool, timeout, scope) for tool in chosen]


def render_text(output: ToolOutput) -> str:
    """A tool output as text for frameworks that only take strings (images noted)."""
    pieces = []
    for part in output.content:
        if isinstance(part, Text):
            pieces.append(part.text)
        elif isinstance(part, Image):
            size = len(part.data or b"")
            pieces.append(f"[image: {part.media_type or 'image'}, {size} bytes]")
    return "\n".join(pieces)


def _nullable(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind) or schema.get("nullable"):
        return True
    options = schema.get("anyOf") or schema.get("oneOf") or []
    return any(_nullable(o) for o in options if isinstance(o, Mapping) and o.get("type") == "null")


def prune_unset(arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values a framework filled in for optional arguments the model did
    not give (pydantic dumps every field) unless the schema allows null."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    return {
        key: value
        for key, value in arguments.items()
        if value is not None or key in required or _nullable(props.get(key))
    }


# --------------------------------------------------------------------------- schema -> model

_SIMPLE: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                           "null": type(None)}


def _identifier(name: str) -> str:
    out = re.sub(r"\W", "_", name) or "Model"
    if out[0].isdigit() or keyword.iskeyword(out):
        out = "_" + out
    return out


def _annotation(schema: Any, hint: str) -> Any:
    if not isinstance(schema, Mapping) or not schema:
        return Any
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return Literal[tuple(schema["enum"])]
    if "const" in schema:
        return Literal[(schema["const"],)]
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        members = tuple(_annotation(o, f"{hint}_{i}") for i, o in enumerate(options))
        return Union[members] if len(members) > 1 else members[0]  # noqa: UP007
    kind = schema.get("type")
    if isinstance(kind, list):
        members = tuple(_annotation({**schema, "type": k}, hint) for k in kind)
        return Union[members] if len(members) > 1 else members[0]  # noqa: UP007
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "array":
        return list[_annotation(schema.get("items"), f"{hint}_item")]  # type: ignore[misc]
    if kind == "object" or "properties" in schema:
        if schema.get("properties"):
            return schema_to_model(hint, schema)
        return dict[str, Any]
    return Any


def schema_to_model(name: str, schema: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model for an (already inlined) object JSON schema, for frameworks that
    insist on a model class (CrewAI's ``args_schema``). Types, enums, unions, arrays,
    nested objects, descriptions and defaults carry over; anything else is ``Any``, and
    the server validates the arguments for real."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    fields: dict[str, Any] = {}
    for prop, sub in props.items():
        annotation = _annotation(sub, f"{name}_{prop}")
        description = sub.get("description") if isinstance(sub, Mapping) else None
        if prop in required:
            fields[_identifier(prop)] = (annotation, Field(..., alias=prop, description=description))
        else:
            default = sub.get("default") if isinstance(sub, Mapping) else None
            fields[_identifier(prop)] = (
                annotation | None, Field(default, alias=prop, description=description)
            )
    config = ConfigDict(populate_by_name=True, extra="ignore")
    return create_model(_identifier(name), __config__=config, **fields)
