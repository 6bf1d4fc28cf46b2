"""Which smolagents agent is calling the model.

smolagents gives a model no handle on the agent that uses it (one model object may
serve a manager and its managed agents), but every model call is made from a method
of that agent (``_step_stream``, the planning step, ``provide_final_answer``), so the
nearest ``MultiStepAgent`` among the caller's frames is the agent the call is for.
A few frames are read per call; an explicit ``TollwayModel(agent=...)`` skips this.
"""

from __future__ import annotations

import sys
from types import FrameType

from smolagents.agents import MultiStepAgent

_MAX_FRAMES = 8


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
