"""Who a CrewAI model or tool call is for: the crew, agent role and task behind it, and
the trace id of the run it belongs to.

The executor passes ``from_agent`` / ``from_task`` with every call it makes, but CrewAI
also calls LLMs without them: the converter behind ``output_pydantic`` /
``output_json`` (on the agent's ``function_calling_llm`` or ``llm``), guardrails,
summaries. Those run inside ``Task.execute_*``, where CrewAI keeps the task's id in a
context variable; so each task seen with a call is remembered here (id -> names, a
bounded map) and a call without ``from_task`` is attributed to the current task and
its agent. MCP tools run inside the same task, so their rows get the same names.

The run: CrewAI keeps a stack of open event scopes in a context variable (crew kickoff,
task, agent execution, LLM call, tool usage...); the outermost one (the crew's kickoff,
a flow, a standalone agent's kickoff) has one event id per run, which becomes the trace
id of every model and tool row of that run.

When CrewAI has not yet made a call for the current task (the knowledge
query rewrite and the knowledge / memory embeddings come first), the nearest agent (or
crew) among the caller's frames is the one the call is for: CrewAI runs those steps
from methods of the agent (``execute_task``, ``set_knowledge``) or the crew.
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any

from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.context import get_current_task_id
from crewai.crew import Crew
from crewai.task import Task

from tollway.adapters._run import framework_run
from tollway.core.cost.attribution import Attribution
from tollway.core.tracing import trace_id_of

try:  # the scope stack has no public reader; without it each call has its own trace
    from crewai.events.event_context import _event_id_stack
except ImportError:  # pragma: no cover - other CrewAI layouts
    _event_id_stack = None  # type: ignore[assignment]

_MAX_TASKS = 1024
_tasks: dict[str, tuple[str | None, str | None, str | None]] = {}
"""task id -> (task name, agent role, crew name), oldest first."""
_lock = threading.Lock()
_MAX_FRAMES = 64
"""How far up the stack an agent is looked for (a knowledge query runs ~30 frames deep
under ``Agent.execute_task``, inside chromadb)."""


def _names(task: Any, agent: Any) -> tuple[str | None, str | None, str | None]:
    agent = agent if agent is not None else getattr(task, "agent", None)
    crew = getattr(agent, "crew", None) or getattr(task, "crew", None)
    return (
        (getattr(task, "name", None) or getattr(task, "description", None)) if task else None,
        getattr(agent, "role", None),
        getattr(crew, "name", None),
    )


def crewai_scope(task: Any, agent: Any) -> Attribution:
    """``framework="crewai"`` plus the agent role, task name and crew name known for
    this call (from its arguments, else from the task CrewAI is executing)."""
    if task is not None:
        task_name, role, crew = names = _names(task, agent)
        with _lock:
            _tasks[str(task.id)] = names
            if len(_tasks) > _MAX_TASKS:
                del _tasks[next(iter(_tasks))]
    else:
        known = _tasks.get(get_current_task_id() or "")
        if known is None and agent is None:
            return _from_the_stack()
        task_name, role, crew = known or (None, None, None)
        if agent is not None:
            _, role, agent_crew = _names(None, agent)
            crew = agent_crew or crew
    return Attribution.of(framework="crewai", agent=role, task=task_name, crew=crew)


def run_trace_id() -> str | None:
    """The trace id of the CrewAI run this code runs in, as 32 hex digits: the event id
    of the innermost open crew kickoff, else of CrewAI's outermost open scope (a flow, a
    standalone agent); None outside any run. Innermost, because CrewAI leaves the scope
    of a kickoff that raised on the stack: the outermost kickoff can be a dead run's."""
    if _event_id_stack is None:
        return None
    stack = _event_id_stack.get()
    if not stack:
        return None
    for event_id, kind in reversed(stack):
        if kind == "crew_kickoff_started":
            return trace_id_of(event_id)
    return trace_id_of(stack[0][0])


def run_scope(
    task: Any = None, agent: Any = None, defaults: Attribution | None = None
) -> AbstractContextManager[None]:
    """Attribution and trace id for whatever runs inside: ``defaults`` (an LLM's own)
    under the caller's ``tollway.attribute(...)`` scope, under the crew, agent and task
    (:func:`crewai_scope`); the run's trace id unless the caller opened a
    ``tollway.trace()``."""
    return framework_run(crewai_scope(task, agent), run_trace_id(), defaults)


def _from_the_stack() -> Attribution:
    """The nearest CrewAI agent (with the task it is executing, when its frame holds
    one) or crew among the caller's frames; only ``framework`` when there is none."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, BaseAgent):
            task = frame.f_locals.get("task")
            return crewai_scope(task if isinstance(task, Task) else None, owner)
        if isinstance(owner, Crew):
            return Attribution.of(framework="crewai", crew=owner.name)
        frame = frame.f_back
    return Attribution.of(framework="crewai")
