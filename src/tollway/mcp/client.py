"""MCPClient: one long-lived session per MCP server, over the official ``mcp`` SDK (1.x).

Why one session per server for the life of the client: servers keep state per session (a
browser server's open page, a database server's transaction), so a client that opens a
session per call silently loses it. Each server's session runs in its own background
task that owns the SDK's transport context managers (anyio requires they are entered and
exited by the same task); calls from any task of the same event loop go through it.

A dropped connection (a stdio process that died, an HTTP server that went away) is
noticed when the transport's read stream ends: a call in flight fails with
:class:`MCPConnectionError` (returned to the model as an error result; the call is not
retried, it may have had effects), the disconnect is recorded in
:attr:`MCPClient.disconnects` and logged, and the next call starts a fresh session (a
stdio server is restarted).

Failures of a tool call are never exceptions here: :meth:`MCPClient.call_tool` returns a
:class:`~tollway.mcp.tools.ToolOutput` with ``is_error`` set, whichever way the server
reported the failure (an ``isError`` result from 1.x servers, a JSON-RPC error such as
-32602 from 2.x servers), and for timeouts and disconnects too.

:class:`SyncMCPClient` runs the same client on a private event-loop thread for
synchronous code (``with MCPClient(...).sync() as mcp:``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
from mcp import ClientSession, McpError, types

from tollway.core.errors import scrub
from tollway.core.logs import logger
from tollway.core.telemetry import switch as _telemetry
from tollway.core.telemetry.attributes import error_type as type_name
from tollway.core.types import Tool
from tollway.mcp.config import HTTPServer, MCPServer, SSEServer, StdioServer, server_from_dict
from tollway.mcp.errors import (
    MCPConnectionError,
    MCPError,
    MCPProtocolError,
    MCPTimeoutError,
    MCPUnknownToolError,
)
from tollway.mcp.rows import arecord, tool_record
from tollway.mcp.tools import (
    DEFAULT_SEPARATOR,
    NAME_LIMIT,
    MCPTool,
    ToolCatalog,
    ToolOutput,
    is_allowed,
    output_from_result,
)

if TYPE_CHECKING:
    from tollway.core.cost.ledger import Ledger

__all__ = ["Disconnect", "MCPClient", "SyncMCPClient"]

log = logger("tollway.mcp")
T = TypeVar("T")

_CLOSED_CODES = {types.CONNECTION_CLOSED, 32600}
"""JSON-RPC error codes meaning the session is gone (the SDK's "Connection closed", and
the streamable-HTTP transport's "Session terminated" after a server restart)."""
_LIST_TAKES_PARAMS = "params" in inspect.signature(ClientSession.list_tools).parameters
_CLOSE_GRACE = 5.0
"""Seconds a session gets to shut down (a stdio server: stdin closed, then SIGTERM,
then SIGKILL, which the SDK does within ~4 s) before its task is cancelled."""


def _version() -> str:
    try:
        from tollway import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "0"


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A server connection that was lost (the client reconnects on the next call)."""

    server: str
    at: datetime
    reason: str


class _WatchedStream(anyio.abc.ObjectReceiveStream[Any]):
    """The transport's read stream, calling ``on_end`` once when it ends: the one signal
    every transport gives when the other side is gone (a stdio EOF, an HTTP transport
    torn down)."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Connection:
    """One server's session, its background task, and its reconnect logic."""

    def __init__(self, server: MCPServer, errlog: IO[str] | None) -> None:
        self.server = server
        self.errlog = errlog
        self.session: ClientSession | None = None
        self.server_info: Any = None
        self.tools: list[Any] | None = None
        """The server's tools as listed (allow-filtered); None when stale."""
        self.last_tools: list[Any] = []
        """The last successful listing (used while the server cannot be reached)."""
        self.connects = 0
        self.on_disconnect: Callable[[Disconnect], None] | None = None
        self.on_tools_changed: Callable[[], None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._lock: asyncio.Lock | None = None
        self._closing = False
        self._established = False

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def alive(self) -> bool:
        return self.session is not None and not self._lost.is_set()

    # ------------------------------------------------------------------ lifecycle

    async def ensure(self) -> ClientSession:
        """The live session, connecting (or reconnecting after a loss) first."""
        if self.alive:
            assert self.session is not None
            return self.session
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.alive:
                assert self.session is not None
                return self.session
            if self._closing:
                raise MCPConnectionError(
                    f"MCP server {self.name!r}: the client is closed", server=self.name
                )
            if self.session is not None or self._runner is not None:
                await self._teardown()
            return await self._connect()

    async def _connect(self) -> ClientSession:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[ClientSession] = loop.create_future()
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._established = False
        self.tools = None
        runner = asyncio.create_task(self._run(ready), name=f"tollway-mcp-{self.name}")
        self._runner = runner
        timeout = self.server.connect_timeout
        try:
            session = await asyncio.wait_for(asyncio.shield(ready), timeout)
        except TimeoutError:
            await self._teardown()
            raise MCPConnectionError(
                f"MCP server {self.name!r} did not start and initialize within {timeout:g} s "
                "(raise connect_timeout, or check the command / URL)",
                server=self.name,
            ) from None
        except BaseException:
            await self._teardown()
            raise
        self.session = session
        self.connects += 1
        return session

    async def _run(self, ready: asyncio.Future[ClientSession]) -> None:
        """The session's whole life, in one task: open the transport and the session,
        signal ``ready``, wait for a stop (close, or the connection ending), close."""

        def ended() -> None:
            self._lose("the server closed the connection")

        try:
            async with AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(
                        _WatchedStream(streams[0], ended),  # type: ignore[arg-type]
                        streams[1],
                        client_info=types.Implementation(name="tollway", version=_version()),
                        message_handler=self._on_message,
                    )
                )
                init = await session.initialize()
                self.server_info = init.serverInfo
                if not ready.done():
                    self._established = True
                    ready.set_result(session)
                await self._stop.wait()
        except BaseException as exc:  # the task's top level: record, never propagate
            reason = _describe(exc)
            if not ready.done():
                ready.set_exception(MCPConnectionError(
                    f"MCP server {self.name!r} could not be started / reached: {reason}",
                    server=self.name,
                ))
            self._lose(reason)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        finally:
            if not ready.done():
                ready.set_exception(MCPConnectionError(
                    f"MCP server {self.name!r} closed while starting", server=self.name
                ))
            self._lose("the connection ended")

    def _lose(self, reason: str) -> None:
        """Mark the connection gone (once), stop its task, and report it unless the
        client closed it on purpose."""
        if self._lost.is_set():
            return
        self._lost_reason = reason
        self._lost.set()
        self._stop.set()
        if self._established and not self._closing:
            self._report(reason)

    def _report(self, reason: str) -> None:
        event = Disconnect(self.name, datetime.now(UTC), reason)
        log.warning("MCP server %r disconnected (%s); it will be "
                    "reconnected on the next call", self.name, reason)
        if self.on_disconnect is not None:
            self.on_disconnect(event)

    async def _on_message(self, message: Any) -> None:
        method = getattr(getattr(message, "root", None), "method", None)
        if method == "notifications/tools/list_changed":
            self.tools = None
            if self.on_tools_changed is not None:
                self.on_tools_changed()

    def _transport(self) -> Any:
        server = self.server
        if isinstance(server, StdioServer):
            from mcp.client.stdio import StdioServerParameters, stdio_client

            env = dict(server.env) if server.env is not None else None
            if server.inherit_env:
                env = {**os.environ, **(env or {})}
            params = StdioServerParameters(
                command=server.command,
                args=list(server.args),
                env=env,
                cwd=os.fspath(server.cwd) if server.cwd is not None else None,
            )
            return stdio_client(params, errlog=_stderr_target(self.errlog))
        if isinstance(server, SSEServer):
            from mcp.client.sse import sse_client

            return sse_client(
                server.url,
                headers=server.request_headers(),
                timeout=server.connect_timeout,
                sse_read_timeout=server.sse_read_timeout,
                auth=server.auth,
            )
        if isinstance(server, HTTPServer):
            return _streamable_http(server)
        raise MCPError(f"unsupported MCP server config {type(server).__name__}", server=self.name)

    async def _teardown(self) -> None:
        runner, self._runner = self._runner, None
        self.session = None
        self._stop.set()
        if runner is None:
            return
        if not self._established:  # still starting (stuck in initialize): no clean exit
            runner.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(runner), _CLOSE_GRACE)
        except TimeoutError:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        except Exception:
            log.debug("session task of %r ended with an error", self.name,
                      exc_info=True)

    async def close(self) -> None:
        self._closing = True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._teardown()

    # ------------------------------------------------------------------ requests

    async def request(self, fn: Callable[[ClientSession], Awaitable[T]], timeout: float | None,
                      what: str) -> T:
        """Run ``fn(session)``, failing fast when the connection drops or ``timeout``
        passes (the SDK alone would wait forever for an answer from a dead peer)."""
        session = await self.ensure()
        lost = self._lost
        task = asyncio.ensure_future(fn(session))
        waiter = asyncio.ensure_future(lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if task in done:
            try:
                return task.result()
            except McpError as exc:
                if exc.error.code in _CLOSED_CODES:
                    self._lose(f"{exc.error.message} (code {exc.error.code})")
                    raise self._lost_error(what) from None
                raise
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if lost.is_set():
            raise self._lost_error(what)
        raise MCPTimeoutError(
            f"{what} on MCP server {self.name!r} timed out after {timeout:g} s", server=self.name
        )

    def _lost_error(self, what: str) -> MCPConnectionError:
        reason = self._lost_reason or "the connection ended"
        return MCPConnectionError(
            f"MCP server {self.name!r} disconnected during {what} ({reason}); the result is "
            "unknown. The server will be reconnected on the next call.",
            server=self.name,
        )

    async def list_tools(self) -> list[Any]:
        """Every tool the server lists (following pagination cursors), allow-filtered."""
        if self.tools is not None and self.alive:
            return self.tools

        async def fetch(session: ClientSession) -> list[Any]:
            found: list[Any] = []
            cursor: str | None = None
            seen: set[str] = set()
            while True:
                if cursor is None:
                    page = await session.list_tools()
                elif _LIST_TAKES_PARAMS:
                    page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
                else:  # pragma: no cover - mcp releases before the params form
                    page = await session.list_tools(cursor)
                found.extend(page.tools)
                cursor = page.nextCursor
                if not cursor or cursor in seen:
                    return found
                seen.add(cursor)

        listed = await self.request(fetch, self.server.connect_timeout, "tools/list")
        server = self.server
        self.tools = [t for t in listed if is_allowed(t.name, server.allow, server.deny)]
        self.last_tools = self.tools
        return self.tools

    async def call(self, tool: str, arguments: Mapping[str, Any] | None,
                   timeout: float | None, meta: dict[str, Any] | None = None) -> Any:
        """``meta``: the request's ``params._meta`` (trace context, when telemetry is on)."""
        async def run(session: ClientSession) -> Any:
            if meta:
                return await session.call_tool(tool, dict(arguments or {}), meta=meta)
            return await session.call_tool(tool, dict(arguments or {}))

        return await self.request(run, timeout, f"the call to {tool!r}")


def _stderr_target(errlog: IO[str] | None) -> Any:
    """Where a stdio server's stderr goes: ``errlog``, else this process's stderr, else
    (no file descriptor behind it: a notebook, a captured stream) nowhere."""
    target = errlog if errlog is not None else sys.stderr
    try:
        target.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL
    return target


def _streamable_http(server: HTTPServer) -> Any:
    """The streamable-HTTP transport with the server's headers, auth and timeouts."""
    import httpx

    read = None if server.call_timeout is None else max(server.call_timeout + 5.0, 300.0)
    timeout = httpx.Timeout(server.connect_timeout, read=read)
    try:
        from mcp.client.streamable_http import streamable_http_client
    except ImportError:  # pragma: no cover - mcp < 1.24 only has the deprecated form
        from mcp.client.streamable_http import streamablehttp_client

        return streamablehttp_client(
            server.url, headers=server.request_headers(), timeout=server.connect_timeout,
            sse_read_timeout=read or 300.0, auth=server.auth,
        )

    client = httpx.AsyncClient(
        headers=server.request_headers(), auth=server.auth, timeout=timeout,
        follow_redirects=True, verify=server.verify,
    )
    return _OwnedClient(client, streamable_http_client(server.url, http_client=client))


class _OwnedClient:
    """Enter the httpx client around the transport, so closing one closes both."""

    def __init__(self, client: Any, transport: Any) -> None:
        self._client = client
        self._transport = transport

    async def __aenter__(self) -> Any:
        await self._client.__aenter__()
        try:
            return await self._transport.__aenter__()
        except BaseException:
            await self._client.__aexit__(*sys.exc_info())
            raise

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return await self._transport.__aexit__(*exc)
        finally:
            await self._client.__aexit__(None, None, None)


def _describe(exc: BaseException) -> str:
    """A short, scrubbed reason from an exception (ExceptionGroups unwrapped)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    text = str(exc) or type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}", 300)


def _servers(value: Any) -> list[MCPServer]:
    if isinstance(value, MCPServer):
        return [value]
    if isinstance(value, Mapping):
        return [
            spec if isinstance(spec, MCPServer) else server_from_dict(str(name), spec)
            for name, spec in value.items()
        ]
    if isinstance(value, Iterable):
        out = list(value)
        if all(isinstance(s, MCPServer) for s in out):
            return out
    raise MCPError(
        "MCPClient takes MCPServer configs (StdioServer, HTTPServer, SSEServer), a list of "
        "them, or a mapping name -> settings"
    )


class MCPClient:
    """Many MCP servers behind one collision-safe tool catalog.

    ``async with MCPClient([StdioServer(name="time", command="mcp-server-time")]) as mcp:``
    connects every server (concurrently) and keeps one session per server open until the
    block ends; ``await mcp.tools()`` gives the canonical Tools to send to a model and
    ``await mcp.call_tool("time__get_current_time", {...})`` runs one.

    ``separator`` joins prefix and tool name (``time__get_current_time``); ``name_limit``
    caps exposed names (64 fits every provider). ``errlog``: where stdio servers' stderr
    goes (default: this process's stderr).

    Every tool call is a ledger row (kind "tool"). ``ledger``: where the rows go when the
    caller passes none (the tool loop passes the Model's): a Ledger, a target (a path,
    ``sqlite:///...``, ``postgresql://...``, ``memory``), or None for the ledger a
    ``Model`` built with ``config`` writes to (the config's ``ledger:``, else the default
    ledger; ``config`` None finds tollway.yaml the way Model does). ``ledger=False``
    records no tool calls at all, not even in a tool loop's ledger.
    """

    def __init__(
        self,
        servers: MCPServer | Iterable[MCPServer] | Mapping[str, Any],
        *,
        separator: str = DEFAULT_SEPARATOR,
        name_limit: int = NAME_LIMIT,
        ledger: Ledger | str | os.PathLike[str] | bool | None = None,
        config: Any = None,
        errlog: IO[str] | None = None,
    ) -> None:
        found = _servers(servers)
        names = [s.name for s in found]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise MCPError(f"MCP server names must be unique; repeated: {', '.join(dupes)}")
        self.servers: dict[str, MCPServer] = {s.name: s for s in found}
        self.separator = separator
        self.name_limit = name_limit
        self._ledger_spec = ledger
        self._config = config
        self._ledger: Ledger | None = None
        self._ledger_resolved = False
        self.disconnects: list[Disconnect] = []
        self._connections = {s.name: _Connection(s, errlog) for s in found}
        for conn in self._connections.values():
            conn.on_disconnect = self.disconnects.append
            conn.on_tools_changed = self._invalidate
        self._catalog: ToolCatalog | None = None
        self._stale = False
        self._loop: asyncio.AbstractEventLoop | None = None
        ToolCatalog.build({}, separator=separator, limit=name_limit)  # validates both early

    def __repr__(self) -> str:
        return f"MCPClient({list(self.servers)})"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the sessions live on (set by :meth:`connect`)."""
        return self._loop

    @property
    def ledger(self) -> Ledger | None:
        """Where this client's tool rows go (None: ``ledger=False``), resolved on first
        use as the class docstring says."""
        if not self._ledger_resolved:
            self._ledger = _resolve_ledger(self._ledger_spec, self._config)
            self._ledger_resolved = True
        return self._ledger

    @property
    def records_tool_calls(self) -> bool:
        """False when the client was built with ``ledger=False``."""
        return self._ledger_spec is not False

    def _check_ledger_config(self) -> None:
        """Read the config that names the default ledger now (at connect), so a mistake
        in it fails the connect instead of a tool call; the ledger opens on first use."""
        if self._ledger_spec is None or self._ledger_spec is True:
            from tollway.core.assembly import configured_ledger_target

            configured_ledger_target(self._config)

    def row_ledger(self, given: Ledger | None = None) -> Ledger | None:
        """Where a call's row goes: ``given``, else the client's; None when the client
        records nothing or its ledger cannot be opened (logged: the call happened)."""
        if not self.records_tool_calls:
            return None
        if given is not None:
            return given
        try:
            return self.ledger
        except Exception:
            log.exception("could not open the ledger for MCP tool rows")
            return None

    def connections(self) -> dict[str, int]:
        """Server name -> how many sessions were opened so far (1 + reconnects)."""
        return {name: conn.connects for name, conn in self._connections.items()}

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MCPClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def connect(self) -> MCPClient:
        """Connect every server concurrently; if any fails, close the others and raise
        :class:`MCPConnectionError` naming each failure."""
        self._bind_loop()
        conns = list(self._connections.values())
        for conn in conns:
            conn._closing = False
        results = await asyncio.gather(*(c.ensure() for c in conns), return_exceptions=True)
        failed = [(c, r) for c, r in zip(conns, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            await self.aclose()
            for _, err in failed:
                if not isinstance(err, Exception):
                    raise err
            detail = "; ".join(str(err) for _, err in failed)
            raise MCPConnectionError(detail, server=failed[0][0].name) from failed[0][1]
        try:
            await self.catalog()  # list once now, so sync code can use snapshot()
            self._check_ledger_config()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Close every session (stdio servers get EOF on stdin, then SIGTERM / SIGKILL)."""
        await asyncio.gather(*(c.close() for c in self._connections.values()),
                             return_exceptions=True)

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop and not self._loop.is_closed():
            raise MCPError(
                "this MCPClient's sessions live on another event loop; use it from that "
                "loop, or create one client per loop"
            )
        self._loop = loop

    def sync(self) -> SyncMCPClient:
        """This client driven from synchronous code (on its own event-loop thread)."""
        return SyncMCPClient(self)

    # ------------------------------------------------------------------ tools

    def _invalidate(self) -> None:
        self._stale = True

    async def catalog(self, *, refresh: bool = False) -> ToolCatalog:
        """Every allowed tool of every server, by exposed name (listed once per session;
        refreshed after a reconnect, a ``tools/list_changed`` notification, or
        ``refresh=True``)."""
        self._bind_loop()
        conns = list(self._connections.values())
        if refresh:
            for conn in conns:
                conn.tools = None
        stale = [c for c in conns if c.tools is None or not c.alive]
        if self._catalog is not None and not stale and not self._stale:
            return self._catalog
        self._stale = False
        results = await asyncio.gather(*(c.list_tools() for c in stale), return_exceptions=True)
        for conn, result in zip(stale, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                log.warning("could not list the tools of MCP server %r (%s); "
                            "using its last known tools", conn.name, _describe(result))
        listed = {
            c.name: (c.server.tool_prefix, c.tools if c.tools is not None else c.last_tools)
            for c in conns
        }
        self._catalog = ToolCatalog.build(listed, separator=self.separator, limit=self.name_limit)
        return self._catalog

    def snapshot(self) -> ToolCatalog:
        """The catalog as last listed (at connect, or by the last :meth:`catalog`), with
        no I/O: what synchronous code such as the framework bridges use."""
        if self._catalog is None:
            raise MCPError(
                "the MCP client has no tool list yet: connect it first (async with / with), "
                "or await client.catalog() after a server's tools changed"
            )
        return self._catalog

    async def list_tools(self, *, refresh: bool = False) -> list[MCPTool]:
        return list(await self.catalog(refresh=refresh))

    async def tools(self, *, refresh: bool = False) -> list[Tool]:
        """The canonical Tools to put in a request (exposed names, normalised schemas)."""
        return (await self.catalog(refresh=refresh)).canonical()

    async def resolve(self, name: str) -> MCPTool:
        """The tool behind an exposed name (the catalog is refreshed once if it is
        unknown, in case the server's list changed)."""
        catalog = await self.catalog()
        tool = catalog.get(name)
        if tool is None:
            catalog = await self.catalog(refresh=True)
            tool = catalog.get(name)
        if tool is None:
            known = ", ".join(sorted(catalog.tools)[:50]) or "none"
            raise MCPUnknownToolError(f"no MCP tool named {name!r}; available: {known}", tool=name)
        return tool

    # ------------------------------------------------------------------ calls

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        call_id: str | None = None,
        ledger: Ledger | None = None,
    ) -> ToolOutput:
        """Call a tool by its exposed name. Never raises for a failed call: the returned
        ToolOutput has ``is_error`` set and ``error`` says why (see the module docstring).

        ``timeout`` overrides the server's ``call_timeout``. A ledger row (kind "tool")
        goes to ``ledger`` or the client's (none with ``MCPClient(ledger=False)``), under
        the current trace id and attribution.
        """
        try:
            tool = await self.resolve(name)
        except MCPError as exc:
            return ToolOutput.failure(exc, tool=name)
        return await self.call_server_tool(
            tool.server, tool.name, arguments, timeout=timeout, call_id=call_id, ledger=ledger
        )

    async def call_server_tool(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        call_id: str | None = None,
        ledger: Ledger | None = None,
    ) -> ToolOutput:
        """Call ``tool`` (the server's own name) on ``server``; see :meth:`call_tool`.
        With telemetry on, the call is an ``execute_tool`` span whose context travels to
        the server in ``params._meta`` (the MCP conventions' propagation)."""
        telemetry = _telemetry.current
        if telemetry is None:
            return await self._call_server_tool(server, tool, arguments, timeout, call_id,
                                                ledger, None)
        span = telemetry.tool(tool, call_id=call_id, server=server, arguments=arguments)
        try:
            with span.active():
                output = await self._call_server_tool(server, tool, arguments, timeout, call_id,
                                                      ledger, span.carrier())
        except BaseException as exc:
            span.end(status=type_name(exc), error=exc, result=None)
            raise
        span.end(status=output.status, error=output.error, result=output.content,
                 cost_nanos=output.cost_nanos)
        return output

    async def _call_server_tool(
        self, server: str, tool: str, arguments: Mapping[str, Any] | None,
        timeout: float | None, call_id: str | None, ledger: Ledger | None,
        meta: dict[str, Any] | None,
    ) -> ToolOutput:
        self._bind_loop()
        conn = self._connections.get(server)
        if conn is None:
            unknown = MCPUnknownToolError(f"no MCP server named {server!r}", server=server,
                                          tool=tool)
            return ToolOutput.failure(unknown, server=server, tool=tool)
        config = conn.server
        if not is_allowed(tool, config.allow, config.deny):
            denied = MCPUnknownToolError(
                f"tool {tool!r} of MCP server {server!r} is not allowed by its allow / deny lists",
                server=server, tool=tool,
            )
            return ToolOutput.failure(denied, server=server, tool=tool)
        limit = config.call_timeout if timeout is None else timeout
        err: MCPError
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            result = await conn.call(tool, arguments, limit, meta)
            output = output_from_result(result, server=server, tool=tool)
        except MCPError as exc:
            exc.tool = tool
            output = ToolOutput.failure(exc, server=server, tool=tool)
        except McpError as exc:
            err = MCPProtocolError(
                f"MCP server {server!r} rejected the call to {tool!r}: {exc.error.message} "
                f"(JSON-RPC error {exc.error.code})",
                code=exc.error.code, server=server, tool=tool,
            )
            output = ToolOutput.failure(err, server=server, tool=tool)
        except RuntimeError as exc:  # the SDK's structured-content validation
            err = MCPProtocolError(
                f"MCP server {server!r} returned an invalid result for {tool!r}: {exc}",
                code=0, server=server, tool=tool,
            )
            output = ToolOutput.failure(err, server=server, tool=tool)
        output.latency_ms = (time.perf_counter() - t0) * 1000.0
        if output.status in ("ok", "tool_error"):  # priced when the tool really ran
            output.cost_nanos = config.call_price_nanos(tool)
        target = self.row_ledger(ledger)
        if target is not None:
            await arecord(target, tool_record(output, server, started_at, call_id))
        return output


def _resolve_ledger(spec: Any, config: Any) -> Ledger | None:
    """``MCPClient(ledger=...)`` -> the ledger (see :class:`MCPClient`)."""
    if spec is False:
        return None
    if spec is None or spec is True:
        from tollway.core.assembly import configured_ledger

        return configured_ledger(config)
    if isinstance(spec, str | os.PathLike):
        from tollway.core.stores.open import shared_ledger

        return shared_ledger(spec)
    return spec


# --------------------------------------------------------------------------- sync


def submit(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run ``coro`` on ``loop`` (another thread's) in a copy of the caller's context, so
    trace id and attribution follow the call."""
    context = contextvars.copy_context()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start() -> None:
        task = loop.create_task(coro, context=context)

        def done(t: asyncio.Task[T]) -> None:
            if t.cancelled():
                future.cancel()
            elif (exc := t.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(t.result())

        task.add_done_callback(done)

    loop.call_soon_threadsafe(start)
    return future


def run_sync(client: MCPClient, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the client's loop from synchronous code in another thread."""
    loop = client.loop
    if loop is None or loop.is_closed():
        coro.close()
        raise MCPError("the MCP client is not connected: enter it (async with / with) first")
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise MCPError(
            "a synchronous MCP call from the client's own event loop would block it forever; "
            "use the async API (e.g. ainvoke / call_tool), or a SyncMCPClient"
        )
    return submit(loop, coro).result()


class SyncMCPClient:
    """An :class:`MCPClient` for synchronous code: the sessions live on a private
    event-loop thread started by :meth:`connect` (or ``with``) and stopped by
    :meth:`close`. Calls block the calling thread only; several threads may call at once
    (their calls run concurrently on the loop)."""

    def __init__(self, servers: MCPClient | MCPServer | Iterable[MCPServer] | Mapping[str, Any],
                 **options: Any) -> None:
        self.client = servers if isinstance(servers, MCPClient) else MCPClient(servers, **options)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"SyncMCPClient({list(self.client.servers)})"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @property
    def disconnects(self) -> list[Disconnect]:
        return self.client.disconnects

    @property
    def ledger(self) -> Ledger | None:
        return self.client.ledger

    def connections(self) -> dict[str, int]:
        return self.client.connections()

    def __enter__(self) -> SyncMCPClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> SyncMCPClient:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="tollway-mcp", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        try:
            self._run(self.client.connect())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self.client.aclose())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise MCPError("the SyncMCPClient is not connected: call connect() or use `with`")
        return run_sync(self.client, coro) if self.client.loop is self._loop else (
            submit(self._loop, coro).result()
        )

    def catalog(self, *, refresh: bool = False) -> ToolCatalog:
        return self._run(self.client.catalog(refresh=refresh))

    def snapshot(self) -> ToolCatalog:
        return self.client.snapshot()

    def list_tools(self, *, refresh: bool = False) -> list[MCPTool]:
        return self._run(self.client.list_tools(refresh=refresh))

    def tools(self, *, refresh: bool = False) -> list[Tool]:
        return self._run(self.client.tools(refresh=refresh))

    def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None, call_id: str | None = None,
                  ledger: Ledger | None = None) -> ToolOutput:
        return self._run(self.client.call_tool(
            name, arguments, timeout=timeout, call_id=call_id, ledger=ledger
        ))

    def call_server_tool(self, server: str, tool: str, arguments: Mapping[str, Any] | None = None,
                         *, timeout: float | None = None) -> ToolOutput:
        return self._run(self.client.call_server_tool(server, tool, arguments, timeout=timeout))


def as_async_client(client: MCPClient | SyncMCPClient) -> MCPClient:
    """The async client behind either form."""
    return client.client if isinstance(client, SyncMCPClient) else client


