"""How the router reads an error: what kind of failure it is, and which fallback rules
it triggers.

Kept apart from the router so the config schema can validate ``fallbacks: ... on:``
names without importing the router, and so the classification is one table, not
``isinstance`` chains scattered through the retry loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from tollway.core import errors

FailureKind = Literal["transient", "deployment", "request", "blocked", "fatal"]
"""- transient: the same request may succeed on a retry or elsewhere (429, 5xx, timeouts,
  connection and stream errors; ``ProviderError.retryable``);
- deployment: this deployment cannot serve (401/403/404, or a provider error of unknown
  meaning): fail over, never retry it in this call, cool it down;
- request: the request itself is wrong (400, context window, content filter): other
  deployments of the same alias would refuse it too; only a fallback rule may help;
- blocked: a guard denied it (budget, allowed hours): skip it like a cooling one;
- fatal: not a routing matter (a config or programming error): raised at once."""

GUARD_ERRORS: Final = (errors.BudgetExceededError, errors.OutsideAllowedHoursError)


def classify(exc: BaseException) -> FailureKind:
    if isinstance(exc, errors.ProviderError):
        if exc.retryable:
            return "transient"
        if isinstance(exc, errors.BadRequestError):
            return "request"
        return "deployment"
    if isinstance(exc, GUARD_ERRORS):
        return "blocked"
    return "fatal"


ERROR_GROUPS: Final[dict[str, tuple[type[BaseException], ...]]] = {
    "context_window": (errors.ContextWindowExceededError,),
    "rate_limit": (errors.RateLimitError,),
    "server": (errors.ServerError, errors.ConnectionError, errors.StreamError),
    "timeout": (errors.TimeoutError,),
    "content_filter": (errors.ContentFilterError,),
    "auth": (errors.AuthenticationError, errors.PermissionDeniedError),
    "not_found": (errors.NotFoundError,),
    "budget": (errors.BudgetExceededError,),
    "hours": (errors.OutsideAllowedHoursError,),
    "any": (errors.ProviderError, *GUARD_ERRORS),
}
"""Names usable in ``fallbacks: <alias>: [{to: ..., on: [...]}]`` besides error class
names (``RateLimitError``...)."""

DEFAULT_FALLBACK_ON: Final = ("rate_limit", "server", "timeout", "auth", "not_found", "budget", "hours")
"""A fallback written as a plain alias name triggers on everything that is not the
request's own fault (so not on a 400, a context window or a content filter: name those
groups explicitly to fall back on them)."""


def error_types(names: Iterable[str]) -> tuple[type[BaseException], ...]:
    """The classes a list of group / class names stands for; ValueError names the
    first unknown one and lists what is accepted."""
    out: list[type[BaseException]] = []
    for name in names:
        group = ERROR_GROUPS.get(name)
        if group is not None:
            out.extend(group)
            continue
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, errors.TollwayError):
            out.append(cls)
            continue
        raise ValueError(
            f"unknown error group or class {name!r}; expected one of "
            f"{', '.join(ERROR_GROUPS)} or a tollway error class name such as RateLimitError"
        )
    return tuple(dict.fromkeys(out))


__all__ = [
    "DEFAULT_FALLBACK_ON",
    "ERROR_GROUPS",
    "GUARD_ERRORS",
    "FailureKind",
    "classify",
    "error_types",
]
