"""Where in a LangGraph run a model call happens: node name, graph run id, thread id.

LangGraph puts ``langgraph_node`` (and, with a checkpointer, ``thread_id``) into the
metadata of every runnable a node runs, and its Runtime carries the run id the caller
gave (``graph.invoke(..., config={"run_id": ...})``; LangGraph Server always gives one).
LangChain hands the metadata to ``_generate`` through the run manager, but its streaming
entry points call ``_stream`` without one, so the runnable config in the context variable
LangChain sets for every running node is read as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config

from tollway.adapters._run import framework_run
from tollway.core.cost.attribution import Attribution
from tollway.core.tracing import trace_id_of

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


def run_scope(defaults: Attribution | None = None, run_manager: Any = None) -> AbstractContextManager[None]:
    """Attribution and trace id for whatever runs inside: ``defaults`` (a model's own),
    overridden by any ``tollway.attribute(...)`` scope the caller opened, overridden by
    what the graph says about this step (framework, node, run id, thread id). Model calls
    and tool calls of one graph run share a trace id (the run id) unless the caller
    opened a ``tollway.trace()``; without either, each call has its own."""
    graph = graph_fields(run_manager)
    return framework_run(graph, trace_id_of(graph.get("run_id")), defaults)
