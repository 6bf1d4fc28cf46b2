"""The ledger row: one per model call (and one per MCP tool call).

Built by the Model facade (and the MCP tool loop) and handed to a Ledger. Kept free of
secrets and prompts by construction: it has no field for either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tollway.core.types import Usage


@dataclass(slots=True)
class CallRecord:
    time: datetime
    """When the call started (timezone-aware UTC)."""
    kind: Literal["model", "tool", "embedding", "image", "retrieval"] = "model"
    """``model`` (a chat call), ``tool`` (an MCP tool call), ``embedding``, ``image`` or
    ``retrieval`` (a vector-store search: the query embedding's cost plus the backend's
    fee; ``model`` is the store's name, ``provider`` its backend)."""
    trace_id: str = ""
    request_id: str | None = None
    """The provider's response id (or the MCP request id)."""
    org: str | None = None
    project: str | None = None
    user: str | None = None
    key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    framework: str | None = None
    agent: str | None = None
    node: str | None = None
    attribution: dict[str, Any] = field(default_factory=dict)
    """Any other attribution keys (run ids, task names) beyond the named columns."""
    provider: str = ""
    model: str = ""
    deployment: str | None = None
    alias: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_nanos: int | None = None
    """nano-USD; None when the model has no known price."""
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: str = "ok"
    """'ok', or the error class name (RateLimitError, BudgetExceededError...)."""
    error: str | None = None
    """A short scrubbed error message when status is not ok."""
    stream: bool = False
    tool_server: str | None = None
    tool_name: str | None = None
