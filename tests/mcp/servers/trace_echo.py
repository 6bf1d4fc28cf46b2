"""A FastMCP stdio server whose tool answers with the W3C trace context the client sent
in the request's ``params._meta`` (the MCP conventions' propagation), or ``none``."""

from __future__ import annotations

from fastmcp import Context, FastMCP

server = FastMCP("trace-echo")


@server.tool
def traceparent(ctx: Context) -> str:
    """The traceparent of this call's params._meta."""
    request = ctx.request_context
    meta = request.meta if request is not None else None
    if meta is None:
        return "none"
    extra = meta.model_extra or {}
    return str(extra.get("traceparent") or getattr(meta, "traceparent", None) or "none")


if __name__ == "__main__":
    server.run("stdio", show_banner=False)
