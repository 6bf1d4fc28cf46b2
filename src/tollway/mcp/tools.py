"""MCP tools <-> canonical tollway types: exposed names, schemas, allow lists, results.

Pure functions over plain values (duck-typed MCP SDK objects in, tollway types out): no
I/O and no import of ``mcp``, so every rule here is testable on its own.

Names. A model sees ``<prefix><separator><tool>`` (``time__get_current_time``). Every
provider's rules hold at once: at most 64 characters from ``[A-Za-z0-9_-]``, starting
with a letter or ``_`` (Gemini). A name that had to be changed to fit (an illegal
character replaced, or cut to length) gets a short hash of the original, so two
different tools can never end up with the same name; :class:`ToolCatalog` keeps the
reverse map from exposed name to (server, tool).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tollway.core import json_schema as schema_utils
from tollway.core.errors import BadRequestError
from tollway.core.logs import logger
from tollway.core.types import Image, Part, Text, Tool

log = logger("tollway.mcp")

__all__ = [
    "DEFAULT_SEPARATOR",
    "NAME_LIMIT",
    "FunctionTool",
    "MCPTool",
    "ToolCatalog",
    "ToolOutput",
    "expose_names",
    "function_tool",
    "is_allowed",
    "normalise_schema",
    "output_from_result",
    "sanitize_name",
]

DEFAULT_SEPARATOR = "__"
NAME_LIMIT = 64
"""OpenAI's and Gemini's limit (Anthropic allows 128): the strictest wins."""
_ILLEGAL = re.compile(r"[^A-Za-z0-9_-]")
_HASH_LEN = 8


# --------------------------------------------------------------------------- names


def sanitize_name(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_-]`` replaced by ``_``, and a
    leading ``_`` added when it would start with a digit or ``-`` (or be empty)."""
    out = _ILLEGAL.sub("_", name)
    if not out or not (out[0].isalpha() or out[0] == "_"):
        out = "_" + out
    return out


def _digest(text: str, length: int = _HASH_LEN) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def expose_names(
    tools: Iterable[tuple[str, str]],
    *,
    separator: str = DEFAULT_SEPARATOR,
    limit: int = NAME_LIMIT,
) -> dict[tuple[str, str], str]:
    """Exposed names for ``(prefix, tool name)`` pairs, unique and provider-safe.

    A name that is legal as is stays readable (``github__create_issue``). One that had to
    change (illegal characters, too long) becomes ``<readable part>_<hash>``, the hash
    taken over the original ``prefix`` + ``tool``, so it can never take a readable name;
    two legal names that spell the same string (``a`` + ``b__c`` and ``a__b`` + ``c``)
    both get the hash. Hashes grow until every name differs. The result depends only on
    the set of pairs, not their order.
    """
    if _ILLEGAL.search(separator):
        raise BadRequestError(
            f"tool-name separator {separator!r} may only use letters, digits, '_' and '-'"
        )
    if limit < _HASH_LEN + 2:
        raise BadRequestError(f"a tool-name limit of {limit} is too short; use at least 16")
    pairs = sorted(set(tools))
    wanted: dict[tuple[str, str], str] = {}
    changed: set[tuple[str, str]] = set()
    for prefix, name in pairs:
        raw = f"{prefix}{separator}{name}" if prefix else name
        clean = sanitize_name(raw)
        wanted[(prefix, name)] = clean
        if clean != raw or len(clean) > limit:
            changed.add((prefix, name))
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key, clean in wanted.items():
        by_name.setdefault(clean, []).append(key)
    for keys in by_name.values():
        unchanged = [k for k in keys if k not in changed]
        if len(unchanged) > 1:  # ("a", "b__c") and ("a__b", "c") both spell a__b__c
            changed.update(unchanged)
    out = {key: clean for key, clean in wanted.items() if key not in changed}
    taken = set(out.values())
    length = _HASH_LEN
    pending = sorted(changed)
    while pending:
        attempt = {}
        for prefix, name in pending:
            tag = _digest(f"{prefix}\x00{name}", length)
            head = wanted[(prefix, name)][: limit - length - 1]
            attempt[(prefix, name)] = f"{head}_{tag}"
        counts: dict[str, int] = {}
        for value in attempt.values():
            counts[value] = counts.get(value, 0) + 1
        still = [k for k, v in attempt.items() if counts[v] > 1 or v in taken]
        for key, value in attempt.items():
            if key not in still:
                out[key] = value
                taken.add(value)
        if len(still) == len(pending) and length >= 64:
            raise BadRequestError("could not make tool names unique")  # pragma: no cover
        pending = still
        length = min(length * 2, 64)
    return out


def is_allowed(name: str, allow: Sequence[str] | None, deny: Sequence[str]) -> bool:
    """Whether a server tool passes its server's lists: in ``allow`` (all when None) and
    not in ``deny``. Entries are exact names or ``fnmatch`` patterns (``get_*``)."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in deny):
        return False
    return allow is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in allow)


# --------------------------------------------------------------------------- schemas


def normalise_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """An MCP tool's ``inputSchema`` as a self-contained JSON schema that every dialect
    can take: ``$ref`` / ``$defs`` inlined (recursion cut, see core.schema), a top-level
    object with ``properties`` (empty schemas made valid), ``required`` trimmed to real
    properties, and ``$schema`` dropped. ``anyOf`` / nullable are left as standard JSON
    schema: each dialect rewrites them to what its API takes (Gemini's ``nullable``).

    A schema whose top is not an object is not callable as a tool; it is replaced by an
    open object schema and a warning is logged (the server's own validation still runs).
    """
    data = dict(schema or {})
    data.pop("$schema", None)
    try:
        inlined = schema_utils.inline_refs(data)
        return schema_utils.ensure_object_schema(inlined)
    except BadRequestError as exc:
        log.warning("tool schema replaced by an open object schema: %s", exc)
        return {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class MCPTool:
    """One server tool as a model sees it: the canonical :class:`Tool` (named with the
    exposed name) plus where it lives."""

    server: str
    name: str
    """The server's own name for the tool."""
    exposed_name: str
    tool: Tool
    annotations: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None

    @property
    def read_only(self) -> bool | None:
        """The server's ``readOnlyHint``, when it gave one (approval hooks may use it)."""
        hint = (self.annotations or {}).get("readOnlyHint")
        return None if hint is None else bool(hint)


def _dump(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else value


def to_mcp_tool(server: str, raw: Any, exposed_name: str) -> MCPTool:
    """An ``mcp.types.Tool`` (or anything with its attributes) as an :class:`MCPTool`."""
    annotations = _dump(getattr(raw, "annotations", None))
    description = (
        getattr(raw, "description", None)
        or getattr(raw, "title", None)
        or (annotations or {}).get("title")
        or ""
    )
    return MCPTool(
        server=server,
        name=raw.name,
        exposed_name=exposed_name,
        tool=Tool(exposed_name, description, normalise_schema(getattr(raw, "inputSchema", None))),
        annotations=annotations,
        output_schema=getattr(raw, "outputSchema", None),
    )


@dataclass(slots=True)
class ToolCatalog:
    """Exposed name -> :class:`MCPTool`, for every allowed tool of every server."""

    tools: dict[str, MCPTool] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        listed: Mapping[str, tuple[str, Sequence[Any]]],
        *,
        separator: str = DEFAULT_SEPARATOR,
        limit: int = NAME_LIMIT,
    ) -> ToolCatalog:
        """From ``server name -> (prefix, the server's tools, already allow-filtered)``."""
        pairs = [(prefix, t.name) for prefix, tools in listed.values() for t in tools]
        names = expose_names(pairs, separator=separator, limit=limit)
        seen: dict[tuple[str, str], str] = {}
        catalog: dict[str, MCPTool] = {}
        for server, (prefix, tools) in listed.items():
            for raw in tools:
                key = (prefix, raw.name)
                if key in seen:
                    raise BadRequestError(
                        f"MCP servers {seen[key]!r} and {server!r} both expose {raw.name!r} under "
                        f"the prefix {prefix!r}: give one of them another prefix"
                    )
                seen[key] = server
                exposed = names[key]
                catalog[exposed] = to_mcp_tool(server, raw, exposed)
        return cls(catalog)

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def __iter__(self) -> Any:
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)

    def get(self, name: str) -> MCPTool | None:
        return self.tools.get(name)

    def find(self, server: str, name: str) -> MCPTool | None:
        for tool in self.tools.values():
            if tool.server == server and tool.name == name:
                return tool
        return None

    def canonical(self) -> list[Tool]:
        return [t.tool for t in self.tools.values()]


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class ToolOutput:
    """What one tool call produced, whatever went wrong: the content for the model and
    whether it is an error. ``status`` is the ledger status (``ok``, ``tool_error`` for an
    ``isError`` result, else the error class name); ``error`` the exception behind a
    failed call."""

    content: list[Part]
    is_error: bool = False
    structured: Any = None
    status: str = "ok"
    error: Exception | None = None
    server: str | None = None
    tool: str | None = None
    latency_ms: float = 0.0
    cost_nanos: int = 0
    """The configured price of the call (nano-USD); 0 when unpriced or not executed."""

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.content if isinstance(p, Text))

    def tool_content(self) -> str | list[Part]:
        """The content for a ToolResult: one string when it is all text, else the parts."""
        if all(isinstance(p, Text) for p in self.content):
            return self.text
        return list(self.content)

    def with_text(self, text: str) -> ToolOutput:
        """Replace the content by one text (a clearer message for the model)."""
        self.content = [Text(text)]
        return self

    def raise_for_error(self) -> ToolOutput:
        """Raise the error behind a failed call (an ``isError`` result raises
        :class:`~tollway.mcp.errors.MCPToolError`); return self when it succeeded."""
        if not self.is_error:
            return self
        if self.error is not None:
            raise self.error
        from tollway.mcp.errors import MCPToolError

        raise MCPToolError(
            f"tool {self.tool!r} on MCP server {self.server!r} failed: {self.text[:500]}",
            server=self.server, tool=self.tool,
        )

    @classmethod
    def failure(cls, error: Exception, *, server: str | None = None, tool: str | None = None,
                status: str | None = None) -> ToolOutput:
        return cls([Text(str(error))], True, None, status or type(error).__name__, error,
                   server, tool)


def _b64(data: str) -> bytes | None:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def content_to_parts(blocks: Iterable[Any]) -> list[Part]:
    """MCP content blocks as tollway parts: text -> Text, image -> Image (bytes), an
    embedded text resource -> Text, an embedded image blob -> Image; audio, other blobs
    and resource links become a short Text that says what was returned (no tollway
    dialect can send audio back in a tool result)."""
    parts: list[Part] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(Text(block.text))
        elif kind == "image":
            data = _b64(block.data)
            if data is None:
                parts.append(Text(f"[an image ({block.mimeType}) with invalid base64 data]"))
            else:
                parts.append(Image(data=data, media_type=block.mimeType))
        elif kind == "audio":
            size = len(_b64(block.data) or b"")
            parts.append(Text(f"[audio result ({block.mimeType}, {size} bytes) not shown]"))
        elif kind == "resource":
            res = block.resource
            uri = str(getattr(res, "uri", ""))
            mime = getattr(res, "mimeType", None)
            text = getattr(res, "text", None)
            if text is not None:
                parts.append(Text(text))
            elif mime and mime.startswith("image/") and (data := _b64(res.blob)) is not None:
                parts.append(Image(data=data, media_type=mime))
            else:
                size = len(_b64(getattr(res, "blob", "")) or b"")
                parts.append(Text(f"[resource {uri} ({mime or 'binary'}, {size} bytes)]"))
        elif kind == "resource_link":
            label = getattr(block, "title", None) or getattr(block, "name", "")
            parts.append(Text(f"[resource link: {label} <{block.uri}>]"))
        else:
            parts.append(Text(f"[unsupported MCP content type {kind!r}]"))
    return parts


def output_from_result(result: Any, *, server: str, tool: str) -> ToolOutput:
    """An ``mcp.types.CallToolResult`` as a ToolOutput. ``isError`` results stay results
    (``is_error=True``, status ``tool_error``). A result with only ``structuredContent``
    is sent as its JSON text."""
    parts = content_to_parts(getattr(result, "content", None) or ())
    structured = getattr(result, "structuredContent", None)
    if not parts and structured is not None:
        parts = [Text(json.dumps(structured, ensure_ascii=False, default=str))]
    is_error = bool(getattr(result, "isError", False))
    return ToolOutput(
        parts, is_error, structured, "tool_error" if is_error else "ok", None, server, tool
    )


# --------------------------------------------------------------------------- local tools


@dataclass(slots=True)
class FunctionTool:
    """A Python function the tool loop runs locally beside the MCP tools.

    The parameters schema comes from the function's signature (pydantic), the
    description from its docstring. Sync functions run in a worker thread; async ones
    are awaited. An exception becomes an error result for the model.
    """

    fn: Callable[..., Any]
    tool: Tool
    _validator: Any = None

    @classmethod
    def of(cls, fn: Callable[..., Any], *, name: str | None = None,
           description: str | None = None) -> FunctionTool:
        from pydantic import ConfigDict, create_model

        try:  # string annotations (``from __future__ import annotations``) resolved
            signature = inspect.signature(fn, eval_str=True)
        except (NameError, TypeError):
            signature = inspect.signature(fn)
        params: dict[str, Any] = {}
        for pname, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
            default = ... if param.default is inspect.Parameter.empty else param.default
            params[pname] = (annotation, default)
        tool_name = sanitize_name(name or fn.__name__)[:NAME_LIMIT]
        model = create_model(
            f"{tool_name}_args", __config__=ConfigDict(extra="forbid"), **params
        )
        schema = normalise_schema(model.model_json_schema())
        schema.pop("title", None)
        doc = description if description is not None else inspect.getdoc(fn) or ""
        return cls(fn, Tool(tool_name, doc, schema), model)

    @property
    def name(self) -> str:
        return self.tool.name

    def _kwargs(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        values = self._validator.model_validate(dict(arguments))
        return {k: getattr(values, k) for k in type(values).model_fields}

    async def acall(self, arguments: Mapping[str, Any]) -> Any:
        """Run with validated arguments (a pydantic ValidationError when they are not)."""
        kwargs = self._kwargs(arguments)
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**kwargs)
        result = await asyncio.to_thread(self.fn, **kwargs)
        return await result if inspect.isawaitable(result) else result

    def call(self, arguments: Mapping[str, Any]) -> Any:
        kwargs = self._kwargs(arguments)
        if inspect.iscoroutinefunction(self.fn):
            return asyncio.run(self.fn(**kwargs))
        return self.fn(**kwargs)


def function_tool(value: FunctionTool | Callable[..., Any]) -> FunctionTool:
    """A FunctionTool from a FunctionTool or a plain (sync or async) function."""
    if isinstance(value, FunctionTool):
        return value
    if callable(value) and not isinstance(value, type):
        return FunctionTool.of(value)
    raise BadRequestError(
        f"extra tools must be Python functions (or tollway.mcp.FunctionTool); got {value!r}. "
        "Tools without an implementation cannot be run by the tool loop."
    )


def value_to_output(value: Any, *, tool: str) -> ToolOutput:
    """A local function's return value as a ToolOutput (str as is, parts as parts,
    anything else as JSON)."""
    if isinstance(value, ToolOutput):
        return value
    if isinstance(value, str):
        parts: list[Part] = [Text(value)]
    elif isinstance(value, Text | Image):
        parts = [value]
    elif isinstance(value, list) and value and all(isinstance(v, Text | Image) for v in value):
        parts = list(value)
    else:
        dump = getattr(value, "model_dump", None)
        data = dump(mode="json") if callable(dump) else value
        parts = [Text(json.dumps(data, ensure_ascii=False, default=str))]
    return ToolOutput(parts, False, None, "ok", None, None, tool)

