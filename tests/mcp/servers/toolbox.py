"""A FastMCP server for the MCP tests: run with ``python toolbox.py [--transport stdio|http|sse]
[--port N] [--name NAME] [--page-size N]``.

Its tools cover what the client must handle: plain results, a per-session counter (proves
the client keeps ONE session open), a tool that hangs, one that raises (``isError``), one
that kills its own process (a server dying mid-call), a ``$ref`` schema, an image,
structured content, a tool that adds a tool at run time (``tools/list_changed``), and
a tool that echoes the request's Authorization header (HTTP auth).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from collections import defaultdict

from fastmcp import Context, FastMCP
from fastmcp.server.dependencies import get_http_headers
from fastmcp.utilities.types import Image
from mcp import types
from pydantic import BaseModel, Field

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    name: str = Field(description="full name")
    home: Address
    work: Address | None = None


def build(name: str, page_size: int | None) -> FastMCP:
    server = FastMCP(name, dereference_schemas=False, list_page_size=page_size)
    counts: defaultdict[str, int] = defaultdict(int)

    @server.tool
    def echo(text: str) -> str:
        """Echo the text back, tagged with the server name."""
        return f"[{name}] {text}"

    @server.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool
    def count(ctx: Context) -> int:
        """Increment and return this session's counter (state lives in the session)."""
        counts[ctx.session_id] += 1
        return counts[ctx.session_id]

    @server.tool
    def pid() -> int:
        """The server process id."""
        return os.getpid()

    @server.tool
    async def hang(seconds: float = 30.0) -> str:
        """Sleep, then answer (for timeout tests)."""
        await asyncio.sleep(seconds)
        return "woke up"

    @server.tool
    def fail(message: str = "boom") -> str:
        """Raise an error (the server turns it into an isError result)."""
        raise ValueError(message)

    @server.tool
    def crash() -> str:
        """Kill the server process in the middle of the call."""
        os._exit(3)

    @server.tool
    def describe(person: Person) -> str:
        """Describe a person (its schema uses $defs / $ref and anyOf-null)."""
        work = person.work.city if person.work else "nowhere"
        return f"{person.name} lives in {person.home.city} and works in {work}"

    @server.tool
    def picture() -> Image:
        """A tiny PNG image."""
        return Image(data=PNG, format="png")

    @server.tool
    def stats(values: list[float]) -> dict[str, float]:
        """Structured content: the min, max and mean of the values."""
        return {"min": min(values), "max": max(values), "mean": sum(values) / len(values)}

    @server.tool
    async def grow(ctx: Context) -> str:
        """Add a tool named ``extra`` and tell the client its tool list changed."""

        def extra() -> str:
            """A tool added at run time."""
            return "extra!"

        server.add_tool(extra)
        await ctx.send_notification(types.ToolListChangedNotification())
        return "grown"

    @server.tool
    def whoami() -> str:
        """The Authorization header the request carried (HTTP transports)."""
        return get_http_headers(include={"authorization"}).get("authorization", "anonymous")

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", default="stdio", choices=["stdio", "http", "sse"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="toolbox")
    parser.add_argument("--page-size", type=int, default=None)
    args = parser.parse_args()
    server = build(args.name, args.page_size)
    if args.transport == "stdio":
        server.run("stdio", show_banner=False)
    else:
        server.run(args.transport, show_banner=False, host="127.0.0.1", port=args.port,
                   log_level="warning")


if __name__ == "__main__":
    main()
