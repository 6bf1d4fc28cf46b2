"""tollway errors -> Pydantic AI's ModelAPIError family.

Pydantic AI acts on its own error classes: ``FallbackModel`` falls back on
``ModelAPIError`` (by default), retries and run logic read the category
(``ModelRateLimitError``, ``ModelContextWindowExceededError``...). So provider failures
are re-raised as the matching category, an ``ModelHTTPError`` when there was an HTTP
status, with tollway's error as ``__cause__`` (nothing lost for callers who want it).

An ``AllDeploymentsFailedError`` with no attempt (every deployment cooling down) is
``ModelUnavailableError``, so a FallbackModel falls back in that window too.

Admission denials (``BudgetExceededError``, ``OutsideAllowedHoursError``) and
configuration errors are NOT provider failures and pass through unchanged: the caller
sees exactly why no model was called, and a FallbackModel does not silently move the
spend to another model (add them to ``fallback_on`` to opt in).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
)

from tollway.core import errors

_Category = type[ModelRateLimitError | ModelUnavailableError | ModelServerError
                 | ModelRequestRejectedError]

_CATEGORIES: tuple[tuple[type[errors.ProviderError], _Category], ...] = (
    (errors.RateLimitError, ModelRateLimitError),
    (errors.ContextWindowExceededError, ModelContextWindowExceededError),
    (errors.AuthenticationError, ModelAuthenticationError),
    (errors.PermissionDeniedError, ModelAuthenticationError),
    (errors.NotFoundError, ModelNotFoundError),
    (errors.BadRequestError, ModelRequestRejectedError),
)


def _category(error: errors.ProviderError) -> _Category | None:
    for tollway_type, category in _CATEGORIES:
        if isinstance(error, tollway_type):
            return category
    status = error.status
    if status == 529:
        return ModelOverloadedError
    if status == 503:
        return ModelUnavailableError
    if isinstance(error, errors.ServerError) or (status is not None and status >= 500):
        return ModelServerError
    return None


def to_model_error(error: BaseException, model_name: str, *, in_stream: bool = False) -> BaseException:
    """The Pydantic AI error to raise for ``error`` (raise it ``from error``); errors that
    are not provider failures come back unchanged."""
    source = error
    if isinstance(error, errors.AllDeploymentsFailedError):
        last = error.last_error
        if last is None:
            # Every deployment is cooling down (or none could be tried): the model is
            # unavailable for now, which is exactly when a FallbackModel should move on.
            return ModelUnavailableError(model_name, str(error), in_stream=in_stream)
        if not isinstance(last, errors.ProviderError):
            return error
        source = last
    if not isinstance(source, errors.ProviderError):
        return error
    message = str(error)
    retry_after = getattr(source, "retry_after", None)
    if isinstance(source, errors.TimeoutError):
        return ModelTimeoutError(model_name, message, in_stream=in_stream)
    if isinstance(source, errors.ConnectionError | errors.StreamError) and source.status is None:
        return ModelConnectionError(model_name, message, in_stream=in_stream)
    category = _category(source)
    if source.status is not None:
        return ModelHTTPError.for_category(
            category, status_code=source.status, model_name=model_name,
            body=source.body or source.message, provider_error_code=source.code,
            retry_after=retry_after, in_stream=in_stream,
        )
    kind = category or ModelAPIError
    return kind(model_name, message, provider_error_code=source.code, retry_after=retry_after,
                in_stream=in_stream)


@contextmanager
def mapped_errors(model_name: str, *, in_stream: bool = False) -> Iterator[None]:
    try:
        yield
    except errors.TollwayError as exc:
        mapped = to_model_error(exc, model_name, in_stream=in_stream)
        if mapped is exc:
            raise
        raise mapped from exc
