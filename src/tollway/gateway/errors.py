"""tollway errors -> HTTP status, headers and the error JSON of the client's dialect.

One table decides the status of every error class; the body is then written the way
the client's SDK parses it (OpenAI ``{"error": {message, type, param, code}}``,
Anthropic ``{"type": "error", "error": {type, message}}``), so ``openai.RateLimitError``
or ``anthropic.PermissionDeniedError`` is what the client catches. Denials by a budget,
rate limit or allowed hours are 429 with ``Retry-After`` (seconds until the counter
resets or the hours open) and ``x-tollway-reset`` (the ISO time). Upstream failures
are 502, upstream timeouts 504: the client's request was fine, the provider was not.

Messages are tollway's own, already scrubbed of secrets and free of prompts; anything
that is not a TollwayError becomes a bare 500 (logged, never echoed).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Literal

from tollway.core import errors
from tollway.core.errors import scrub
from tollway.core.logs import logger
from tollway.mcp.errors import MCPConnectionError

__all__ = ["GatewayError", "error_response"]

log = logger("tollway.gateway")

Dialect = Literal["openai", "anthropic"]


class GatewayError(errors.TollwayError):
    """An error the gateway itself raises (auth, size, routing), with its status."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.retry_after = retry_after


_OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
    429: "rate_limit_error", 500: "server_error", 502: "upstream_error", 503: "server_error",
    504: "timeout_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
    504: "timeout_error",
}


def _seconds_until(when: datetime | None) -> float | None:
    if when is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify(exc: BaseException) -> tuple[int, str, str | None, dict[str, str]]:
    """``(status, message, code, headers)`` for any exception."""
    headers: dict[str, str] = {}
    if isinstance(exc, errors.AllDeploymentsFailedError) and exc.last_error is not None:
        status, message, last_code, headers = classify(exc.last_error)
        return status, f"{message} (after {len(exc.attempts)} attempt(s))", last_code, headers
    retry: float | None = None
    reset: datetime | None = None
    code: str | None = None
    if isinstance(exc, GatewayError):
        status, code, retry = exc.status, exc.code, exc.retry_after
    elif isinstance(exc, errors.BudgetExceededError):
        status = 429
        retry = getattr(exc, "retry_after", None)
        reset = exc.resets_at
        code = "rate_limit_exceeded" if retry is not None else "budget_exceeded"
        if retry is None:
            retry = _seconds_until(reset)
    elif isinstance(exc, errors.OutsideAllowedHoursError):
        status, code, reset = 429, "outside_allowed_hours", exc.next_open
        retry = _seconds_until(reset)
    elif isinstance(exc, errors.UnknownModelError):
        status, code = 404, "model_not_found"
    elif isinstance(exc, errors.ProviderError):
        status, code, retry = _upstream(exc)
    elif isinstance(exc, errors.ToolArgumentsError | errors.ConfigError):
        status = 400
    elif isinstance(exc, MCPConnectionError):  # an MCP alias whose server is down
        status, code = 502, "mcp_server_unavailable"
    elif isinstance(exc, errors.TollwayError):
        status = 500
    else:
        log.error("tollway gateway: unexpected %s: %s", type(exc).__name__, scrub(str(exc), 300))
        return 500, "internal error in the gateway (logged)", None, {}
    if retry is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry)))
    if reset is not None:
        headers["x-tollway-reset"] = reset.isoformat()
    return status, scrub(str(exc), 1000), code, headers


def _upstream(exc: errors.ProviderError) -> tuple[int, str | None, float | None]:
    """The status for a provider's error as seen by the gateway's client."""
    if isinstance(exc, errors.RateLimitError):
        return 429, "upstream_rate_limited", exc.retry_after
    if isinstance(exc, errors.BadRequestError):
        return 400, exc.code, None
    if isinstance(exc, errors.NotFoundError):
        return 404, "model_not_found", None
    if isinstance(exc, errors.TimeoutError):
        return 504, "upstream_timeout", None
    if isinstance(exc, errors.AuthenticationError | errors.PermissionDeniedError):
        # The client's key was fine: the gateway's own provider credentials were refused.
        return 502, "upstream_auth_failed", None
    if exc.status is None and exc.provider is None:
        return 400, exc.code, None  # raised while reading the client's request body
    return 502, "upstream_error", None


def error_body(dialect: Dialect, status: int, message: str, code: str | None,
               param: str | None = None) -> bytes:
    if dialect == "anthropic":
        payload: dict[str, object] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message},
        }
    else:
        payload = {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"),
                             "param": param, "code": code}}
    return json.dumps(payload).encode()


def error_response(dialect: Dialect, exc: BaseException) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` for ``exc`` in the client's dialect."""
    status, message, code, headers = classify(exc)
    param = exc.param if isinstance(exc, GatewayError) else None
    if isinstance(exc, errors.InvalidRequestError):
        param = exc.field
    return status, headers, error_body(dialect, status, message, code, param)
