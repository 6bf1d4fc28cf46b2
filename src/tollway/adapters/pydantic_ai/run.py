"""Which Pydantic AI run a request or a tool call belongs to: the agent's name, the run
id and conversation id, and the trace id every ledger row of that run shares.

Pydantic AI hands a ``RunContext`` to toolsets with every tool call, and keeps the
current one in a context variable around every model request; both paths read it here,
so a run's model rows and MCP tool rows carry the same agent and trace id.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from pydantic_ai.tools import RunContext

from tollway.adapters._run import framework_run
from tollway.core.cost.attribution import Attribution
from tollway.core.tracing import trace_id_of

__all__ = ["current_run_context", "run_scope"]


def run_scope(
    run_context: RunContext[Any] | None = None, defaults: Attribution | None = None
) -> AbstractContextManager[None]:
    """Attribution and trace id for whatever runs inside: ``defaults`` (a model's own)
    under the caller's ``tollway.attribute(...)`` scope, under the agent run
    (``framework="pydantic_ai"``, agent name, run id, conversation id). Everything of one
    agent run shares a trace id (the run id) unless the caller opened a
    ``tollway.trace()``."""
    ctx = run_context or current_run_context()
    fields: dict[str, Any] = {"framework": "pydantic_ai"}
    run_id: str | None = None
    if ctx is not None:
        agent = getattr(ctx, "agent", None)
        if agent is not None and getattr(agent, "name", None):
            fields["agent"] = agent.name
        run_id = getattr(ctx, "run_id", None)
        if run_id:
            fields["run_id"] = run_id
        conversation = getattr(ctx, "conversation_id", None)
        if conversation:
            fields["conversation_id"] = conversation
    return framework_run(fields, trace_id_of(run_id), defaults)


def current_run_context() -> RunContext[Any] | None:
    """Pydantic AI's current run context (set around every model request of a run)."""
    try:
        from pydantic_ai._run_context import get_current_run_context
    except ImportError:  # pragma: no cover - older / newer layouts
        return None
    return get_current_run_context()

