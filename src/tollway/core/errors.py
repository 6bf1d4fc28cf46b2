"""One error hierarchy for everything tollway raises.

Callers catch by meaning (``RateLimitError``, ``BudgetExceededError``), never by
provider. Messages name what went wrong and how to fix it; they never contain API
keys or full prompts (provider bodies are cut to a short excerpt and scrubbed).
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Any

_SECRET_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(r"(?i)(api[_-]?key[\"'=:\s]+)[A-Za-z0-9._\-]{8,}"),
)
EXCERPT_LIMIT = 500


_KNOWN_SECRETS: set[str] = set()
_known_pattern: re.Pattern[str] | None = None
_known_lock = threading.Lock()
MIN_SECRET_LENGTH = 8
"""Shorter values are not remembered: masking them would garble ordinary text."""


def remember_secret(value: object) -> None:
    """Mask ``value`` wherever :func:`scrub` runs from now on: every deployment's key,
    the header values of its config and the results of key callables are remembered
    when tollway first sees them, so a provider that echoes a key of any format (not
    only the ones the patterns below know) never shows it."""
    global _known_pattern
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH or value in _KNOWN_SECRETS:
        return
    with _known_lock:
        _KNOWN_SECRETS.add(value)
        _known_pattern = None


def _known() -> re.Pattern[str] | None:
    global _known_pattern
    pattern = _known_pattern
    if pattern is None and _KNOWN_SECRETS:
        with _known_lock:
            ordered = sorted(_KNOWN_SECRETS, key=len, reverse=True)  # longest first
            pattern = _known_pattern = re.compile("|".join(map(re.escape, ordered)))
    return pattern


def mask_secrets(text: str) -> str:
    """``text`` with every secret tollway knows and anything that looks like a key
    replaced by ``***`` (log records: whole tracebacks, never cut)."""
    known = _known()
    if known is not None:
        text = known.sub("***", text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def scrub(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """:func:`mask_secrets`, then cut ``text`` to ``limit`` characters (masking first: a
    cut must not leave half a key)."""
    text = mask_secrets(text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text


class TollwayError(Exception):
    """Base of every error tollway raises."""


class ConfigError(TollwayError, ValueError):
    """Configuration is invalid: names the file, line, key and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        where = []
        if file:
            where.append(f"{file}:{line}" if line else file)
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class UnknownModelError(ConfigError):
    """A model string names no provider tollway knows and no configured alias."""


class ProviderError(TollwayError):
    """A provider answered with an error, or could not be reached.

    ``retryable`` tells the router whether the same request may succeed on a retry or
    on another deployment.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        deployment: str | None = None,
        body: str | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.provider = provider
        self.model = model
        self.deployment = deployment
        self.body = scrub(body) if body else None
        self.code = code
        self.message = scrub(message)
        super().__init__(self._render())

    def _render(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        parts = [f"{where}: " if where else "", self.message]
        if self.status is not None:
            parts.append(f" (HTTP {self.status})")
        return "".join(parts)

    def with_context(
        self, *, provider: str | None, model: str | None, deployment: str | None
    ) -> ProviderError:
        """Fill in where the error happened (dialects do not know the deployment)."""
        self.provider = self.provider or provider
        self.model = self.model or model
        self.deployment = self.deployment or deployment
        self.args = (self._render(),)
        return self


class AuthenticationError(ProviderError):
    """The API key is missing, wrong or expired (401, or no key configured)."""


class PermissionDeniedError(ProviderError):
    """The key is valid but may not use this model or endpoint (403)."""


class NotFoundError(ProviderError):
    """The model or endpoint does not exist at this provider (404)."""


class BadRequestError(ProviderError):
    """The provider rejected the request as malformed (400/422)."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max_tokens) does not fit the model's context window."""


class ContentFilterError(BadRequestError):
    """The provider refused the content (safety / moderation)."""


class RateLimitError(ProviderError):
    """429 / quota exhausted. ``retry_after`` is seconds the provider asked us to wait."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(ProviderError):
    """5xx / overloaded (529): the provider failed; another try may succeed."""

    retryable = True


class TimeoutError(ProviderError):
    """The provider did not answer (or stopped streaming) within the timeout."""

    retryable = True


class ConnectionError(ProviderError):
    """The provider could not be reached, or dropped the connection. ``unanswered``: it
    closed the connection before sending any byte of a response (a request sent on a
    keep-alive connection the server had just closed); the transport then tries a fresh
    connection once before this reaches the caller."""

    retryable = True

    def __init__(self, message: str, *, unanswered: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.unanswered = unanswered


class StreamError(ProviderError):
    """The stream was malformed or ended before the provider finished it."""

    retryable = True


class BudgetExceededError(TollwayError):
    """A budget would be exceeded by this call; the provider was not called."""

    def __init__(
        self,
        scope: str,
        limit: float,
        spent: float,
        reserved: float,
        resets_at: datetime | None = None,
        *,
        unit: str = "usd",
        requested: float | None = None,
        budget: str | None = None,
    ) -> None:
        self.scope = scope
        self.budget = budget
        """The id of the budget (or rate limit) that denied the call."""
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.resets_at = resets_at
        self.unit = unit
        self.requested = requested
        reset = f"; resets at {resets_at.isoformat()}" if resets_at else "; never resets"
        need = f", this call needs up to {requested:g}" if requested is not None else ""
        super().__init__(
            f"budget for {scope} exceeded: limit {limit:g} {unit}, spent {spent:g}, "
            f"reserved by calls in flight {reserved:g}{need}{reset}"
        )


class RateLimitExceededError(BudgetExceededError):
    """A scope's requests or tokens per minute would be exceeded; ``retry_after`` is
    the seconds until the minute resets. The provider was not called."""

    def __init__(self, scope: str, limit: float, spent: float, reserved: float,
                 resets_at: datetime | None, *, unit: str, requested: float | None,
                 retry_after: float, budget: str | None = None) -> None:
        super().__init__(scope, limit, spent, reserved, resets_at, unit=unit,
                         requested=requested, budget=budget)
        self.retry_after = retry_after
        self.args = (
            f"rate limit for {scope} reached: {limit:g} {unit} per minute, used {spent:g}, "
            f"in flight {reserved:g}, this call needs up to {requested:g}; retry in "
            f"{retry_after:.0f}s",
        )


class UnpricedModelDeniedError(BudgetExceededError):
    """A USD budget applies to a call whose model has no known price, and the budget's
    ``unpriced`` policy is ``deny`` (an unknown cost cannot be bounded). Decided before
    the store is asked, so ``spent`` and ``reserved`` are not read (reported as 0)."""

    def __init__(self, scope: str, limit: float, resets_at: datetime | None, *,
                 model: str, budget: str | None = None) -> None:
        super().__init__(scope, limit, 0, 0, resets_at, unit="usd", budget=budget)
        self.model = model
        self.args = (
            f"budget for {scope} counts USD but {model} has no known price, so the call "
            f"was not made; add a price for it under 'prices' in tollway.yaml, or set "
            f"'unpriced: allow' on the budget to let such calls through at 0 USD",
        )


class OutsideAllowedHoursError(TollwayError):
    """The call's scope may not call models now; ``next_open`` says when it may."""

    def __init__(
        self,
        scope: str,
        window: str,
        next_open: datetime | None,
        *,
        policy: str | None = None,
        reroute_to: str | None = None,
    ) -> None:
        self.scope = scope
        self.window = window
        self.next_open = next_open
        self.policy = policy
        """The id of the hours policy that denied the call."""
        self.reroute_to = reroute_to
        """The alias the policy sends such calls to instead (the router follows it)."""
        when = next_open.isoformat() if next_open else "never"
        super().__init__(f"{scope} may only call models during {window}; next open at {when}")


class AllDeploymentsFailedError(TollwayError):
    """Every deployment (and fallback) was tried and failed; ``attempts`` lists them."""

    def __init__(self, attempts: list[tuple[str, BaseException]], reason: str = "") -> None:
        self.attempts = attempts
        lines = [f"  {dep}: {type(err).__name__}: {err}" for dep, err in attempts]
        head = f"all deployments failed after {len(attempts)} attempt(s)"
        if reason:
            head += f" ({reason})"
        super().__init__(head + (":\n" + "\n".join(lines) if lines else ""))

    @property
    def last_error(self) -> BaseException | None:
        return self.attempts[-1][1] if self.attempts else None


class ToolLoopError(TollwayError):
    """The tool loop stopped without a final answer (max rounds, or a tool policy)."""

    def __init__(self, message: str, transcript: list[Any] | None = None) -> None:
        self.transcript = transcript or []
        super().__init__(message)


class InvalidRequestError(BadRequestError, ValueError):
    """What the caller passed is not a valid request: ``field`` names it, the message
    says what was expected. Raised before any budget or network step."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class OutputValidationError(TollwayError, ValueError):
    """``response.parsed``: the model's answer is not valid for the requested format;
    ``raw`` is the text it answered, ``reason`` what the validation said."""

    def __init__(self, raw: str, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(
            f"the model's answer does not match the response_format: {scrub(reason, 300)}; "
            f"the raw text is in .raw ({len(raw)} characters)"
        )


class ToolArgumentsError(TollwayError, ValueError):
    """A model produced tool-call arguments that are not valid JSON for the tool."""

    def __init__(self, tool: str, raw: str, reason: str) -> None:
        self.tool = tool
        self.raw = raw
        super().__init__(f"tool {tool!r}: arguments are not valid: {reason}: {scrub(raw, 200)}")


class StoreUnavailableError(TollwayError):
    """A budget store or ledger could not do its part: its server is down, its file is
    locked or unwritable, or its connection pool stayed full for ``timeout`` seconds.

    Raised before the provider is called (a reservation that could not be taken), never
    after: once a provider answered, a store failure becomes a
    :class:`BudgetSettleWarning` and the caller still gets the answer. ``store`` names
    the backend (``sqlite budget store``, ``postgres ledger``...), ``operation`` what it
    was doing (``reserve``, ``settle``, ``connect``...); the message says how to fix it.
    """

    def __init__(self, store: str, operation: str, reason: str, *,
                 timeout: float | None = None) -> None:
        self.store = store
        self.operation = operation
        self.timeout = timeout
        super().__init__(f"the {store} could not {operation}: {scrub(reason, 300)}")


class TollwayWarning(UserWarning):
    """Base of every warning tollway emits (filter them with ``warnings`` as usual)."""


class BudgetSettleWarning(TollwayWarning):
    """A paid call's reservation could not be settled or released: its budget store
    failed after the provider answered. The caller got the answer and the ledger has
    the call's row; the reservation stays held until its TTL expires (so the budget is
    over-reserved meanwhile, the safe direction), and the call's real cost is not in
    the counter's ``spent``: the ledger row is the record of it."""

    def __init__(self, message: str, *, trace_id: str | None = None,
                 budgets: tuple[str, ...] = (), error: str = "") -> None:
        self.trace_id = trace_id
        self.budgets = budgets
        self.error = error
        super().__init__(message)


__all__ = [
    "AllDeploymentsFailedError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "BudgetSettleWarning",
    "ConfigError",
    "ConnectionError",
    "ContentFilterError",
    "ContextWindowExceededError",
    "InvalidRequestError",
    "NotFoundError",
    "OutputValidationError",
    "OutsideAllowedHoursError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "RateLimitExceededError",
    "ServerError",
    "StoreUnavailableError",
    "StreamError",
    "TimeoutError",
    "TollwayError",
    "TollwayWarning",
    "ToolArgumentsError",
    "ToolLoopError",
    "UnknownModelError",
    "UnpricedModelDeniedError",
    "mask_secrets",
    "remember_secret",
    "scrub",
]
