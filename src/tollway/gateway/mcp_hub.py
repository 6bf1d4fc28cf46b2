"""The gateway's MCP servers: shared clients, per-key tool permissions, credentials.

The servers are the top-level ``mcp:`` section of tollway.yaml. Every request that
uses them (a chat call to an alias listed in ``gateway.mcp_aliases``, or ``/mcp``)
sees only what its key's grants allow (:meth:`VirtualKey.mcp_allows`: deny by
default). One :class:`~tollway.mcp.client.MCPClient` per set of servers, connected
on first use, serves every request that uses that set; a server whose entry says
``forward_authorization: true`` is instead reached by a client opened for the
request, carrying the caller's own ``Authorization`` header (a shared session cannot
carry a per-caller credential, and no other server ever sees it).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tollway.core.logs import logger

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.gateway.config import GatewaySpec
    from tollway.gateway.keys import VirtualKey
    from tollway.mcp.client import MCPClient
    from tollway.mcp.config import MCPServer
    from tollway.mcp.tools import MCPTool

__all__ = ["GatewayMCP", "forwards_authorization"]

log = logger("tollway.gateway.mcp")


def forwards_authorization(server: MCPServer) -> bool:
    return bool(getattr(server, "forward_authorization", False))


class GatewayMCP:
    """The configured MCP servers and the permission check every MCP use goes through."""

    def __init__(self, settings: TollwaySettings, spec: GatewaySpec) -> None:
        from tollway.core.errors import ConfigError

        self.settings = settings
        self.spec = spec
        self.servers: dict[str, MCPServer] = {}
        if getattr(settings, "mcp", None):
            from tollway.mcp.config import servers_from_config

            self.servers = {s.name: s for s in servers_from_config(settings)}
        for alias, names in spec.mcp_aliases.items():
            unknown = [n for n in names if n not in self.servers]
            if unknown:
                raise ConfigError(
                    f"gateway.mcp_aliases.{alias} names MCP server(s) {', '.join(unknown)} "
                    "that the mcp: section does not define; defined: "
                    f"{', '.join(self.servers) or 'none'}",
                    key=f"gateway.mcp_aliases.{alias}",
                )
        self._shared: dict[frozenset[str], MCPClient] = {}
        self._lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ permissions

    def permitted(self, key: VirtualKey | None, names: Sequence[str]) -> Callable[[MCPTool], bool]:
        """The filter of a request's tools: on one of ``names``, and granted to the key
        (a gateway with ``auth: none`` has no keys: every configured tool is allowed)."""
        wanted = set(names)

        def allow(tool: MCPTool) -> bool:
            if tool.server not in wanted:
                return False
            return key is None or key.mcp_allows(tool.server, tool.name)

        return allow

    def granted_servers(self, key: VirtualKey | None, names: Sequence[str]) -> list[str]:
        """Which of ``names`` the key may use at least one tool of; logs why when none."""
        granted = [n for n in names if key is None or key.mcp_allows(n)]
        if not granted and names:
            who = key.id if key is not None else "the caller"
            log.warning("key %s has no MCP grant for server(s) %s, so it gets no MCP tools "
                        "(grant some with `tollway keys create --mcp %s` or the admin API's "
                        "'mcp' field)", who, ", ".join(names), ",".join(names))
        return granted

    # ------------------------------------------------------------------ clients

    async def shared(self, names: Sequence[str]) -> MCPClient:
        """The connected client of exactly these servers (none forwarding a caller
        credential), opened on first use and kept. One client per set of servers, not
        one for all: a server that is down fails only the requests that need it."""
        wanted = frozenset(names)
        client = self._shared.get(wanted)
        if client is not None:
            return client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            client = self._shared.get(wanted)
            if client is None:
                from tollway.mcp.client import MCPClient

                client = MCPClient([self.servers[n] for n in self.servers if n in wanted],
                                   config=self.settings)
                # connected in a fresh context: the sessions' reader tasks outlive this
                # request and must not carry its trace or attribution
                await asyncio.get_running_loop().create_task(
                    client.connect(), context=contextvars.Context())
                self._shared[wanted] = client
        return client

    @asynccontextmanager
    async def client(self, names: Sequence[str], headers: dict[str, str]) -> AsyncIterator[MCPClient]:
        """A connected client for ``names``: the shared one, unless one of them forwards
        the caller's Authorization header (then a client for this request alone, with
        that header on the forwarding servers and nothing added to the others)."""
        chosen = [self.servers[n] for n in names if n in self.servers]
        if not any(forwards_authorization(s) for s in chosen):
            yield await self.shared([s.name for s in chosen])
            return
        from tollway.mcp.client import MCPClient
        from tollway.mcp.config import _HTTPBase

        presented = headers.get("authorization")
        servers: list[MCPServer] = []
        for server in chosen:
            if isinstance(server, _HTTPBase) and server.forward_authorization:
                extra = {k: v for k, v in server.headers.items() if k.lower() != "authorization"}
                if presented:
                    extra["Authorization"] = presented
                server = dataclasses.replace(server, headers=extra, bearer_token=None)
            servers.append(server)
        client = MCPClient(servers, config=self.settings)
        await client.connect()
        try:
            yield client
        finally:
            await client.aclose()

    async def close(self) -> None:
        clients, self._shared = list(self._shared.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
