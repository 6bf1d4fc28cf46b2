"""Anthropic error bodies (``{"type": "error", "error": {"type", "message"}}``) -> the
typed tollway errors, for HTTP error responses and for ``error`` events inside a stream.

The error ``type`` decides the class when it is known (it is more precise than the
status: ``overloaded_error`` arrives as 529, and inside a stream there is no status);
otherwise the HTTP status does. Choices worth knowing:

- ``invalid_request_error`` whose message says the prompt does not fit ("prompt is too
  long", "exceed context limit") -> ContextWindowExceededError, so routing can fall back
  to a bigger model;
- ``request_too_large`` (413: the HTTP body is over Anthropic's byte limit, usually big
  images or PDFs) -> BadRequestError, not ContextWindowExceededError: the limit is on the
  request size at this API, so a model with a bigger context window would not help;
- ``overloaded_error`` (529) and ``api_error`` (500) -> ServerError (retryable);
  ``timeout_error`` -> TimeoutError; ``billing_error`` -> PermissionDeniedError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tollway.core.dialects._retry_after import retry_after_seconds
from tollway.core.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextWindowExceededError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    TimeoutError,
    scrub,
)

_BY_TYPE: dict[str, tuple[type[ProviderError], int]] = {
    "invalid_request_error": (BadRequestError, 400),
    "authentication_error": (AuthenticationError, 401),
    "billing_error": (PermissionDeniedError, 402),
    "permission_error": (PermissionDeniedError, 403),
    "not_found_error": (NotFoundError, 404),
    "request_too_large": (BadRequestError, 413),
    "rate_limit_error": (RateLimitError, 429),
    "api_error": (ServerError, 500),
    "timeout_error": (TimeoutError, 504),
    "overloaded_error": (ServerError, 529),
}

_CONTEXT_WINDOW = re.compile(
    r"prompt is too long|prompt too long|input is too long|exceeds? (?:the )?context"
    r"|context (?:window|length|limit)",
    re.IGNORECASE,
)
_CONTENT_FILTER = re.compile(r"content filtering|blocked by .*polic", re.IGNORECASE)


def _class_for_status(status: int | None) -> type[ProviderError]:
    if status is None:  # an unknown error event mid-stream: the server failed after a 200
        return ServerError
    if status in (400, 413, 422):
        return BadRequestError
    if status == 401:
        return AuthenticationError
    if status in (402, 403):
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 408:
        return TimeoutError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return ProviderError


def _error_fields(payload: Any) -> tuple[str | None, str | None]:
    if not isinstance(payload, Mapping):
        return None, None
    error = payload.get("error")
    if isinstance(error, Mapping):
        kind = error.get("type")
        message = error.get("message")
        return (str(kind) if kind else None), (str(message) if message else None)
    message = payload.get("message") or payload.get("detail")
    return None, (str(message) if message else None)


def build_error(
    status: int | None,
    kind: str | None,
    message: str | None,
    body: str,
    retry_after: float | None = None,
) -> ProviderError:
    """The typed error for an Anthropic error type / status / message."""
    known = _BY_TYPE.get(kind or "")
    cls = known[0] if known else _class_for_status(status)
    if status is None and known:
        status = known[1]
    text = message or f"Anthropic returned HTTP {status}"
    if cls is BadRequestError and kind != "request_too_large":
        if _CONTEXT_WINDOW.search(text):
            cls = ContextWindowExceededError
        elif _CONTENT_FILTER.search(text):
            cls = ContentFilterError
    if cls is ContextWindowExceededError:
        text += (
            " (shorten the conversation, lower max_tokens, or route to a model with a "
            "larger context window)"
        )
    if cls is RateLimitError:
        return RateLimitError(text, retry_after=retry_after, status=status, body=body, code=kind)
    return cls(text, status=status, body=body, code=kind)


def parse_error(status: int, body: bytes | str, headers: Mapping[str, str]) -> ProviderError:
    """The typed error for an HTTP error response (JSON or not)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    kind, message = _error_fields(payload)
    if payload is None and text.strip():
        message = f"Anthropic returned HTTP {status} with a non-JSON body: {scrub(text, 200)}"
    return build_error(status, kind, message, text, retry_after_seconds(headers))


def error_from_event(payload: Mapping[str, Any], raw: str) -> ProviderError:
    """The typed error for an ``error`` event inside a stream (no HTTP status there)."""
    kind, message = _error_fields(payload)
    return build_error(None, kind, message or "Anthropic sent an error event in the stream", raw)
