"""Where in a LangGraph run a model call happens: node name, graph run id, thread id.

LangGraph puts ``langgraph_node`` (and, with a checkpointer, ``thread_id``) into the
metadata of every runnable a node runs, and its Runtime carries the run id the caller
gave (``graph.invoke(..., config={"run_id": ...})``; LangGraph Server always gives one).
LangChain hands the metadata to ``_generate`` through the run manager, but its streaming
entry points call ``_stream`` without one, so the runnable config in the context variable
LangChain sets for every running node is read as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config

from tollway.core.cost.attribution import Attribution, attribute, current_attribution
from tollway.core.tracing import current_trace_id, trace

_RUNTIME_KEY = "__pregel_runtime"
"""Where LangGraph keeps the Runtime (with ``execution_info``) in ``configurable``."""


def graph_fields(run_manager: Any = None) -> dict[str, str]:
    """Attribution fields for the current call: framework (``langgraph`` inside a graph,
    ``langchain`` outside one), node, and ``run_id`` / ``thread_id`` when known."""
    config = var_child_runnable_config.get() or {}
    metadata: dict[str, Any] = dict(config.get("metadata") or {})
    if run_manager is not None:
        metadata.update(getattr(run_manager, "metadata", None) or {})
    configurable: Mapping[str, Any] = config.get("configurable") or {}
    info = getattr(configurable.get(_RUNTIME_KEY), "execution_info", None)
    node = metadata.get("langgraph_node")
    fields = {"framework": "langgraph" if node else "langchain"}
    if node:
        fields["node"] = str(node)
    run_id = metadata.get("run_id") or getattr(info, "run_id", None)
    if run_id:
        fields["run_id"] = str(run_id)
    thread_id = (metadata.get("thread_id") or configurable.get("thread_id")
                 or getattr(info, "thread_id", None))
    if thread_id:
        fields["thread_id"] = str(thread_id)
    return fields


def run_trace_id(run_id: str | None) -> str | None:
    """A graph run id (a UUID) as a tollway trace id (32 hex digits), so every ledger row
    of one run shares its trace id; None when there is no run id or it is not a UUID."""
    if not run_id:
        return None
    try:
        return uuid.UUID(str(run_id)).hex
    except ValueError:
        return None


@contextmanager
def call_scope(defaults: Attribution, run_manager: Any = None) -> Iterator[None]:
    """Attribution for one call of a LangChain object (chat model, embeddings, tool): its
    own defaults, overridden by any ``tollway.attribute(...)`` scope the caller opened,
    overridden by what the graph says about this call (framework, node, run id, thread
    id). Calls of one graph run share a trace id (the run id) unless the caller opened a
    ``tollway.trace()``."""
    graph = graph_fields(run_manager)
    fields = defaults.merge(current_attribution()).merge(graph)
    with attribute(fields), trace(current_trace_id() or run_trace_id(graph.get("run_id"))):
        yield
