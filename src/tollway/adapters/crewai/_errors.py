"""tollway errors -> the error types CrewAI acts on.

- A budget or allowed-hours denial is a deliberate stop, not a transient failure.
  CrewAI treats ``HookAborted`` that way (no ``max_retry_limit`` re-runs of the task,
  no converter retries, a "denied" event instead of a "failed" one), so the denial is
  re-raised as an error that is BOTH the tollway error (callers still catch
  ``tollway.BudgetExceededError``) and a ``HookAborted``.
- A failure tollway's router already gave up on (``AllDeploymentsFailedError``: every
  deployment, retry round and fallback was tried) and a provider error no retry can
  fix (401, 403, 404, 400) are final too. CrewAI reruns a failed task up to
  ``max_retry_limit`` times unless the error is a ``HookAborted`` (or comes from
  litellm), so without this one persistent 429 behind an alias reached the provider
  once per router attempt per rerun. They are re-raised the same way (the tollway error
  and a ``HookAborted``), with CrewAI's "failed" event, not its "denied" one. A
  retryable error of a single attempt (a bare ``provider/model`` target, which tollway
  does not retry) is left to ``max_retry_limit``.
- A context-window error becomes CrewAI's ``LLMContextLengthExceededError``, the type
  its executor catches to summarise the history when ``respect_context_window`` is on.
"""

from __future__ import annotations

import re
from typing import Any

from crewai.hooks.dispatch import HookAborted
from crewai.utilities.exceptions.context_window_exceeding_exception import (
    LLMContextLengthExceededError,
)

from tollway.core.errors import (
    AllDeploymentsFailedError,
    BadRequestError,
    BudgetExceededError,
    ContextWindowExceededError,
    OutsideAllowedHoursError,
    ProviderError,
)

_STOP_PARAM = re.compile(r"""['"`]stop(?:_sequences)?['"`]""")
"""The parameter named in quotes, as OpenAI-style errors do (``'stop'``, ``"param": "stop"``)."""

DENIALS: tuple[type[Exception], ...] = (BudgetExceededError, OutsideAllowedHoursError)


_denial_classes: dict[type[Exception], type[Exception]] = {}


def _denial_class(base: type[Exception]) -> type[Exception]:
    """``base`` + HookAborted, one class per base (so ``type(e)`` is stable)."""
    cls = _denial_classes.get(base)
    if cls is None:
        name = f"CrewAI{base.__name__}"
        cls = _denial_classes.setdefault(
            base, type(name, (base, HookAborted), {"__module__": __name__})
        )
    return cls


def is_denial(exc: BaseException) -> bool:
    return isinstance(exc, DENIALS)


def final(exc: BaseException) -> bool:
    """True when rerunning the task cannot help: tollway's router gave up, or the
    provider refused the request for good (not a context window: CrewAI handles it)."""
    if isinstance(exc, AllDeploymentsFailedError):
        return not isinstance(exc.last_error, ContextWindowExceededError)
    return (isinstance(exc, ProviderError) and not exc.retryable
            and not isinstance(exc, ContextWindowExceededError))


def as_denial(exc: Exception) -> Exception:
    """``exc`` (a denial, or a final failure) as an instance of a class deriving from
    both its own type and ``HookAborted``, with the same attributes and message."""
    cls = _denial_class(type(exc))
    denial = cls.__new__(cls)
    denial.__dict__.update(exc.__dict__)
    denial.args = exc.args
    denial.reason = str(exc)  # type: ignore[attr-defined]
    denial.source = "tollway"  # type: ignore[attr-defined]
    denial.__cause__ = exc.__cause__
    denial.__traceback__ = exc.__traceback__
    return denial


def _root(exc: BaseException) -> BaseException:
    """The provider error behind a routing failure (the last attempt's)."""
    if isinstance(exc, AllDeploymentsFailedError) and exc.last_error is not None:
        return exc.last_error
    return exc


def translate(exc: Exception) -> Exception | None:
    """The CrewAI-facing error for ``exc``, or None to raise ``exc`` unchanged."""
    if isinstance(exc, HookAborted):
        return None
    if isinstance(exc, DENIALS) or final(exc):
        return as_denial(exc)
    if isinstance(_root(exc), ContextWindowExceededError):
        return LLMContextLengthExceededError(str(exc))
    return None


def rejects_stop(exc: BaseException) -> bool:
    """True when the provider refused the request because of the ``stop`` parameter
    (OpenAI's reasoning models, some compatible servers): the model's own metadata,
    learned from its answer rather than guessed from its name."""
    root: Any = _root(exc)
    if not isinstance(root, BadRequestError):
        return False
    text = f"{root.message} {root.body or ''}".lower()
    return bool(_STOP_PARAM.search(text)) and ("unsupported" in text or "not supported" in text)
