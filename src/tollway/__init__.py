"""tollway: one model layer for every agent framework — routing, exact cost, budgets,
allowed hours and MCP tools.

The public API is imported lazily so ``import tollway`` stays as cheap as ``import
httpx`` (frameworks, redis, psycopg and genai-prices load only where they are used).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tollway.core import plugins as _plugins

__version__ = "0.1.0"

_plugins.PROVIDER_MODULES.setdefault("local", "tollway.local.provider")

_EXPORTS: dict[str, str] = {
    "Model": "tollway.core.model",
    "ResponseStream": "tollway.core.model",
    "AsyncResponseStream": "tollway.core.model",
    "Message": "tollway.core.types",
    "Text": "tollway.core.types",
    "Image": "tollway.core.types",
    "Audio": "tollway.core.types",
    "File": "tollway.core.types",
    "ToolCall": "tollway.core.types",
    "ToolResult": "tollway.core.types",
    "Thinking": "tollway.core.types",
    "Tool": "tollway.core.types",
    "NamedTool": "tollway.core.types",
    "Request": "tollway.core.types",
    "Response": "tollway.core.types",
    "ResponseFormat": "tollway.core.types",
    "Reasoning": "tollway.core.types",
    "Usage": "tollway.core.types",
    "StreamStart": "tollway.core.types",
    "TextDelta": "tollway.core.types",
    "ThinkingDelta": "tollway.core.types",
    "ToolCallDelta": "tollway.core.types",
    "UsageEvent": "tollway.core.types",
    "FinishEvent": "tollway.core.types",
    "StreamEnd": "tollway.core.types",
    "EmbeddingRequest": "tollway.core.media_types",
    "EmbeddingResponse": "tollway.core.media_types",
    "ImageRequest": "tollway.core.media_types",
    "ImageResponse": "tollway.core.media_types",
    "GeneratedImage": "tollway.core.media_types",
    "attribute": "tollway.core.cost.attribution",
    "current_attribution": "tollway.core.cost.attribution",
    "spend": "tollway.core.reports",
    "Budgets": "tollway.core.cost.budgets",
    "budget_status": "tollway.core.reports",
    "BudgetPolicy": "tollway.core.cost.policy",
    "HoursPolicy": "tollway.core.cost.policy",
    "RateLimitPolicy": "tollway.core.cost.policy",
    "load_config": "tollway.core.config",
    "trace": "tollway.core.tracing",
    "enable_telemetry": "tollway.core.telemetry",
    "disable_telemetry": "tollway.core.telemetry",
    "errors": "tollway.core.errors",
    "VectorStore": "tollway.vectors.store",
}

_ERROR_NAMES = {
    "TollwayError", "ConfigError", "UnknownModelError", "ProviderError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "BadRequestError", "ContextWindowExceededError",
    "ContentFilterError", "RateLimitError", "ServerError", "TimeoutError", "ConnectionError",
    "StreamError", "BudgetExceededError", "OutsideAllowedHoursError",
    "AllDeploymentsFailedError", "ToolLoopError", "ToolArgumentsError", "RateLimitExceededError",
    "UnpricedModelDeniedError", "InvalidRequestError", "OutputValidationError",
    "StoreUnavailableError", "TollwayWarning", "BudgetSettleWarning",
}


def __getattr__(name: str) -> Any:
    if name in _ERROR_NAMES:
        return getattr(import_module("tollway.core.errors"), name)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tollway' has no attribute {name!r}")
    if name == "errors":
        return import_module(module)
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = sorted([*_EXPORTS, *_ERROR_NAMES, "__version__"])


if TYPE_CHECKING:
    from tollway.core.config import load_config as load_config
    from tollway.core.cost.attribution import attribute as attribute
    from tollway.core.cost.attribution import current_attribution as current_attribution
    from tollway.core.cost.budgets import Budgets as Budgets
    from tollway.core.cost.policy import BudgetPolicy as BudgetPolicy
    from tollway.core.cost.policy import HoursPolicy as HoursPolicy
    from tollway.core.cost.policy import RateLimitPolicy as RateLimitPolicy
    from tollway.core.errors import *  # noqa: F403
    from tollway.core.media_types import EmbeddingRequest as EmbeddingRequest
    from tollway.core.media_types import EmbeddingResponse as EmbeddingResponse
    from tollway.core.media_types import GeneratedImage as GeneratedImage
    from tollway.core.media_types import ImageRequest as ImageRequest
    from tollway.core.media_types import ImageResponse as ImageResponse
    from tollway.core.model import AsyncResponseStream as AsyncResponseStream
    from tollway.core.model import Model as Model
    from tollway.core.model import ResponseStream as ResponseStream
    from tollway.core.reports import budget_status as budget_status
    from tollway.core.reports import spend as spend
    from tollway.core.telemetry import disable_telemetry as disable_telemetry
    from tollway.core.telemetry import enable_telemetry as enable_telemetry
    from tollway.core.tracing import trace as trace
    from tollway.core.types import *  # noqa: F403
    from tollway.vectors.store import VectorStore as VectorStore
