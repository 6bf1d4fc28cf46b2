"""Who a CrewAI model call is for: the crew, agent role and task behind it.

The executor passes ``from_agent`` / ``from_task`` with every call it makes, but CrewAI
also calls LLMs without them: the converter behind ``output_pydantic`` /
``output_json`` (on the agent's ``function_calling_llm`` or ``llm``), guardrails,
summaries. Those run inside ``Task.execute_*``, where CrewAI keeps the task's id in a
context variable; so each task seen with a call is remembered here (id -> names, a
bounded map) and a call without ``from_task`` is attributed to the current task and
its agent.
"""

from __future__ import annotations

import threading
from typing import Any

from crewai.context import get_current_task_id

from tollway.core.cost.attribution import Attribution

_MAX_TASKS = 1024
_tasks: dict[str, tuple[str | None, str | None, str | None]] = {}
"""task id -> (task name, agent role, crew name), oldest first."""
_lock = threading.Lock()


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
        task_name, role, crew = _tasks.get(get_current_task_id() or "", (None, None, None))
        if agent is not None:
            _, role, agent_crew = _names(None, agent)
            crew = agent_crew or crew
    return Attribution.of(framework="crewai", agent=role, task=task_name, crew=crew)
