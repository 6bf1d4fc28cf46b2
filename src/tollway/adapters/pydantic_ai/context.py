"""Who a Pydantic AI call is for: the agent and run behind it.

Pydantic AI keeps the current run's context in a context variable around every model
request and tool call of a run, so a chat model, an embedding model or an image model
called from a tool all see the same agent name and run id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic_ai.tools import RunContext

from tollway.core.cost.attribution import Attribution, attribute, current_attribution
from tollway.core.tracing import current_trace_id, trace

__all__ = ["run_scope"]


@contextmanager
def run_scope(defaults: Attribution, run_context: RunContext[Any] | None = None) -> Iterator[None]:
    """Attribution for one call: the object's defaults, overridden by the caller's
    ``tollway.attribute(...)`` scope, overridden by the agent run (framework, agent
    name, run id, conversation id). Calls of one agent run share a trace id (the run
    id), unless the caller opened a ``tollway.trace()``."""
    ctx = run_context or _current_run_context()
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
    scope = defaults.merge(current_attribution()).merge(fields)
    with attribute(scope), trace(current_trace_id() or _trace_id(run_id)):
        yield


def _current_run_context() -> RunContext[Any] | None:
    """Pydantic AI's current run context (set around every model request of a run)."""
    try:
        from pydantic_ai._run_context import get_current_run_context
    except ImportError:  # pragma: no cover - older / newer layouts
        return None
    return get_current_run_context()


def _trace_id(run_id: str | None) -> str | None:
    if not run_id:
        return None
    try:
        return uuid.UUID(str(run_id)).hex
    except ValueError:
        return None
