"""The scope a framework run puts around each model call and each MCP tool call, so
both kinds of ledger row carry the same framework, agent / node and trace id.

Framework-free: each adapter says what its framework tells it about the run (the
fields) and which trace id the run has; this module layers them the one way every
adapter does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tollway.core.cost.attribution import Attribution, attribute, current_attribution
from tollway.core.tracing import current_trace_id, trace

__all__ = ["framework_run"]


@contextmanager
def framework_run(
    fields: Attribution | Mapping[str, Any],
    run_trace_id: str | None,
    defaults: Attribution | None = None,
) -> Iterator[None]:
    """Run the block with ``defaults`` (a model's own attribution) under the caller's
    ``tollway.attribute(...)`` scope under the framework's ``fields``, and under the
    caller's ``tollway.trace()`` if one is open, else ``run_trace_id`` (else a new trace
    id per call)."""
    scope = current_attribution() if defaults is None else defaults.merge(current_attribution())
    with attribute(scope.merge(fields)), trace(current_trace_id() or run_trace_id):
        yield
