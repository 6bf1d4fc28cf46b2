"""Gemini / Vertex AI error bodies -> tollway's typed errors.

Google APIs answer ``{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT",
"details": [...]}}`` (Vertex streams may wrap it in a list). The HTTP status alone is not
enough: an invalid API key is a 400 ``INVALID_ARGUMENT`` with ``reason: API_KEY_INVALID``
in an ``ErrorInfo`` detail, and the wait a 429 asks for is a ``RetryInfo`` detail
(``retryDelay: "7s"``), not a header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tollway.core import errors
from tollway.core.dialects._retry_after import retry_after_seconds
from tollway.core.errors import ProviderError

PROVIDER = "gemini"

_CONTEXT_PATTERNS = re.compile(
    r"exceeds the maximum number of tokens|input token count.*exceeds|"
    r"too many tokens|context (?:window|length)|maximum context|token limit",
    re.IGNORECASE | re.DOTALL,
)
_AUTH_PATTERNS = re.compile(
    r"api key not valid|api key expired|invalid api key|api_key_invalid|"
    r"unregistered callers|invalid authentication credentials",
    re.IGNORECASE,
)
_RETRY_IN_MESSAGE = re.compile(r"retry in (\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
_STATUS_FOR_CODE = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def parse_error(status: int, body: bytes | str, headers: Mapping[str, str]) -> ProviderError:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    payload = _payload(text)
    return error_from_payload(status, payload, text, headers)


def error_from_payload(
    status: int | None,
    payload: Mapping[str, Any] | None,
    text: str,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """The typed error for a Google error object (``payload`` is the value of
    ``"error"``; None when the body was not JSON)."""
    payload = payload or {}
    code = payload.get("status") if isinstance(payload.get("status"), str) else None
    if status is None or status < 400:
        raw_code = payload.get("code")
        status = raw_code if isinstance(raw_code, int) else _STATUS_FOR_CODE.get(code or "", 500)
    message = payload.get("message") if isinstance(payload.get("message"), str) else None
    if not message:
        message = f"Gemini answered HTTP {status}" + (
            "" if payload else " with a body that is not a Google error object"
        )
    raw_details = payload.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    reasons = {str(d.get("reason")) for d in details if isinstance(d, Mapping) and d.get("reason")}
    kw: dict[str, Any] = {"status": status, "provider": PROVIDER, "body": text, "code": code}

    if (
        status == 401
        or code == "UNAUTHENTICATED"
        or "API_KEY_INVALID" in reasons
        or (status in (400, 403) and _AUTH_PATTERNS.search(message))
    ):
        return errors.AuthenticationError(message, **kw)
    if status == 403 or code == "PERMISSION_DENIED":
        return errors.PermissionDeniedError(message, **kw)
    if status == 404 or code == "NOT_FOUND":
        return errors.NotFoundError(message, **kw)
    if status == 429 or code == "RESOURCE_EXHAUSTED":
        return errors.RateLimitError(
            message, retry_after=_retry_after(headers or {}, details, message), **kw
        )
    if status == 408:
        return errors.TimeoutError(message, **kw)
    if status >= 500:
        return errors.ServerError(message, **kw)
    if 400 <= status < 500:
        if _CONTEXT_PATTERNS.search(message):
            return errors.ContextWindowExceededError(message, **kw)
        return errors.BadRequestError(message, **kw)
    return ProviderError(message, **kw)


def _payload(text: str) -> Mapping[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, Mapping):
        inner = data.get("error")
        if isinstance(inner, Mapping):
            return inner
    return None


def _retry_after(headers: Mapping[str, str], details: list[Any], message: str) -> float | None:
    seconds = retry_after_seconds(headers)
    if seconds is not None:
        return seconds
    for detail in details:
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("RetryInfo"):
            seconds = parse_duration(detail.get("retryDelay"))
            if seconds is not None:
                return seconds
    match = _RETRY_IN_MESSAGE.search(message)
    return float(match.group(1)) if match else None


def parse_duration(value: Any) -> float | None:
    """A protobuf JSON Duration (``"7s"``, ``"0.250s"``) in seconds, or None."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", value)
        if match:
            return float(match.group(1))
    return None
