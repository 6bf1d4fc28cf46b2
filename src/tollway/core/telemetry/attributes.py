"""Canonical values -> OpenTelemetry GenAI attributes: pure functions, no ``opentelemetry``.

Names follow the GenAI semantic conventions (status: Development) where one exists:
``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.*``,
``gen_ai.response.*``, ``gen_ai.usage.input_tokens`` / ``output_tokens`` /
``cache_read.input_tokens`` / ``cache_creation.input_tokens`` /
``reasoning.output_tokens``, ``error.type``, ``server.address`` / ``server.port``. Cost
uses the *proposed* ``gen_ai.usage.cost.amount`` / ``.currency`` / ``.source``
(semantic-conventions-genai PR #443, not merged: the names may still change). What the
conventions do not name is under ``tollway.*``: deployment, alias, attribution, trace
id, attempts, Anthropic's 1-hour cache writes, per-request units.

The usage numbers keep tollway's one meaning (DESIGN.md), which is also the
conventions': ``input_tokens`` includes cache reads and writes, ``output_tokens``
includes reasoning, so backends that sum ``gen_ai.usage.*`` over spans count each token
once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tollway.core.types import NANOS_PER_USD, Request, Response, Usage

if TYPE_CHECKING:
    from tollway.core.cost.attribution import Attribution
    from tollway.core.providers import Deployment

__all__ = [
    "PROVIDER_NAMES",
    "attribution_attributes",
    "deployment_attributes",
    "error_type",
    "provider_name",
    "request_attributes",
    "response_attributes",
    "usage_attributes",
]

PROVIDER_NAMES: dict[str, str] = {
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
"""tollway provider -> the conventions' well-known ``gen_ai.provider.name`` where they
differ (openai, anthropic, groq, deepseek are the same; others keep tollway's name)."""

Attributes = dict[str, Any]


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


@lru_cache(maxsize=256)
def _server(api_base: str) -> tuple[str, int] | None:
    """Host and port of a base URL (no credentials, path or query: nothing secret)."""
    try:
        parts = urlsplit(api_base)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host, port or (443 if parts.scheme == "https" else 80)


def deployment_attributes(dep: Deployment) -> Attributes:
    """Who serves the request: provider, model as sent, deployment, server."""
    out: Attributes = {
        "gen_ai.provider.name": provider_name(dep.provider.name),
        "gen_ai.request.model": dep.model,
        "tollway.deployment": dep.name,
        "tollway.provider": dep.provider.name,
    }
    if not dep.provider.in_process:
        server = _server(dep.api_base)
        if server is not None:
            out["server.address"], out["server.port"] = server
    return out


def request_attributes(request: Request, *, stream: bool) -> Attributes:
    """The request parameters the conventions name (only those the caller set)."""
    out: Attributes = {"gen_ai.operation.name": "chat"}
    if stream:
        out["gen_ai.request.stream"] = True
    if request.temperature is not None:
        out["gen_ai.request.temperature"] = float(request.temperature)
    if request.top_p is not None:
        out["gen_ai.request.top_p"] = float(request.top_p)
    if request.max_tokens is not None:
        out["gen_ai.request.max_tokens"] = request.max_tokens
    if request.stop:
        out["gen_ai.request.stop_sequences"] = list(request.stop)
    if request.seed is not None:
        out["gen_ai.request.seed"] = request.seed
    if request.response_format is not None:
        out["gen_ai.output.type"] = "json"
    extra = request.extra
    for name in ("frequency_penalty", "presence_penalty", "top_k"):
        value = extra.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"gen_ai.request.{name}"] = float(value)
    if request.reasoning is not None and request.reasoning.effort:
        out["tollway.request.reasoning_effort"] = request.reasoning.effort
    if request.tools:
        out["tollway.request.tools"] = len(request.tools)
    return out


def usage_attributes(usage: Usage) -> Attributes:
    out: Attributes = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if usage.cache_read_tokens:
        out["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        out["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if usage.cache_write_1h_tokens:
        out["tollway.usage.cache_creation_1h.input_tokens"] = usage.cache_write_1h_tokens
    if usage.reasoning_tokens:
        out["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    for unit, count in usage.units.items():
        out[f"tollway.usage.units.{unit}"] = count
    return out


def cost_attributes(cost_nanos: int | None) -> Attributes:
    """The proposed cost attributes; nothing for an unpriced model (never a false 0)."""
    if cost_nanos is None:
        return {"tollway.cost.known": False}
    return {
        "gen_ai.usage.cost.amount": cost_nanos / NANOS_PER_USD,
        "gen_ai.usage.cost.currency": "USD",
        "gen_ai.usage.cost.source": "local",
        "tollway.cost.nanos_usd": cost_nanos,
    }


def response_attributes(response: Response) -> Attributes:
    """What came back: model, id, finish reason, usage, cost, latency."""
    out: Attributes = {
        "gen_ai.response.finish_reasons": [response.finish_reason],
        **usage_attributes(response.usage),
        **cost_attributes(response.cost_nanos),
    }
    if response.model:
        out["gen_ai.response.model"] = response.model
    if response.id:
        out["gen_ai.response.id"] = response.id
    if response.time_to_first_token is not None:
        out["gen_ai.response.time_to_first_chunk"] = response.time_to_first_token
    if response.attempts:
        out["tollway.failed_attempts"] = len(response.attempts)
    return out


def attribution_attributes(attribution: Attribution) -> Attributes:
    """Who the call is for, as ``tollway.<field>`` (``key`` is the virtual key's id,
    never the key), tags as ``tollway.tag.<name>``, plain extra values as
    ``tollway.extra.<name>``."""
    out: Attributes = {}
    for name, value in attribution.as_dict().items():
        if name == "tags":
            for tag, tag_value in value.items():
                out[f"tollway.tag.{tag}"] = tag_value
        elif name in _NAMED:
            out[f"tollway.{name}"] = value
        elif isinstance(value, str | int | float | bool):
            out[f"tollway.extra.{name}"] = value
    return out


_NAMED = frozenset({"org", "project", "user", "key", "framework", "agent", "node"})


def error_type(exc: BaseException) -> str:
    """``error.type``: tollway's error class (low cardinality, and documented in the
    README's error table); ``cancelled`` for a call its caller abandoned."""
    if not isinstance(exc, Exception):
        return "cancelled"
    name = type(exc).__name__
    return "cancelled" if name == "Cancelled" else name
