"""Trace ids: one id ties together every ledger row of a logical operation (all attempts
of a call, every round and tool call of a tool loop)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from random import getrandbits
from uuid import UUID

_current: ContextVar[str | None] = ContextVar("tollway_trace_id", default=None)


def new_trace_id() -> str:
    """128 random bits as hex. Not a secret (it is written to the ledger), so the
    fast PRNG serves; ``secrets`` would cost a syscall per call."""
    return f"{getrandbits(128):032x}"


def trace_id_of(run_id: object) -> str | None:
    """A framework's run id (a UUID: LangGraph's, Pydantic AI's, a CrewAI event id) as a
    trace id, so every ledger row of that run shares it; None when there is none or it
    is not a UUID."""
    if not run_id:
        return None
    try:
        return UUID(str(run_id)).hex
    except ValueError:
        return None


def current_trace_id() -> str | None:
    return _current.get()


@contextmanager
def trace(trace_id: str | None = None) -> Iterator[str]:
    """Run the block under one trace id (a new one unless given); nested calls share it."""
    tid = trace_id or _current.get() or new_trace_id()
    token = _current.set(tid)
    try:
        yield tid
    finally:
        _current.reset(token)
