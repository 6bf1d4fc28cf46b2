"""The provider table: name -> dialect, base URL, auth style, key env var.

Adding an OpenAI-compatible provider is a row here, not a module: quirks are dialect
constructor options (``dialect_options``), never ``if provider == ...`` elsewhere.
A :class:`Deployment` is one concrete endpoint (provider + model + base URL + key) that
the transport can call; routing turns aliases into lists of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from typing import Any, Literal

from tollway.core import plugins
from tollway.core.dialects.base import Dialect, EmbeddingDialect, ImageDialect
from tollway.core.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    UnknownModelError,
    remember_secret,
)

AuthStyle = Literal["bearer", "x-api-key", "api-key", "x-goog-api-key", "none"]
Api = Literal["chat", "responses"]
APIS: tuple[str, ...] = ("chat", "responses")
"""The APIs an OpenAI-compatible deployment can speak (``api:`` in tollway.yaml)."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    dialect: str
    base_url: str | None
    auth: AuthStyle = "bearer"
    key_env: tuple[str, ...] = ()
    key_required: bool = True
    base_url_env: tuple[str, ...] = ()
    dialect_options: tuple[tuple[str, Any], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    docs: str = ""
    price_by_reported_model: bool = False
    """Price by the model the provider reports (Azure: the target names a deployment the
    user chose, the response names the real model)."""
    in_process: bool = False
    """Served on this machine by a registered transport instead of HTTP (no one bills
    it: it costs 0 unless a price is configured)."""
    responses_models: bool = False
    """Models that exist only on the Responses API (gpt-5-pro, codex...) are sent there
    without ``api: responses`` (OpenAI and Azure OpenAI)."""
    embeddings: str | None = None
    """The embeddings dialect (``openai``, ``gemini``, ``vertex``); None: no embeddings API."""
    embedding_options: tuple[tuple[str, Any], ...] = ()
    """Its constructor options (batch limits)."""
    images: str | None = None
    """The image-generation dialect (``openai``, ``gemini``); None: no image API."""


def _row(name: str, dialect: str, base_url: str | None, **kw: Any) -> ProviderSpec:
    return ProviderSpec(name, dialect, base_url, **kw)


_COMPAT = (("max_tokens_field", "max_tokens"),)
_OPENAI_MEDIA: dict[str, Any] = {"embeddings": "openai", "images": "openai"}
_OPENAI_EMBED: dict[str, Any] = {"embeddings": "openai"}

PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        _row("openai", "openai_chat", "https://api.openai.com/v1", key_env=("OPENAI_API_KEY",),
             base_url_env=("OPENAI_BASE_URL",), responses_models=True, docs="OpenAI", **_OPENAI_MEDIA),
        _row("azure", "openai_chat", None, auth="api-key", price_by_reported_model=True,
             responses_models=True,
             key_env=("AZURE_OPENAI_API_KEY", "AZURE_API_KEY"),
             base_url_env=("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE"),
             docs="Azure OpenAI: azure/<deployment>; base is the resource endpoint",
             **_OPENAI_MEDIA),
        _row("anthropic", "anthropic", "https://api.anthropic.com/v1", auth="x-api-key",
             key_env=("ANTHROPIC_API_KEY",), base_url_env=("ANTHROPIC_BASE_URL",),
             docs="Anthropic Messages API"),
        _row("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta",
             auth="x-goog-api-key", key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
             embeddings="gemini", images="gemini", docs="Google Gemini API"),
        _row("vertex_ai", "gemini", None, key_env=("VERTEX_AI_ACCESS_TOKEN", "GOOGLE_ACCESS_TOKEN"),
             dialect_options=(("send_call_ids", False),),
             embeddings="vertex", images="gemini",
             docs="Vertex AI (bearer token from env or a callable api_key)"),
        _row("ollama", "openai_chat", "http://127.0.0.1:11434/v1", auth="none",
             key_required=False, base_url_env=("OLLAMA_API_BASE",), dialect_options=_COMPAT,
             docs="Ollama (OpenAI-compatible endpoint)", **_OPENAI_EMBED),
        _row("vllm", "openai_chat", None, key_env=("VLLM_API_KEY",), key_required=False,
             base_url_env=("VLLM_API_BASE",), dialect_options=_COMPAT, docs="vLLM server",
             **_OPENAI_EMBED),
        _row("groq", "openai_chat", "https://api.groq.com/openai/v1", key_env=("GROQ_API_KEY",),
             dialect_options=_COMPAT, docs="Groq"),
        _row("mistral", "openai_chat", "https://api.mistral.ai/v1", key_env=("MISTRAL_API_KEY",),
             dialect_options=_COMPAT, docs="Mistral", embeddings="openai",
             embedding_options=(("dimensions_field", "output_dimension"),)),
        _row("deepseek", "openai_chat", "https://api.deepseek.com/v1",
             key_env=("DEEPSEEK_API_KEY",), dialect_options=_COMPAT, docs="DeepSeek"),
        _row("openrouter", "openai_chat", "https://openrouter.ai/api/v1",
             key_env=("OPENROUTER_API_KEY",), dialect_options=_COMPAT, docs="OpenRouter"),
        _row("together", "openai_chat", "https://api.together.xyz/v1",
             key_env=("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"), dialect_options=_COMPAT,
             docs="Together AI", **_OPENAI_MEDIA),
        _row("xai", "openai_chat", "https://api.x.ai/v1", key_env=("XAI_API_KEY",),
             dialect_options=_COMPAT, docs="xAI", images="openai"),
        _row("litellm_proxy", "openai_chat", None, key_env=("LITELLM_PROXY_API_KEY",),
             key_required=False, base_url_env=("LITELLM_PROXY_API_BASE",),
             dialect_options=_COMPAT, docs="a LiteLLM proxy", **_OPENAI_MEDIA),
        _row("openai_compatible", "openai_chat", None, key_env=("OPENAI_COMPATIBLE_API_KEY",),
             key_required=False, dialect_options=_COMPAT,
             docs="any OpenAI-compatible server (api_base required)", **_OPENAI_MEDIA),
    )
}

AZURE_DEFAULT_API_VERSION = "2024-10-21"

TransportFactory = Callable[[], Any]
"""Returns an object with the Transport interface (post / apost / stream / astream)."""

_TRANSPORTS: dict[str, TransportFactory] = {}


def register_provider(spec: ProviderSpec, transport: TransportFactory | None = None) -> None:
    """Add a row to the provider table from outside core (an in-process provider
    registers the transport that serves it). Core never imports such packages: it
    imports the module named in ``tollway.core.plugins.PROVIDER_MODULES`` the first time
    a target names that provider, and the module calls this."""
    PROVIDERS[spec.name] = spec
    if transport is not None:
        _TRANSPORTS[spec.name] = transport


def registered_transport(spec: ProviderSpec) -> Any | None:
    """The transport a provider registered (None: plain HTTP)."""
    factory = _TRANSPORTS.get(spec.name)
    return None if factory is None else factory()


def provider_spec(name: str) -> ProviderSpec | None:
    """The table row for ``name``, loading a plugin provider on first use."""
    spec = PROVIDERS.get(name)
    if spec is None:
        module = plugins.PROVIDER_MODULES.get(name)
        if module is not None:
            import_module(module)
            spec = PROVIDERS.get(name)
    return spec


def known_providers() -> list[str]:
    """Every provider name a target may use (the table and the plugins)."""
    return sorted({*PROVIDERS, *plugins.PROVIDER_MODULES})


@cache
def dialect_for(name: str, options: tuple[tuple[str, Any], ...] = ()) -> Dialect:
    """The dialect instance for a name and option set (built once, then shared)."""
    if name == "openai_chat":
        from tollway.core.dialects.openai_chat import OpenAIChatDialect

        return OpenAIChatDialect(**dict(options))
    if name == "anthropic":
        from tollway.core.dialects.anthropic import AnthropicDialect

        return AnthropicDialect(**dict(options))
    if name == "gemini":
        from tollway.core.dialects.gemini import GeminiDialect

        return GeminiDialect(**dict(options))
    if name == "openai_responses":
        from tollway.core.dialects.openai_responses import OpenAIResponsesDialect

        return OpenAIResponsesDialect(**dict(options))
    raise ConfigError(
        f"unknown dialect {name!r}; expected openai_chat, openai_responses, anthropic or gemini"
    )


def embedding_dialect_for(spec: ProviderSpec) -> EmbeddingDialect:
    """The embeddings dialect of a provider (built once), or a BadRequestError naming
    the providers that have one."""
    if spec.embeddings is None:
        raise _no_endpoint(spec, "embeddings", "embeddings")
    return _embedding_dialect(spec.embeddings, spec.embedding_options)


def image_dialect_for(spec: ProviderSpec, model: str) -> ImageDialect:
    """The image-generation dialect for a provider and model (Gemini serves Imagen
    models on ``:predict`` and its own image models on ``generateContent``)."""
    if spec.images is None:
        raise _no_endpoint(spec, "images", "image generation")
    name = spec.images
    if name == "gemini" and model.removeprefix("models/").startswith("imagen"):
        name = "imagen"
    return _image_dialect(name)


def _no_endpoint(spec: ProviderSpec, attr: str, what: str) -> BadRequestError:
    offered = sorted(name for name, row in PROVIDERS.items() if getattr(row, attr))
    return BadRequestError(
        f"provider {spec.name!r} has no {what} API in tollway; providers with one: "
        f"{', '.join(offered)}", provider=spec.name,
    )


@cache
def _embedding_dialect(name: str, options: tuple[tuple[str, Any], ...]) -> EmbeddingDialect:
    if name == "openai":
        from tollway.core.dialects.openai_media import OpenAIEmbeddingDialect

        return OpenAIEmbeddingDialect(**dict(options))
    if name in ("gemini", "vertex"):
        from tollway.core.dialects.gemini_media import (
            GeminiEmbeddingDialect,
            VertexEmbeddingDialect,
        )

        cls = GeminiEmbeddingDialect if name == "gemini" else VertexEmbeddingDialect
        return cls(**dict(options))
    raise ConfigError(f"unknown embeddings dialect {name!r}; expected openai, gemini or vertex")


@cache
def _image_dialect(name: str) -> ImageDialect:
    if name == "openai":
        from tollway.core.dialects.openai_media import OpenAIImageDialect

        return OpenAIImageDialect()
    if name == "gemini":
        from tollway.core.dialects.gemini_media import GeminiImageDialect

        return GeminiImageDialect()
    if name == "imagen":
        from tollway.core.dialects.gemini_media import ImagenDialect

        return ImagenDialect()
    raise ConfigError(f"unknown image dialect {name!r}; expected openai or gemini")


def api_for(spec: ProviderSpec, model: str, api: str | None) -> Api | None:
    """The API a deployment speaks: ``api`` when given (only OpenAI-compatible providers
    have a choice), else ``responses`` for Responses-only models on providers that serve
    them, else ``chat``. None for providers with a single native API."""
    if api is not None and api not in APIS:
        raise ConfigError(f"api must be one of {', '.join(APIS)}; got {api!r}")
    if spec.dialect != "openai_chat" or spec.in_process:
        if api is not None:
            raise ConfigError(
                f"api: {api} does not apply to provider {spec.name!r}, which speaks only its "
                f"own API ({spec.dialect}); 'api' chooses between OpenAI chat completions "
                "and the Responses API on OpenAI-compatible providers"
            )
        return None
    if api is not None:
        return api  # type: ignore[return-value]
    if spec.responses_models:
        from tollway.core.dialects.openai_responses.models import responses_only

        if responses_only(model):
            return "responses"
    return "chat"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``read`` bounds each wait for bytes (for a stream: the idle time between
    chunks); ``total`` bounds the whole call; ``connect`` the TCP/TLS handshake."""

    connect: float = 10.0
    read: float = 600.0
    total: float | None = None

    @property
    def call_read(self) -> float:
        """The read bound of a non-streamed call: ``read``, capped by ``total``."""
        return self.read if self.total is None else min(self.read, self.total)

    @classmethod
    def of(cls, value: Timeouts | float | Mapping[str, float] | None) -> Timeouts:
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, int | float):
            return cls(connect=min(10.0, float(value)), read=float(value), total=float(value))
        return cls(**dict(value))


ApiKey = str | Callable[[], str]


@dataclass(slots=True)
class Deployment:
    """One concrete endpoint. ``api_key`` may be a callable (token providers such as
    Vertex); it is never printed (repr masks it)."""

    name: str
    provider: ProviderSpec
    model: str
    api_base: str
    api_key: ApiKey | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    query: dict[str, str] = field(default_factory=dict, repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts)
    dialect: Dialect = field(default=None, repr=False)  # type: ignore[assignment]
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    price: Mapping[str, Any] | None = None
    alias: str | None = None
    api: Api | None = None
    """``chat`` or ``responses`` for OpenAI-compatible providers (None: decided by the
    model, see :func:`api_for`; after construction, the API actually used)."""
    _static_headers: dict[str, str] | None = field(default=None, repr=False)
    _urls: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        remember_secret(self.api_key)
        for value in self.headers.values():
            remember_secret(value)
        if self.dialect is None:
            self.api = api_for(self.provider, self.model, self.api)
            if self.api == "responses":
                self.dialect = dialect_for("openai_responses")
            else:
                self.dialect = dialect_for(self.provider.dialect, self.provider.dialect_options)

    def url(self, path: str) -> str:
        """The full URL of ``path`` (built once per path: the same few paths recur)."""
        urls = self._urls
        url = urls.get(path)
        if url is None:
            url = self.api_base.rstrip("/") + path
            if self.query:
                joiner = "&" if "?" in url else "?"
                url += joiner + "&".join(f"{k}={v}" for k, v in self.query.items())
            if len(urls) < 64:
                urls[path] = url
        return url

    def request_headers(self) -> dict[str, str]:
        """Auth plus static headers; cached unless the key is a callable (token refresh)."""
        cached = self._static_headers
        if cached is not None:
            return cached
        headers = {"content-type": "application/json", **self.headers}
        key: str | None
        if callable(self.api_key):
            key = self.api_key()
            remember_secret(key)  # a token provider's result is as secret as a key
        else:
            key = self.api_key
        style = self.provider.auth
        if key:
            if style == "bearer":
                headers["authorization"] = f"Bearer {key}"
            elif style != "none":
                headers[style] = key
        if not callable(self.api_key):
            self._static_headers = headers
        return headers


def split_target(target: str) -> tuple[ProviderSpec, str]:
    """``"openai/gpt-4o-mini"`` -> (openai spec, "gpt-4o-mini")."""
    provider, sep, model = target.partition("/")
    spec = provider_spec(provider) if sep else None
    if not sep or spec is None or not model:
        known = ", ".join(known_providers())
        raise UnknownModelError(
            f"cannot resolve model {target!r}: expected '<provider>/<model>' with a provider "
            f"among {known}, or an alias defined under 'models:' in tollway.yaml"
        )
    return spec, model


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def resolve_deployment(
    target: str,
    *,
    api_key: ApiKey | None = None,
    api_base: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: Timeouts | float | Mapping[str, float] | None = None,
    api_version: str | None = None,
    name: str | None = None,
    api: str | None = None,
    **extra: Any,
) -> Deployment:
    """Build a Deployment from ``provider/model`` plus explicit settings or the
    conventional environment variables. A missing key raises AuthenticationError here,
    before any request is sent."""
    spec, model = split_target(target)
    chosen = api_for(spec, model, api)
    base = api_base or _first_env(spec.base_url_env) or spec.base_url
    query: dict[str, str] = dict(spec.query)
    if spec.name == "azure":
        if not base:
            raise ConfigError(
                "azure needs the resource endpoint: pass api_base='https://<resource>.openai"
                ".azure.com' or set AZURE_OPENAI_ENDPOINT"
            )
        if chosen == "responses":
            # Azure serves Responses only on its OpenAI-compatible v1 surface: no
            # deployment in the path (the deployment name is the body's model).
            if "/openai/" not in base:
                base = f"{base.rstrip('/')}/openai/v1"
            if api_version:
                query["api-version"] = api_version
        else:
            if "/openai/" not in base:
                base = f"{base.rstrip('/')}/openai/deployments/{model}"
            query["api-version"] = (
                api_version or os.environ.get("AZURE_API_VERSION") or AZURE_DEFAULT_API_VERSION
            )
    elif spec.name == "vertex_ai" and not base:
        project = os.environ.get("VERTEXAI_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        location = os.environ.get("VERTEXAI_LOCATION", "us-central1")
        if not project:
            raise ConfigError(
                "vertex_ai needs a project: set VERTEXAI_PROJECT (and VERTEXAI_LOCATION) or "
                "pass api_base='https://<location>-aiplatform.googleapis.com/v1/projects/"
                "<project>/locations/<location>/publishers/google'"
            )
        host = "aiplatform.googleapis.com" if location == "global" else (
            f"{location}-aiplatform.googleapis.com"
        )
        base = f"https://{host}/v1/projects/{project}/locations/{location}/publishers/google"
    if not base:
        envs = " or ".join(spec.base_url_env) or "api_base"
        raise ConfigError(
            f"provider {spec.name!r} has no default base URL: pass api_base=... (or set {envs})"
        )
    key: ApiKey | None = api_key if api_key is not None else _first_env(spec.key_env)
    if key is None and spec.key_required:
        envs = " or ".join(spec.key_env)
        raise AuthenticationError(
            f"no API key for {spec.name}: set {envs} or pass api_key=...",
            provider=spec.name,
            model=model,
        )
    return Deployment(
        name=name or target,
        provider=spec,
        model=model,
        api_base=base,
        api_key=key,
        headers=dict(headers or {}),
        query=query,
        timeouts=Timeouts.of(timeout),
        api=chosen,
        **extra,
    )
