"""The shape of tollway.yaml, as pydantic models (``extra="forbid"`` everywhere).

Only the sections routing owns are modelled in depth (``models``, ``router``,
``fallbacks``, ``ledger``); the sections other parts of tollway own (``budgets``,
``hours``, ``rate_limits``, ``budget_store``, ``mcp``, ``prices``) are checked for their
container type here and validated by their owners, who report errors through
:meth:`tollway.core.config.TollwaySettings.error` so every message still names the file
and line. Imported only when a config file exists, so a Model without one never pays
for pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tollway.core.providers import known_providers, provider_spec
from tollway.core.routing.balance import Strategy
from tollway.core.routing.classify import DEFAULT_FALLBACK_ON, error_types

ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")

_Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutSpec(_Section):
    """Seconds: ``connect`` (handshake), ``read`` (each wait for bytes; for a stream the
    idle time between chunks), ``total`` (the whole attempt)."""

    connect: _Seconds | None = None
    read: _Seconds | None = None
    total: _Seconds | None = None

    def as_mapping(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class DeploymentSpec(_Section):
    """One concrete endpoint behind an alias."""

    model: str
    """``provider/model``, e.g. ``openai/gpt-4o-mini``."""
    name: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    """``env:VAR`` only: keys never live in the file."""
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    timeout: _Seconds | TimeoutSpec | None = None
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    price: dict[str, Any] | None = None
    api: Literal["chat", "responses"] | None = None
    """OpenAI-compatible providers: chat completions or the Responses API (default: chat,
    except models that exist only on Responses, on openai and azure)."""

    @field_validator("model")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        provider, sep, model = value.partition("/")
        if not sep or not provider or not model:
            raise ValueError(
                f"expected '<provider>/<model>' such as 'openai/gpt-4o-mini', got {value!r}"
            )
        if provider_spec(provider) is None:
            raise ValueError(
                f"unknown provider {provider!r} in {value!r}; expected one of "
                f"{', '.join(known_providers())}"
            )
        return value

    @field_validator("api_key")
    @classmethod
    def _env_reference_only(cls, value: str) -> str:
        if ENV_REF.match(value):
            return value
        # Never echo the value: it may be a real key.
        raise ValueError(
            "API keys must not be written in tollway.yaml (and a ${VAR} reference would "
            "copy the key into it): write 'api_key: env:VAR_NAME' and set VAR_NAME in the "
            "environment"
        )

    @field_validator("api_base")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith(("http://", "https://")):
            return value
        provider = str(info.data.get("model", "")).partition("/")[0]
        spec = provider_spec(provider)
        if spec is not None and spec.in_process:
            return value  # e.g. 'local://', a file:// URL or a path to a .gguf file
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")

    @field_validator("api")
    @classmethod
    def _api_applies(cls, value: str, info: ValidationInfo) -> str:
        provider = str(info.data.get("model", "")).partition("/")[0]
        spec = provider_spec(provider)
        if spec is not None and (spec.dialect != "openai_chat" or spec.in_process):
            raise ValueError(
                f"api: {value} does not apply to provider {provider!r}, which speaks only its "
                f"own API; 'api' chooses chat completions or the Responses API on "
                "OpenAI-compatible providers"
            )
        return value

    @property
    def provider(self) -> str:
        return self.model.partition("/")[0]

    @property
    def key_env(self) -> str | None:
        """The environment variable named by ``api_key: env:VAR`` (None when unset)."""
        match = ENV_REF.match(self.api_key or "")
        return match.group(1) if match else None


class BackoffSpec(_Section):
    """Exponential backoff with full jitter: the n-th retry round waits a random time in
    ``[0, min(max, base * 2**n)]`` (seconds)."""

    base: float = Field(0.5, ge=0, allow_inf_nan=False)
    max: float = Field(8.0, ge=0, allow_inf_nan=False)


class RouterSpec(_Section):
    retries: int = Field(2, ge=0)
    """Retry ROUNDS after the first: each round tries every healthy deployment (and the
    fallback chain) once before the router sleeps."""
    backoff: BackoffSpec = Field(default_factory=lambda: BackoffSpec.model_validate({}))
    retry_after_cap: float = Field(30.0, ge=0, allow_inf_nan=False)
    cooldown: float = Field(30.0, ge=0, allow_inf_nan=False)
    allowed_fails: int = Field(3, ge=1)
    strategy: Strategy = "weighted"
    max_attempts: int = Field(10, ge=1)
    total_timeout: _Seconds | None = None
    shared_health: str | None = None
    """A ``redis://`` URL: cooldowns are then visible to every process using it."""
    shared_health_prefix: str = Field("tollway:health", min_length=1)
    """Key prefix in that Redis (separate environments sharing one Redis)."""

    @field_validator("shared_health")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis:// URL, got {value!r}")
        return value


class FallbackSpec(_Section):
    to: str
    on: tuple[str, ...] = DEFAULT_FALLBACK_ON

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("on")
    @classmethod
    def _known_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("expected at least one error group, e.g. [rate_limit, server]")
        error_types(value)
        return value


class LedgerSpec(_Section):
    url: str | None = None
    """A path, ``sqlite:///path``, ``memory`` or ``postgresql://...`` (default: the
    embedded SQLite file)."""
    enabled: bool = True


class TelemetrySpec(_Section):
    """OpenTelemetry GenAI spans and metrics (the ``otel`` extra). Off unless enabled
    here, by ``$TOLLWAY_OTEL=1`` or from code; ``$TOLLWAY_OTEL=0`` keeps it off."""

    enabled: bool = False
    capture_content: bool = False
    """Record prompts, outputs and tool arguments / results on the spans (sensitive)."""
    propagate: bool = True
    """Send the call span's context upstream (a ``traceparent`` header to the provider)."""


class ChunkingSpec(_Section):
    """How ``add`` cuts texts for the stores tollway embeds for (see
    :mod:`tollway.vectors.chunking`): ``size`` characters at most per chunk (about a
    quarter as many tokens), ``overlap`` characters repeated from the previous chunk."""

    size: int = Field(3200, ge=16, le=200_000)
    overlap: int = Field(400, ge=0)

    @field_validator("overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("size", 3200)
        if value >= size:
            raise ValueError(f"overlap ({value}) must be smaller than size ({size})")
        return value


VectorBackendName = Literal["sqlite", "chroma", "openai", "llama_stack"]


class VectorStoreSpec(_Section):
    """One named store of ``vector_stores:``. ``backend`` chooses where chunks live;
    ``embedding`` (a model alias or ``provider/model``) is required for the backends
    tollway embeds for (``sqlite``, ``chroma``); managed backends (``openai``,
    ``llama_stack``) embed on their side and take ``base_url``, a key and an existing
    ``vector_store_id`` (or create one)."""

    backend: VectorBackendName = "sqlite"
    embedding: str | None = None
    dimensions: int | None = Field(None, gt=0)
    """Asked of the embedding model (models that can shorten their vectors)."""
    path: str | None = None
    """``sqlite``: the database file (default ``~/.tollway/vectors/<store>.db``)."""
    url: str | None = None
    """``chroma``: the server, e.g. ``http://127.0.0.1:8000``."""
    collection: str | None = None
    """``chroma``: the collection (``sqlite``: the table); default the store name."""
    base_url: str | None = None
    api_key: str | None = None
    """``env:VAR`` only, like a deployment's key."""
    api_key_env: str | None = None
    vector_store_id: str | None = None
    chunking: ChunkingSpec | None = None
    """Overrides of the default chunking (ignored by managed backends, which chunk)."""
    timeout: _Seconds = 30.0
    batch_size: int = Field(128, ge=1, le=2048)
    """Texts per embedding call while ingesting (each batch is reserved and recorded)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Backend-specific settings passed through to the backend."""

    @field_validator("api_key")
    @classmethod
    def _env_reference_only(cls, value: str) -> str:
        if ENV_REF.match(value):
            return value
        raise ValueError(
            "API keys must not be written in tollway.yaml: write 'api_key: env:VAR_NAME' "
            "(or 'api_key_env: VAR_NAME') and set VAR_NAME in the environment"
        )

    @field_validator("url", "base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value.startswith(("http://", "https://")):
            return value
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")

    @field_validator("embedding")
    @classmethod
    def _embedding_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an embedding model alias or 'provider/model'")
        return value

    def model_post_init(self, __context: Any) -> None:
        if self.backend in ("sqlite", "chroma") and not self.embedding:
            raise ValueError(
                f"backend {self.backend} stores vectors tollway computes: set 'embedding:' "
                "to an embedding model alias or 'provider/model'"
            )
        if self.backend == "chroma" and not self.url:
            raise ValueError("backend chroma needs 'url:' (the server, e.g. "
                             "http://127.0.0.1:8000)")

    @property
    def key_env(self) -> str | None:
        """The variable holding the managed backend's key (``api_key: env:VAR`` or
        ``api_key_env``)."""
        match = ENV_REF.match(self.api_key or "")
        return match.group(1) if match else self.api_key_env


_RawSection = list[Any] | dict[str, Any] | None


def _deployment_list(value: Any) -> Any:
    """``alias: provider/model`` and ``alias: {model: ...}`` are shorthands for a list."""
    if isinstance(value, str):
        return [{"model": value}]
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [{"model": item} if isinstance(item, str) else item for item in value]
    return value


def _fallback_list(value: Any) -> Any:
    """``alias: other`` / ``alias: [other, {to: x, on: [...]}]`` / ``alias: {to: ...}``."""
    if isinstance(value, str):
        return [{"to": value}]
    if isinstance(value, Mapping):
        return [fix_on_key(value)]
    if isinstance(value, list):
        return [
            {"to": item} if isinstance(item, str) else fix_on_key(item) for item in value
        ]
    return value


def fix_on_key(rule: Any) -> Any:
    """YAML 1.1 reads an unquoted ``on:`` key as the boolean True; in a fallback rule it
    can only mean ``on``."""
    if isinstance(rule, Mapping) and True in rule and "on" not in rule:
        return {("on" if k is True else k): v for k, v in rule.items()}
    return rule


class ConfigFile(_Section):
    """The whole file. Unknown top-level sections are errors (a typo never silently
    disables a budget)."""

    models: dict[str, Annotated[list[DeploymentSpec], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    router: RouterSpec = Field(default_factory=lambda: RouterSpec.model_validate({}))
    fallbacks: dict[str, list[FallbackSpec]] = Field(default_factory=dict)
    budgets: _RawSection = None
    hours: _RawSection = None
    rate_limits: _RawSection = None
    budget_store: dict[str, Any] | str | None = None
    ledger: bool | str | LedgerSpec | None = None
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mcp: dict[str, Any] | None = None
    attribution: dict[str, Any] | None = None
    gateway: dict[str, Any] | None = None
    """``tollway gateway``'s section, validated by ``tollway.gateway.config``."""
    telemetry: TelemetrySpec | None = None
    vector_stores: dict[str, VectorStoreSpec] = Field(default_factory=dict)
    """Named vector stores (``tollway.VectorStore(name)``, the gateway's
    ``/v1/vector_stores``)."""

    @field_validator("models", mode="before")
    @classmethod
    def _models_shorthands(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: _deployment_list(v) for k, v in value.items()}
        return value

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _fallback_shorthands(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: _fallback_list(v) for k, v in value.items()}
        return value


EXPECTED: dict[str, str] = {
    "timeout": "a number of seconds or a mapping {connect, read, total}",
    "budgets": "a list or a mapping",
    "hours": "a list or a mapping",
    "rate_limits": "a list or a mapping",
    "budget_store": "a mapping like {backend: sqlite, path: ...} or a store URL",
    "ledger": "false, a ledger URL or path, or a mapping {url: ...}",
    "gateway": "a mapping like {keys: ..., admin_key_env: ...}",
    "on": "a list of error groups or error class names",
    "total_timeout": "a number of seconds greater than 0",
}
"""What a field expects, in words, for fields whose type is a union (pydantic would
report one line per alternative)."""

__all__ = [
    "EXPECTED",
    "BackoffSpec",
    "ChunkingSpec",
    "ConfigFile",
    "DeploymentSpec",
    "FallbackSpec",
    "LedgerSpec",
    "RouterSpec",
    "Strategy",
    "TelemetrySpec",
    "TimeoutSpec",
    "VectorBackendName",
    "VectorStoreSpec",
    "fix_on_key",
]
