"""A small FastMCP server for the MCP example: notes kept for the life of the session.

Run it yourself with ``python examples/mcp_servers/notes.py`` (stdio), or
``python examples/mcp_servers/notes.py --http 8765`` (streamable HTTP on 127.0.0.1:8765/mcp).
The notes live in the server process per MCP session, so they only survive between calls
when the client keeps its session open, which tollway's MCPClient does.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from fastmcp import Context, FastMCP

server = FastMCP("notes")
_notes: defaultdict[str, dict[str, str]] = defaultdict(dict)


@server.tool
def add_note(title: str, text: str, ctx: Context) -> str:
    """Save a note under a title (replacing any note with that title)."""
    _notes[ctx.session_id][title] = text
    return f"saved note {title!r} ({len(_notes[ctx.session_id])} notes in this session)"


@server.tool
def list_notes(ctx: Context) -> dict[str, str]:
    """Every note saved in this session, title -> text."""
    return dict(_notes[ctx.session_id])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP")
    args = parser.parse_args()
    if args.http:
        server.run("http", host="127.0.0.1", port=args.http, show_banner=False)
    else:
        server.run("stdio", show_banner=False)
