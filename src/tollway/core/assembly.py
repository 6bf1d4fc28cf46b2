"""Validated settings -> the objects a call runs on: routes, guards, ledgers, prices.

The one place that turns a ``TollwaySettings`` (``core/config``) into implementations:
Routers over built Deployments sharing one health board, the budget guard over the
configured store, the price book with the config's overrides. It sits above routing,
cost, stores and config, and below the Model facade, so none of those layers has to
import another layer's factory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tollway.core import errors
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.policy import BudgetPolicy, HoursPolicy, RateLimitPolicy
from tollway.core.errors import ConfigError
from tollway.core.providers import PROVIDERS, Deployment, known_providers, resolve_deployment
from tollway.core.routing.health import HealthBoard
from tollway.core.routing.plan import FallbackRule, RoutePolicy
from tollway.core.routing.router import DirectRoute, Router, SingleDeployment
from tollway.core.stores.open import (
    GUARD_OPTIONS,
    budget_store_plan,
    open_budget_store,
    shared_ledger,
)
from tollway.core.telemetry import apply_config as apply_telemetry

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.cost.attribution import Attribution
    from tollway.core.cost.ledger import Ledger
    from tollway.core.cost.pricing import PriceBook
    from tollway.core.hooks import Guard, Route


@dataclass(frozen=True, slots=True)
class Assembled:
    """What ``Model(target, ...)`` runs on, as the config describes it."""

    route: Route
    alias: str | None = None
    guards: tuple[Guard, ...] = ()
    ledger: str | bool | None = None
    """The config's ``ledger:`` (None: the default ledger, False: off)."""
    prices: PriceBook | None = None
    attribution: Attribution | None = None
    """The config's ``attribution:`` defaults (they sit under everything else)."""


def assemble(target: str, config: Any = None, **options: Any) -> Assembled:
    """Route, alias, guards, ledger, prices and attribution defaults for ``target``.

    ``config``: a TollwaySettings, a path, a mapping (the file's shape), False (no
    config), or None (discover: ``$TOLLWAY_CONFIG``, else ``./tollway.yaml``). The config
    is always consulted: an alias becomes a Router, a direct ``provider/model`` still
    gets the config's guards, ledger and prices.
    """
    settings = settings_of(config)
    if settings is None:
        return Assembled(SingleDeployment(resolve_deployment(target, **options)))
    if settings.telemetry is not None:
        spec = settings.telemetry
        apply_telemetry(spec.enabled, spec.capture_content, spec.propagate)
    call_guards, ledger = guards(settings), settings.ledger_target
    prices, defaults = price_book(settings), _attribution(settings)
    if target in settings.models:
        return Assembled(
            router_for(settings, target, **options), target, call_guards, ledger, prices, defaults
        )
    try:
        dep = resolve_deployment(target, **options)
    except errors.UnknownModelError:
        raise errors.UnknownModelError(
            f"cannot resolve model {target!r}: it is not an alias under 'models:' in "
            f"{settings.source} (aliases: {', '.join(settings.models) or 'none'}) and not "
            f"'<provider>/<model>' with a known provider ({', '.join(known_providers())})"
        ) from None

    def reroute(alias: str) -> Router | None:
        # The alias's own deployments: the options given for the direct target (its
        # api_base, key...) describe that target, not the alias.
        return router_for(settings, alias) if alias in settings.models else None

    return Assembled(DirectRoute(dep, reroute), None, call_guards, ledger, prices, defaults)


def settings_of(config: Any) -> TollwaySettings | None:
    from tollway.core.config import TollwaySettings, load_config

    if config is False:
        return None
    if config is None:
        return load_config()
    if isinstance(config, TollwaySettings):
        return config
    if isinstance(config, str | os.PathLike):
        return load_config(config)
    if isinstance(config, Mapping):
        return TollwaySettings.from_dict(config)
    raise errors.ConfigError(
        f"config must be a TollwaySettings, a path to tollway.yaml, a mapping or False; "
        f"got {type(config).__name__}"
    )


def configured_ledger_target(config: Any = None) -> str | bool | None:
    """Where a Model built with ``config`` writes its rows (``settings_of`` finds the
    config the same way): the config's ``ledger:`` target, False when it turns the
    ledger off, None for the default ledger (no config, or no ``ledger:`` in it)."""
    settings = settings_of(config)
    return None if settings is None else settings.ledger_target


def configured_ledger(config: Any = None) -> Ledger | None:
    """The process's shared ledger that a Model built with ``config`` writes to (None
    when the config turns the ledger off): what MCP clients record tool calls in when
    they were given no ledger of their own."""
    target = configured_ledger_target(config)
    if target is False:
        return None
    return shared_ledger(target if isinstance(target, str) else None)


def router_for(settings: TollwaySettings, alias: str, **options: Any) -> Router:
    """A Router for ``alias`` sharing the config's health board. ``options`` (api_key,
    api_base, headers, timeout... given to the Model in code) apply on top of every
    deployment's settings."""
    aliases = _alias_map(settings, options)
    aliases[alias]  # build the alias's own deployments now: config mistakes surface early
    return Router(
        alias,
        aliases,
        fallbacks=_fallback_rules(settings),
        policy=route_policy(settings),
        board=health_board(settings),
        prices=price_book(settings),
    )


def _alias_map(settings: TollwaySettings, options: Mapping[str, Any]) -> _AliasDeployments:
    """Models built from the same config with the same options share their Deployment
    objects (building them is most of the cost of ``Model(alias)``), rebuilt when an
    environment variable they were built from (key, base URL) changes."""
    try:
        key = tuple(sorted((k, _frozen(v)) for k, v in options.items() if v is not None))
        hash(key)
    except TypeError:
        return _AliasDeployments(settings, options)
    cache: dict[Any, tuple[tuple[str | None, ...], _AliasDeployments]] = settings.shared(
        "alias_maps", dict
    )
    env = tuple(map(os.environ.get, _env_names(settings)))
    entry = cache.get(key)
    if entry is not None and entry[0] == env:
        return entry[1]
    aliases = _AliasDeployments(settings, options)
    cache[key] = (env, aliases)
    return aliases


def _frozen(value: Any) -> Any:
    return tuple(sorted(value.items())) if isinstance(value, Mapping) else value


def _env_names(settings: TollwaySettings) -> tuple[str, ...]:
    """Every environment variable deployments of this config are built from."""

    def build() -> tuple[str, ...]:
        found: dict[str, None] = {}
        for specs in settings.models.values():
            for spec in specs:
                provider = PROVIDERS[spec.provider]
                keys = (spec.key_env,) if spec.key_env else provider.key_env
                for name in (*keys, *provider.base_url_env):
                    found[name] = None
        return tuple(found)

    return settings.shared("env_names", build)


class _AliasDeployments(Mapping[str, tuple[Deployment, ...]]):
    """Every alias of the config, its deployments built on first use (a fallback alias
    costs nothing until a call falls back to it)."""

    def __init__(self, settings: TollwaySettings, options: Mapping[str, Any]) -> None:
        self._settings = settings
        self._options = options
        self._built: dict[str, tuple[Deployment, ...]] = {}
        self._lock = threading.Lock()

    def __getitem__(self, alias: str) -> tuple[Deployment, ...]:
        deps = self._built.get(alias)
        if deps is None:
            if alias not in self._settings.models:
                raise KeyError(alias)
            with self._lock:  # one set of objects per alias: plans track them by id()
                deps = self._built.get(alias)
                if deps is None:
                    deps = build_deployments(self._settings, alias, **self._options)
                    self._built[alias] = deps
        return deps

    def __contains__(self, alias: object) -> bool:
        return alias in self._settings.models

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings.models)

    def __len__(self) -> int:
        return len(self._settings.models)


def build_deployments(settings: TollwaySettings, alias: str, **options: Any) -> tuple[Deployment, ...]:
    """The Deployments of ``alias``. A key whose environment variable is missing does
    not fail the whole alias: that deployment fails its attempts with an
    AuthenticationError (naming the variable and the config line) and the router moves
    on to the others."""
    out: list[Deployment] = []
    names = settings.deployment_names(alias)
    for index, spec in enumerate(settings.models[alias]):
        path = ("models", alias, index)
        name = names[index]
        kwargs: dict[str, Any] = {
            "api_key": _api_key(settings, spec, path, name),
            "api_base": spec.api_base,
            "headers": dict(spec.headers),
            "timeout": spec.timeout if spec.timeout is None or isinstance(spec.timeout, float)
            else spec.timeout.as_mapping(),
            "api_version": spec.api_version,
            "name": name,
            "weight": spec.weight,
            "rpm": spec.rpm,
            "tpm": spec.tpm,
            "price": spec.price,
            "alias": alias,
            "api": spec.api,
        }
        for key, value in options.items():
            if value is None:
                continue
            if key == "headers":
                kwargs["headers"] = {**kwargs["headers"], **value}
            else:
                kwargs[key] = value
        try:
            out.append(resolve_deployment(spec.model, **kwargs))
        except errors.ConfigError as exc:
            raise settings.error(path, str(exc)) from None
    return tuple(out)


class _MissingKey:
    """Stands in for an API key whose environment variable is not set: raises a clear
    AuthenticationError when the key is needed (at the attempt, so the router can fail
    over) instead of breaking ``Model(...)`` for every deployment of the alias."""

    __slots__ = ("_message", "_model", "_name", "_provider")

    def __init__(self, message: str, provider: str, model: str, name: str) -> None:
        self._message, self._provider, self._model, self._name = message, provider, model, name

    def __call__(self) -> str:
        raise errors.AuthenticationError(
            self._message, provider=self._provider, model=self._model, deployment=self._name
        )

    def __repr__(self) -> str:
        return "<missing API key>"


def _api_key(settings: TollwaySettings, spec: Any, path: tuple[Any, ...], name: str) -> Any:
    provider = PROVIDERS[spec.provider]
    model = spec.model.partition("/")[2]
    var = spec.key_env
    if var is not None:
        value = os.environ.get(var)
        if value:
            return value
        file, line = settings.where((*path, "api_key"))
        where = f"{file}:{line}" if line else file
        return _MissingKey(
            f"environment variable {var} is not set (api_key of deployment {name!r}, {where}): "
            f"export {var}=...", provider.name, model, name,
        )
    for env in provider.key_env:
        value = os.environ.get(env)
        if value:
            return value
    if not provider.key_required:
        return None
    file, line = settings.where(path)
    where = f"{file}:{line}" if line else file
    return _MissingKey(
        f"no API key for deployment {name!r} ({where}): set {' or '.join(provider.key_env)} "
        "or add 'api_key: env:VAR'", provider.name, model, name,
    )


def _fallback_rules(settings: TollwaySettings) -> Mapping[str, tuple[FallbackRule, ...]]:
    from tollway.core.routing.classify import error_types

    return settings.shared("fallback_rules", lambda: {
        alias: tuple(FallbackRule(spec.to, error_types(spec.on)) for spec in specs)
        for alias, specs in settings.fallbacks.items()
    })


def _attribution(settings: TollwaySettings) -> Attribution | None:
    if not settings.attribution:
        return None
    from tollway.core.cost.attribution import Attribution

    return settings.shared("attribution", lambda: Attribution.of(settings.attribution))


# --------------------------------------------------------------------------- shared state


def price_book(settings: TollwaySettings) -> PriceBook | None:
    """A PriceBook with the config's price overrides (built once per settings), or None
    when the config has none (the Model then uses the shared default book)."""

    def build() -> PriceBook | None:
        overrides = settings.price_overrides()
        if not overrides:
            return None
        from tollway.core.cost.pricing import PriceBook

        return PriceBook(overrides=overrides)

    return settings.shared("price_book", build)


def guards(settings: TollwaySettings) -> tuple[Guard, ...]:
    """The budget / allowed-hours / rate-limit guards for this config (built once: their
    stores are shared by every Model built from it)."""
    return settings.shared("guards", lambda: guards_from_config(settings))


def health_board(settings: TollwaySettings) -> HealthBoard:
    """The deployment health (cooldowns, latency, in-flight) shared by every router built
    from this config; in Redis when ``router.shared_health`` is set."""

    def build() -> HealthBoard:
        spec = settings.router
        if spec.shared_health:
            from tollway.core.routing.redis_board import RedisHealthBoard

            return RedisHealthBoard(
                spec.shared_health,
                prefix=spec.shared_health_prefix,
                allowed_fails=spec.allowed_fails,
                cooldown=spec.cooldown,
                retry_after_cap=spec.retry_after_cap,
            )
        return HealthBoard(
            allowed_fails=spec.allowed_fails, cooldown=spec.cooldown,
            retry_after_cap=spec.retry_after_cap,
        )

    return settings.shared("health_board", build)


def route_policy(settings: TollwaySettings) -> RoutePolicy:
    """The ``router:`` section as the call plan reads it (seconds)."""

    def build() -> RoutePolicy:
        spec = settings.router
        return RoutePolicy(
            retries=spec.retries,
            backoff_base=spec.backoff.base,
            backoff_max=spec.backoff.max,
            retry_after_cap=spec.retry_after_cap,
            max_attempts=spec.max_attempts,
            total_timeout=spec.total_timeout,
            strategy=spec.strategy,
        )

    return settings.shared("route_policy", build)


# --------------------------------------------------------------------------- guards


def validated_policies(settings: TollwaySettings, section: str, model: type[Any]) -> list[Any]:
    """A config section as policies: a list of mappings, or a mapping of name -> mapping
    (the key becomes the policy's name)."""
    raw = {"budgets": settings.budgets, "hours": settings.hours,
           "rate_limits": settings.rate_limits}[section] or []
    items: list[tuple[str | int, Any]]
    if isinstance(raw, Mapping):
        items = []
        for name, body in raw.items():
            if isinstance(body, Mapping) and "name" not in body:
                body = {"name": str(name), **body}
            items.append((str(name), body))
    elif isinstance(raw, list):
        items = list(enumerate(raw))
    else:
        raise settings.error(
            (section,), f"'{section}' must be a list of mappings or a mapping of "
            "name -> mapping"
        )
    out = []
    for where, item in items:
        if not isinstance(item, Mapping):
            raise settings.error(
                (section, where),
                f"expected a mapping with keys such as scope, limit, period; got "
                f"{type(item).__name__}",
            )
        try:
            out.append(model.model_validate(dict(item)))
        except ValidationError as exc:
            found = exc.errors()
            # A misspelt key also makes the real one "missing": report the typo first.
            err = next((e for e in found if e["type"] == "extra_forbidden"), found[0])
            loc = tuple(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(n for n in model.model_fields if n != "on_soft_limit")
                message = f"unknown key {loc[-1]!r}; expected one of {allowed}"
            elif err["type"] == "missing":
                message = f"missing required key {loc[-1]!r}"
            elif loc and loc[-1] == "limit":
                message = (
                    f"a limit must be a number >= 0: USD (e.g. 5 or 0.50) for unit usd, a "
                    f"whole count for tokens or requests (got {err.get('input')!r})"
                )
            else:
                message = f"{message} (got {err.get('input')!r})" if loc else message
            raise settings.error((section, where, *loc), message) from None
    return out


def budgets_from_config(
    settings: TollwaySettings, *, clock: Callable[[], float] | None = None
) -> Budgets | None:
    """The Budgets guard tollway.yaml describes (None when it configures none). The
    clock is ``clock``, else the settings' own ``clock``, else real time."""
    clock = clock or settings.clock or time.time
    policies = validated_policies(settings, "budgets", BudgetPolicy)
    hours = validated_policies(settings, "hours", HoursPolicy)
    limits = validated_policies(settings, "rate_limits", RateLimitPolicy)
    store_spec = settings.budget_store
    if not (policies or hours or limits):
        return None
    guard_kw = budget_store_options(settings)
    try:
        store = open_budget_store(store_spec, ledger=settings.ledger_target)
        return Budgets(
            policies, hours=hours, rate_limits=limits, store=store,
            prices=price_book(settings), clock=clock, **guard_kw,
        )
    except ConfigError as exc:
        raise settings.error(tuple((exc.key or "budgets").split(".")),
                              str(exc).split(": ", 1)[-1] if exc.key else str(exc)) from None


def budget_store_options(settings: TollwaySettings) -> dict[str, Any]:
    """Validate ``budget_store`` without opening it (``Model()`` and ``tollway
    check-config`` share this: the same file passes or fails both) and return the guard
    options it carries (``reservation_ttl``, ``default_max_output_tokens``)."""
    store_spec = settings.budget_store
    if store_spec is not None and not isinstance(store_spec, Mapping | str):
        raise settings.error(("budget_store",),
                              "'budget_store' must be a mapping like {backend: sqlite, path: ...}")
    guard_kw: dict[str, Any] = {}
    if isinstance(store_spec, Mapping):
        for name in GUARD_OPTIONS:
            if name in store_spec:
                value = store_spec[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise settings.error(("budget_store", name),
                                          f"'{name}' must be a positive number")
                guard_kw[name] = int(value) if name == "default_max_output_tokens" else float(value)
    try:
        budget_store_plan(store_spec)
    except ConfigError as exc:
        raise settings.error(tuple((exc.key or "budget_store").split(".")),
                              str(exc).split(": ", 1)[-1] if exc.key else str(exc)) from None
    return guard_kw


def guards_from_config(settings: TollwaySettings) -> tuple[Guard, ...]:
    """The guards tollway.yaml's ``budgets`` / ``hours`` / ``rate_limits`` /
    ``budget_store`` sections describe (empty when none is configured)."""
    guard = budgets_from_config(settings)
    return () if guard is None else (guard,)
