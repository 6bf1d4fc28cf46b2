"""The trace scope of one tool loop: tollway's trace id for every round and tool call,
and, with telemetry on, the loop's ``invoke_agent`` span as their parent.

Both forms have one interface, so the loop drivers are written once:
``with loop_scope(trace_id) as scope:`` (``scope.trace_id``; ``return scope.done(result)``),
or, in an async generator (which must not keep a context attached across its
``yield``\\ s), ``scope.start()``, ``with scope.active():`` around what starts calls, and
``scope.finish(exc)``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol, TypeVar

from tollway.core.cost.attribution import current_attribution
from tollway.core.telemetry import switch
from tollway.core.tracing import trace

__all__ = ["LoopScope", "loop_scope"]

R = TypeVar("R")


class LoopScope(Protocol):
    trace_id: str

    def start(self) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None: ...

    def active(self) -> AbstractContextManager[Any]: ...

    def done(self, result: R) -> R: ...

    def finish(self, exc: BaseException | None = None) -> None: ...


class _TraceOnly:
    """Telemetry off: only tollway's trace id (given, inherited or new)."""

    def __init__(self, trace_id: str | None) -> None:
        self._scope = trace(trace_id)
        self._open = False
        self.trace_id = ""

    def start(self) -> _TraceOnly:
        self.trace_id = self._scope.__enter__()
        self._open = True
        return self

    def __enter__(self) -> _TraceOnly:
        return self.start()

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(exc)

    def active(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def done(self, result: R) -> R:
        return result

    def finish(self, exc: BaseException | None = None) -> None:
        if self._open:
            self._open = False
            self._scope.__exit__(None, None, None)


def loop_scope(trace_id: str | None) -> LoopScope:
    """The scope for a loop starting now (call inside the model's attribution scope:
    its ``agent`` names the span)."""
    telemetry = switch.current
    if telemetry is None:
        return _TraceOnly(trace_id)
    return telemetry.loop(trace_id, current_attribution().agent)
