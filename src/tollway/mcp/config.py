"""MCP server configurations: how to reach a server, and what of it the model may use.

Three transports, one base: :class:`StdioServer` (a child process speaking JSON-RPC on
stdin/stdout), :class:`HTTPServer` (streamable HTTP) and :class:`SSEServer` (the older
HTTP + server-sent-events transport). Every config also carries the policy the client
applies to that server: its tool-name prefix, allow / deny lists, connect and call
timeouts and an optional price per tool call (for the ledger).

Configs are plain frozen values: building one never connects. Servers can be written in
code or declared in tollway.yaml's ``mcp:`` section (:func:`servers_from_config`).
Secrets (bearer tokens, header values, env values) never appear in ``repr``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

from tollway.core.errors import ConfigError
from tollway.core.types import NANOS_PER_USD

__all__ = [
    "HTTPServer",
    "MCPServer",
    "SSEServer",
    "StdioServer",
    "server_from_dict",
    "servers_from_config",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _price_nanos(value: Any, what: str, key: str | None = None) -> int | None:
    """A USD price (number or numeric string) as integer nano-USD."""
    if value is None:
        return None
    try:
        usd = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{what} must be a price in USD (a number), got {value!r}", key=key) from None
    if not usd.is_finite() or usd < 0:
        raise ConfigError(f"{what} must be a non-negative price in USD, got {value!r}", key=key)
    return int(usd * NANOS_PER_USD)


def _positive(value: float | None, what: str, key: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not value > 0):
        raise ConfigError(f"{what} must be a positive number of seconds, got {value!r}", key=key)


@dataclass(frozen=True, kw_only=True)
class MCPServer:
    """What every server config has; use :class:`StdioServer`, :class:`HTTPServer` or
    :class:`SSEServer`.

    - ``name``: the server's name in tollway (ledger rows, tool-name prefix, errors).
    - ``prefix``: what exposed tool names start with (default: ``name``; ``""`` exposes
      the server's tool names bare, which is only safe with a single server).
    - ``allow`` / ``deny``: tool names (the server's own names, ``fnmatch`` patterns
      allowed) the model may see; ``allow=None`` means all, ``deny`` always wins.
    - ``connect_timeout``: seconds to start / connect and initialize the session.
    - ``call_timeout``: seconds a tool call may take before the client gives up (None:
      wait forever); a per-call ``timeout`` overrides it.
    - ``price_per_call`` (USD) and ``tool_prices`` (tool name -> USD): what a call costs,
      recorded in the ledger row of each call the server ran, failed or not (default 0:
      tool calls are free; a call that timed out or never reached the server costs 0).
    """

    name: str
    prefix: str | None = None
    allow: Sequence[str] | None = None
    deny: Sequence[str] = ()
    connect_timeout: float = 30.0
    call_timeout: float | None = 60.0
    price_per_call: Decimal | float | str | None = None
    tool_prices: Mapping[str, Decimal | float | str] = field(default_factory=dict)

    transport: ClassVar[str] = ""
    _secret_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if type(self) is MCPServer:
            raise TypeError("MCPServer is abstract: use StdioServer, HTTPServer or SSEServer")
        if not self.name or not _NAME.match(self.name):
            raise ConfigError(
                f"MCP server name {self.name!r} must be non-empty and use only letters, "
                "digits, '_' and '-' (it becomes part of tool names)"
            )
        if isinstance(self.allow, str) or isinstance(self.deny, str):
            raise ConfigError(
                f"MCP server {self.name!r}: allow / deny must be lists of tool names, not a string",
                key="allow" if isinstance(self.allow, str) else "deny",
            )
        _positive(self.connect_timeout, f"MCP server {self.name!r}: connect_timeout",
                  "connect_timeout")
        _positive(self.call_timeout, f"MCP server {self.name!r}: call_timeout", "call_timeout")
        _price_nanos(self.price_per_call, f"MCP server {self.name!r}: price_per_call",
                     "price_per_call")
        for tool, price in self.tool_prices.items():
            _price_nanos(price, f"MCP server {self.name!r}: tool_prices[{tool!r}]",
                         f"tool_prices.{tool}")

    @property
    def tool_prefix(self) -> str:
        return self.name if self.prefix is None else self.prefix

    def call_price_nanos(self, tool: str) -> int:
        """The configured price of one call to ``tool`` in nano-USD (0 when unpriced)."""
        price = self.tool_prices.get(tool, self.price_per_call)
        return _price_nanos(price, "price") or 0

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, (), {}) and f.name != "name":
                continue
            if f.name in self._secret_fields and value:
                value = "***" if isinstance(value, str) else {k: "***" for k in value}
            shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


@dataclass(frozen=True, kw_only=True, repr=False)
class StdioServer(MCPServer):
    """A server started as a child process (``command args...``) that speaks MCP on its
    stdin / stdout. ``env`` is added to a minimal safe environment (the SDK's default:
    PATH, HOME, ...), not to the whole parent environment; ``inherit_env=True`` passes
    the parent's environment too. The process lives as long as the client's session and
    is restarted if it dies."""

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    cwd: str | os.PathLike[str] | None = None
    inherit_env: bool = False

    transport: ClassVar[str] = "stdio"
    _secret_fields: ClassVar[tuple[str, ...]] = ("env",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.command:
            raise ConfigError(f"MCP server {self.name!r}: stdio servers need a command",
                              key="command")
        if isinstance(self.args, str):
            raise ConfigError(f"MCP server {self.name!r}: args must be a list of strings",
                              key="args")


@dataclass(frozen=True, kw_only=True, repr=False)
class _HTTPBase(MCPServer):
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    bearer_token: str | None = None
    """Sent as ``Authorization: Bearer <token>``."""
    auth: Any = None
    """An ``httpx.Auth`` (e.g. the SDK's OAuth provider) for anything beyond a bearer token."""
    verify: bool | str = True
    """TLS verification (False, or a CA bundle path)."""
    forward_authorization: bool = False
    """Behind ``tollway gateway``: send the calling client's own ``Authorization`` header
    to this server (in place of ``bearer_token``). Off by default: a client's credential
    never reaches an upstream server unless its entry says so."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("headers", "bearer_token")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"MCP server {self.name!r}: url must start with http:// or https://, "
                f"got {self.url!r}",
                key="url",
            )
        if self.bearer_token and self.auth is not None:
            raise ConfigError(f"MCP server {self.name!r}: give bearer_token or auth, not both",
                              key="auth")

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers


@dataclass(frozen=True, kw_only=True, repr=False)
class HTTPServer(_HTTPBase):
    """A server over streamable HTTP (``https://host/mcp``); one MCP session (its
    ``mcp-session-id``) is kept for the life of the client."""

    transport: ClassVar[str] = "http"


@dataclass(frozen=True, kw_only=True, repr=False)
class SSEServer(_HTTPBase):
    """A server over the legacy HTTP + SSE transport (``https://host/sse``)."""

    sse_read_timeout: float = 300.0
    transport: ClassVar[str] = "sse"


# --------------------------------------------------------------------------- from dicts

_KINDS: dict[str, type[MCPServer]] = {
    "stdio": StdioServer,
    "http": HTTPServer,
    "streamable-http": HTTPServer,
    "streamable_http": HTTPServer,
    "sse": SSEServer,
}
_COMMON = {f.name for f in fields(StdioServer)} | {f.name for f in fields(SSEServer)}


def server_from_dict(name: str, spec: Mapping[str, Any]) -> MCPServer:
    """One server from a config mapping (a tollway.yaml ``mcp:`` entry).

    The transport is ``transport:`` (stdio | http | sse), else inferred: ``command``
    means stdio, ``url`` means streamable HTTP (SSE when the path ends in ``/sse``).
    ``bearer_token_env`` names an environment variable holding the bearer token, so the
    token itself need not be in the file.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"MCP server {name!r} must be a mapping of settings, got {type(spec).__name__}")
    data = dict(spec)
    kind = data.pop("transport", None) or data.pop("type", None)
    if kind is None:
        if "command" in data:
            kind = "stdio"
        elif "url" in data:
            kind = "sse" if str(data["url"]).rstrip("/").endswith("/sse") else "http"
        else:
            raise ConfigError(
                f"MCP server {name!r} needs a 'command' (stdio) or a 'url' (http / sse)"
            )
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ConfigError(
            f"MCP server {name!r}: transport {kind!r} is not one of stdio, http, sse",
            key="transport",
        )
    env_name = data.pop("bearer_token_env", None)
    if env_name:
        token = os.environ.get(str(env_name))
        if not token:
            raise ConfigError(
                f"MCP server {name!r}: environment variable {env_name} (bearer_token_env) "
                "is not set",
                key="bearer_token_env",
            )
        data["bearer_token"] = token
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        hint = " (valid for another transport)" if set(unknown) <= _COMMON else ""
        raise ConfigError(
            f"MCP server {name!r}: unknown setting(s) {', '.join(unknown)}{hint}; valid: "
            + ", ".join(sorted(allowed - {"name"})),
            key=unknown[0],
        )
    for key in ("args", "allow", "deny"):
        if key in data and data[key] is not None:
            value = data[key]
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ConfigError(f"MCP server {name!r}: {key} must be a list", key=key)
            data[key] = tuple(str(v) for v in value)
    if "cwd" in data and data["cwd"] is not None:
        data["cwd"] = str(Path(str(data["cwd"])).expanduser())
    try:
        return cls(name=name, **data)
    except TypeError as exc:  # a missing required field (command / url)
        raise ConfigError(f"MCP server {name!r}: {exc}") from None


def servers_from_config(settings: Any) -> list[MCPServer]:
    """The servers declared in tollway.yaml's ``mcp:`` section.

    ``settings`` is a :class:`tollway.core.config.TollwaySettings` (its raw ``mcp``
    mapping; errors name the file and line through ``settings.error``), or the mapping
    ``server name -> settings`` itself.
    """
    if isinstance(settings, Mapping):
        section: Any = settings.get("mcp", settings) if "mcp" in settings else settings
        report = None
    else:
        section = getattr(settings, "mcp", None) or {}
        report = getattr(settings, "error", None)
    if not isinstance(section, Mapping):
        message = "the mcp section must map server names to server settings"
        if report is not None:
            raise report(("mcp",), message)
        raise ConfigError(message, key="mcp")
    servers = []
    for name, spec in section.items():
        try:
            servers.append(server_from_dict(str(name), spec))
        except ConfigError as exc:
            if report is None:
                raise
            path: tuple[str, ...] = ("mcp", str(name))
            message = str(exc)
            if exc.key:
                path = (*path, *exc.key.split("."))
                message = message.split(": ", 1)[-1]
            raise report(path, message) from None
    return servers
