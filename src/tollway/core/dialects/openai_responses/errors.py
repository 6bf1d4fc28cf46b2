"""Responses errors -> the typed hierarchy.

They arrive four ways: an HTTP error body (the OpenAI ``{"error": {...}}`` shape, read
by the same classifier as chat completions), a 200 body whose ``status`` is ``failed``
with an ``error`` object, a ``response.failed`` stream event carrying that body, and an
``error`` stream event (``{"type": "error", "code", "message"}``). The last three have no
HTTP status: the error code decides the class (``rate_limit_exceeded`` ->
RateLimitError, ``context_length_exceeded`` -> ContextWindowExceededError, anything
unknown after a 200 -> ServerError).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tollway.core.dialects.openai_chat.errors import error_from_http, error_from_payload
from tollway.core.errors import ProviderError

__all__ = ["error_from_event", "error_from_http", "failed_response_error"]


def failed_response_error(body: Mapping[str, Any]) -> ProviderError:
    """The error of a response whose ``status`` is ``failed`` (or that holds an error)."""
    error = body.get("error")
    if not isinstance(error, Mapping):
        error = {"message": "the response failed without an error object", "code": None}
    return error_from_payload({"error": dict(error)}, _dump(body))


def error_from_event(event: Mapping[str, Any]) -> ProviderError:
    """An ``error`` stream event (its fields sit at the top level of the event)."""
    error = {"message": event.get("message"), "code": event.get("code")}
    if isinstance(event.get("error"), Mapping):  # some servers nest it
        error = dict(event["error"])
    return error_from_payload({"error": error}, _dump(event))


def _dump(value: Mapping[str, Any]) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
