"""OpenAI-style error bodies -> the typed tollway error.

The same ``{"error": {"message", "type", "code", "param"}}`` shape arrives three ways:
as an HTTP error body, inside a 200 body (some compatible servers), and as an SSE
``data:`` payload mid-stream. One classifier serves all three, so a context-window error
is a ContextWindowExceededError whichever way it came. Compatible servers vary: the
``error`` value may be a bare string (Ollama), the body a list (Gemini's compatibility
layer) or not JSON at all (an HTML 502 from a proxy); each still gets the right class.
"""

from __future__ import annotations

import json
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
)

_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_PHRASES = (
    "maximum context length",
    "context length",
    "context window",
    "context_length_exceeded",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "reduce the length of the messages",
    "exceeds the maximum number of tokens",
)
_FILTER_CODES = frozenset({"content_policy_violation", "content_filter", "invalid_prompt"})
_FILTER_PHRASES = ("content management policy", "content policy", "flagged as potentially")
_AUTH_CODES = frozenset({"invalid_api_key", "invalid_authentication", "authentication_error"})
_NOT_FOUND_CODES = frozenset({"model_not_found", "not_found_error"})
_RATE_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota", "rate_limit_error"})

_HINTS: dict[type[ProviderError], str] = {
    AuthenticationError: "check the API key configured for this deployment",
    PermissionDeniedError: "this key may not use this model or endpoint",
    NotFoundError: "check the model name and the deployment's base URL",
    ContextWindowExceededError: (
        "shorten the prompt or lower max_tokens, or route to a model with a larger context window"
    ),
}


def error_from_http(status: int, body: bytes | str, headers: Mapping[str, str]) -> ProviderError:
    """The typed error for an HTTP error response (returned, not raised)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    message, code = _describe(text)
    if message is None:
        message = f"HTTP {status} from the provider (the body is not an OpenAI error object)"
    return _classify(status, message, code, text, headers)


def error_from_payload(payload: Mapping[str, Any], raw: str) -> ProviderError:
    """The typed error for an ``{"error": ...}`` object that arrived with HTTP 200 (in a
    body or a stream chunk). A numeric ``code`` (OpenRouter passes the upstream status)
    counts as the status; otherwise the code and message decide."""
    message, code = _describe_error(payload.get("error"))
    status: int | None = None
    if code is not None and code.isdigit() and 400 <= int(code) <= 599:
        status = int(code)
    return _classify(status, message or "the provider reported an error", code, raw, {})


def _describe(text: str) -> tuple[str | None, str | None]:
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        return None, None
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    if not isinstance(parsed, Mapping):
        return None, None
    if "error" in parsed:
        return _describe_error(parsed["error"])
    message = parsed.get("message") or parsed.get("detail")
    return (str(message) if message else None), _code_of(parsed)


def _describe_error(error: Any) -> tuple[str | None, str | None]:
    if isinstance(error, str):
        return error, None
    if not isinstance(error, Mapping):
        return None, None
    message = error.get("message")
    return (str(message) if message else None), _code_of(error)


def _code_of(error: Mapping[str, Any]) -> str | None:
    code = error.get("code")
    if code is None or code == "":
        code = error.get("type")
    return None if code is None or code == "" else str(code)


def _classify(
    status: int | None,
    message: str,
    code: str | None,
    raw: str,
    headers: Mapping[str, str],
) -> ProviderError:
    lowered = message.lower()
    kind: type[ProviderError]
    if status == 429 or code in _RATE_CODES:
        return RateLimitError(
            _with_hint(message, code),
            retry_after=retry_after_seconds(headers),
            status=status,
            body=raw,
            code=code,
        )
    if status == 401 or (status is None and code in _AUTH_CODES):
        kind = AuthenticationError
    elif status == 403:
        kind = PermissionDeniedError
    elif status == 404 or (status is None and code in _NOT_FOUND_CODES):
        kind = NotFoundError
    elif status is not None and status >= 500:
        kind = ServerError
    elif code in _CONTEXT_CODES or any(p in lowered for p in _CONTEXT_PHRASES):
        kind = ContextWindowExceededError
    elif code in _FILTER_CODES or any(p in lowered for p in _FILTER_PHRASES):
        kind = ContentFilterError
    elif status == 408:
        kind = TimeoutError
    elif (status is not None and 400 <= status < 500) or code == "invalid_request_error":
        kind = BadRequestError
    else:
        kind = ServerError  # an error after a 200 (mid-stream) is the server's failure
    return kind(_with_hint(message, code, kind), status=status, body=raw, code=code)


def _with_hint(message: str, code: str | None, kind: type[ProviderError] | None = None) -> str:
    if code == "insufficient_quota":
        return f"{message} (the account is out of quota: add credits or use another key)"
    hint = _HINTS.get(kind) if kind is not None else None
    return f"{message} ({hint})" if hint else message
