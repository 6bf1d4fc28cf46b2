"""Stop sequences for models that refuse the ``stop`` parameter.

smolagents sends stop sequences on every step (``Observation:``, ``</code>``...) and
decides per model whether to send them with a regex over the model NAME
(``smolagents.models.supports_stop_parameter``). tollway decides from what the model
itself says instead: the first time a provider rejects ``stop`` for a (provider,
model), that pair is recorded here for the life of the process, the call is re-sent
without it, a warning says so once, and from then on the text is cut at the stop
sequences locally (the same result the provider would have given). A
``TollwayModel(supports_stop=False)`` skips the first, refused, attempt.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from tollway.core.errors import AllDeploymentsFailedError, BadRequestError

_STOP_PARAM = re.compile(r"""['"`]stop(?:_sequences|Sequences)?['"`]""")
_refused: set[tuple[str, str]] = set()
_lock = threading.Lock()


def _root(exc: BaseException) -> BaseException:
    if isinstance(exc, AllDeploymentsFailedError) and exc.last_error is not None:
        return exc.last_error
    return exc


def rejects_stop(exc: BaseException) -> bool:
    """True when ``exc`` is the provider refusing the ``stop`` parameter (OpenAI's
    reasoning models answer 400 ``Unsupported parameter: 'stop'``)."""
    root: Any = _root(exc)
    if not isinstance(root, BadRequestError):
        return False
    text = f"{root.message} {root.body or ''}".lower()
    return bool(_STOP_PARAM.search(text)) and ("unsupported" in text or "not supported" in text)


def remember_refusal(exc: BaseException) -> tuple[str, str]:
    """Record that the (provider, model) named by ``exc`` refuses ``stop``."""
    root: Any = _root(exc)
    key = (str(root.provider or ""), str(root.model or ""))
    with _lock:
        _refused.add(key)
    return key


def refuses_stop(provider: str, model: str) -> bool:
    return (provider, model) in _refused


class StopCutter:
    """Cuts streamed text at the first stop sequence, the way a provider would.

    Holds back the last ``len(longest stop) - 1`` characters until more text arrives,
    so a stop sequence split across two chunks is still caught; nothing after the cut
    is emitted.
    """

    __slots__ = ("_buffer", "_done", "_hold", "_stops")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._buffer = ""
        self._done = False

    def feed(self, text: str) -> str:
        if self._done:
            return ""
        self._buffer += text
        cut = min(
            (i for i in (self._buffer.find(s) for s in self._stops) if i >= 0), default=-1
        )
        if cut >= 0:
            out, self._buffer, self._done = self._buffer[:cut], "", True
            return out
        keep = len(self._buffer) - self._hold
        if keep <= 0:
            return ""
        out, self._buffer = self._buffer[:keep], self._buffer[keep:]
        return out

    def flush(self) -> str:
        out, self._buffer = ("" if self._done else self._buffer), ""
        return out


def cut_at_stops(text: str, stops: Sequence[str] | None) -> str:
    """``text`` up to the earliest stop sequence."""
    if not stops:
        return text
    cutter = StopCutter(stops)
    return cutter.feed(text) + cutter.flush()
