"""Which smolagents agent is calling the model.

smolagents gives a model no handle on the agent that uses it (one model object may
serve a manager and its managed agents), but every model call is made from a method
of that agent (``_step_stream``, the planning step, ``provide_final_answer``), so the
nearest ``MultiStepAgent`` among the caller's frames is the agent the call is for.
A few frames are read per call; an explicit ``TollwayModel(agent=...)`` skips this.
Tools are called from the agent's ``execute_tool_call`` (in a worker thread when it runs
several at once), so a tool finds its agent the same way.

The run: ``agent.run(task)`` appends one ``TaskStep`` to the agent's memory per task,
so the latest one identifies the run in progress; each gets a trace id (kept while the
step lives) that the run's model calls and MCP tool calls share.
"""

from __future__ import annotations

import sys
import threading
import weakref
from contextlib import AbstractContextManager
from types import FrameType

from smolagents.agents import MultiStepAgent
from smolagents.memory import TaskStep

from tollway.adapters._run import framework_run
from tollway.core.cost.attribution import Attribution
from tollway.core.tracing import new_trace_id

_MAX_FRAMES = 8
_runs: dict[int, str] = {}
"""id(TaskStep) -> the trace id of that run, dropped when the step is collected (steps
compare by value, so they cannot be keys themselves)."""
_runs_lock = threading.Lock()


def calling_agent(skip: int = 2) -> MultiStepAgent | None:
    """The nearest MultiStepAgent ``self`` up the stack, skipping ``skip`` frames."""
    frame: FrameType | None
    try:
        frame = sys._getframe(skip)
    except ValueError:
        return None
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, MultiStepAgent):
            return candidate
        frame = frame.f_back
    return None


def agent_name(agent: MultiStepAgent | None) -> str | None:
    """An agent's ``name`` (managed agents must have one), else its class name."""
    if agent is None:
        return None
    return agent.name or type(agent).__name__


def run_trace_id(agent: MultiStepAgent | None) -> str | None:
    """The trace id of ``agent``'s run in progress (None outside a run)."""
    memory = getattr(agent, "memory", None)
    steps = getattr(memory, "steps", None) or ()
    task = next((step for step in reversed(steps) if isinstance(step, TaskStep)), None)
    if task is None:
        return None
    key = id(task)
    with _runs_lock:
        trace_id = _runs.get(key)
        if trace_id is None:
            trace_id = _runs[key] = new_trace_id()
            weakref.finalize(task, _runs.pop, key, None)
    return trace_id


def run_scope(
    agent: MultiStepAgent | None, name: str | None = None, defaults: Attribution | None = None
) -> AbstractContextManager[None]:
    """Attribution and trace id for whatever runs inside: ``defaults`` (a model's own)
    under the caller's ``tollway.attribute(...)`` scope, under ``framework="smolagents"``
    and the agent's name (``name``, else :func:`agent_name`); the run's trace id unless
    the caller opened a ``tollway.trace()``."""
    here = Attribution.of(framework="smolagents", agent=name or agent_name(agent))
    return framework_run(here, run_trace_id(agent), defaults)


def tool_scope() -> AbstractContextManager[None]:
    """:func:`run_scope` for a tool call: the agent is found up the caller's stack."""
    return run_scope(calling_agent(skip=2))
