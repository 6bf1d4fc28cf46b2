"""The ledger row of one tool call (kind "tool"), for MCP and local tools alike.

Kept apart from the client so the loop can record local Python tools without the
``mcp`` SDK installed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from tollway.core.cost.records import CallRecord
from tollway.core.errors import scrub
from tollway.core.logs import logger
from tollway.core.tracing import current_trace_id, new_trace_id
from tollway.core.types import Usage
from tollway.mcp.tools import ToolOutput

if TYPE_CHECKING:
    from tollway.core.cost.ledger import Ledger

__all__ = ["arecord", "tool_record"]

log = logger("tollway.mcp")


def tool_record(output: ToolOutput, server: str | None, started_at: datetime,
                call_id: str | None) -> CallRecord:
    """The ledger row of one tool call: server (None for a local Python tool, recorded
    under provider "local"), tool, latency, status, the configured price, the current
    trace id and attribution. ``request_id`` is the model's tool-call id."""
    from tollway.core.cost.attribution import current_attribution

    record = CallRecord(
        time=started_at,
        kind="tool",
        trace_id=current_trace_id() or new_trace_id(),
        request_id=call_id,
        provider="mcp" if server is not None else "local",
        model=server or "",
        latency_ms=output.latency_ms,
        status=output.status,
        error=scrub(str(output.error or output.text), 300) if output.is_error else None,
        cost_nanos=output.cost_nanos,
        tool_server=server,
        tool_name=output.tool,
        usage=Usage(requests=0),  # no model request and no tokens: rows count the calls
    )
    current_attribution().fill(record)
    return record


async def arecord(ledger: Ledger, record: CallRecord) -> None:
    """Write a tool row; a failing ledger is logged, never raised (the call happened)."""
    try:
        await ledger.arecord(record)
    except Exception:  # a lost ledger row must not turn a tool result into an error
        log.exception("could not write the ledger row of a tool call")
