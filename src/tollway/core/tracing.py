"""Trace ids: one id ties together every ledger row of a logical operation (all attempts
of a call, every round and tool call of a tool loop)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[str | None] = ContextVar("tollway_trace_id", default=None)


def new_trace_id() -> str:
    return secrets.token_hex(16)


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
