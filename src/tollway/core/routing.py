"""Aliases -> deployments: retries, failover, fallbacks, balancing, cooldown.

``Model("smart")`` gets a :class:`Router` over the deployments tollway.yaml lists for
``smart``; ``Model("openai/gpt-4o")`` gets the deployment itself (a config still adds
its guards, ledger and prices). The router implements the ``Route`` protocol of
``core/hooks.py``: the Model hands it ``attempt(deployment)`` (one try: guard
reservation, HTTP, parsing, ledger row) and the router decides, from what each attempt
raised, where the next one goes:

- a retryable failure (429, 5xx, 529, timeouts, connection and stream errors) moves
  IMMEDIATELY to a different ready deployment; the router sleeps (exponential backoff
  with full jitter, at least the Retry-After, capped) only once every candidate of the
  round, fallbacks included, has been tried;
- a deployment that fails ``allowed_fails`` times in a row cools down (circuit
  breaker with a half-open probe), shared by every Model built from the same config;
- 401/403/404 skip that deployment for the call; 400 / context window / content filter
  end the alias (its other deployments would refuse the same request) and only a
  fallback rule for that error class continues the call;
- a guard's BudgetExceededError / OutsideAllowedHoursError skips the deployment like a
  cooling one (when no deployment can serve, the first such error itself is raised);
  an hours error's ``reroute_to`` continues the call on that alias.

Before each attempt ``ctx.alias`` is set to the alias the deployment belongs to, so a
fallback's or reroute's ledger rows and guards see the alias that actually served.

Streams need nothing special: a stream's attempt returns once its first token arrived,
so a failure before it fails over and one after it reaches the caller.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tollway.core import errors
from tollway.core._routing_health import HealthBoard
from tollway.core._routing_plan import CallPlan, Fail, FallbackRule, RoutePolicy, Sleep
from tollway.core.providers import PROVIDERS, Deployment, resolve_deployment

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.cost.attribution import Attribution
    from tollway.core.cost.pricing import PriceBook
    from tollway.core.hooks import CallContext, Guard, Route

__all__ = [
    "DirectRoute",
    "FallbackRule",
    "RoutePolicy",
    "Router",
    "build_deployments",
    "resolve_route",
    "router_for",
]

T = TypeVar("T")

_RNG = random.Random()
"""Shared by routers that are not given one (seeding a Random costs more than routing)."""


class Router:
    """Routes one alias (and its fallback chain) over a shared health board.

    ``aliases`` maps every alias the call may reach to its deployments; ``fallbacks``
    maps an alias to its ordered fallback rules. ``clock`` / ``sleep`` / ``asleep`` /
    ``rng`` are injectable so tests can drive time; the defaults are the real ones.
    """

    def __init__(
        self,
        alias: str,
        aliases: Mapping[str, Sequence[Deployment]],
        *,
        fallbacks: Mapping[str, Sequence[FallbackRule]] | None = None,
        policy: RoutePolicy | None = None,
        board: HealthBoard | None = None,
        prices: PriceBook | None = None,
        attribution: Attribution | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if alias not in aliases:
            raise errors.ConfigError(f"alias {alias!r} has no deployments")
        self.alias = alias
        self.aliases = aliases
        self.fallbacks: Mapping[str, Sequence[FallbackRule]] = fallbacks or {}
        self.policy = policy = policy or RoutePolicy()
        self.board = board or HealthBoard(retry_after_cap=policy.retry_after_cap)
        self.prices = prices
        self.attribution = attribution
        self.clock = clock
        self.sleep = sleep
        self.asleep = asleep
        self.rng = rng or _RNG
        self._costs: dict[int, int | None] = {}

    def __repr__(self) -> str:
        return f"Router({self.alias!r}, deployments={[d.name for d in self.deployments]})"

    @property
    def deployments(self) -> list[Deployment]:
        return list(self.aliases[self.alias])

    def _plan(self, ctx: CallContext) -> CallPlan:
        if self.attribution is not None:  # config defaults sit under everything else
            ctx.attribution = self.attribution.merge(ctx.attribution)
        return CallPlan(
            self.alias, self.aliases, self.fallbacks, self.policy, self.board, self.rng,
            self._cost_of, self.clock(),
        )

    def run(self, ctx: CallContext, attempt: Callable[[Deployment], T]) -> T:
        plan = self._plan(ctx)
        clock = self.clock
        while True:
            step = plan.next(clock())
            if isinstance(step, Sleep):
                self.sleep(step.seconds)
                continue
            if isinstance(step, Fail):
                raise step.error
            dep = step.deployment
            ctx.alias = plan.current  # the alias this attempt serves (fallbacks, reroutes)
            t0 = clock()
            try:
                result = attempt(dep)
            except errors.TollwayError as exc:
                if not plan.failed(dep, exc, clock()):
                    raise
                continue
            except BaseException:
                plan.abandoned(dep)
                raise
            now = clock()
            plan.succeeded(dep, now, now - t0, _tokens(result))
            return result

    async def arun(self, ctx: CallContext, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        plan = self._plan(ctx)
        clock = self.clock
        while True:
            step = plan.next(clock())
            if isinstance(step, Sleep):
                await self.asleep(step.seconds)
                continue
            if isinstance(step, Fail):
                raise step.error
            dep = step.deployment
            ctx.alias = plan.current
            t0 = clock()
            try:
                result = await attempt(dep)
            except errors.TollwayError as exc:
                if not plan.failed(dep, exc, clock()):
                    raise
                continue
            except BaseException:  # cancelled: no verdict on the deployment
                plan.abandoned(dep)
                raise
            now = clock()
            plan.succeeded(dep, now, now - t0, _tokens(result))
            return result

    def _cost_of(self, dep: Deployment) -> int | None:
        """A comparable price (nano-USD per million input + output tokens), or None."""
        key = id(dep)
        if key in self._costs:
            return self._costs[key]
        prices = self.prices
        if prices is None:
            from tollway.core.cost.pricing import default_pricebook

            prices = self.prices = default_pricebook()
        price = prices.model_price(dep.provider.name, dep.model)
        cost = None if price is None else price.input + price.output
        self._costs[key] = cost
        return cost


def _tokens(result: Any) -> int | None:
    usage = getattr(result, "usage", None)
    return getattr(usage, "total_tokens", None)


class DirectRoute:
    """A ``provider/model`` target under a config: one deployment, one attempt, errors
    reach the caller unchanged (as without a config); adds the config's attribution
    defaults and follows an hours guard's ``reroute_to`` alias."""

    def __init__(
        self,
        deployment: Deployment,
        reroute: Callable[[str], Router | None],
        attribution: Attribution | None = None,
    ) -> None:
        self.deployment = deployment
        self._reroute = reroute
        self.attribution = attribution

    @property
    def deployments(self) -> list[Deployment]:
        return [self.deployment]

    def run(self, ctx: CallContext, attempt: Callable[[Deployment], T]) -> T:
        if self.attribution is not None:
            ctx.attribution = self.attribution.merge(ctx.attribution)
        try:
            return attempt(self.deployment)
        except errors.OutsideAllowedHoursError as exc:
            route = self._rerouted(exc)
            if route is None:
                raise
        return route.run(ctx, attempt)

    async def arun(self, ctx: CallContext, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        if self.attribution is not None:
            ctx.attribution = self.attribution.merge(ctx.attribution)
        try:
            return await attempt(self.deployment)
        except errors.OutsideAllowedHoursError as exc:
            route = self._rerouted(exc)
            if route is None:
                raise
        return await route.arun(ctx, attempt)

    def _rerouted(self, exc: errors.OutsideAllowedHoursError) -> Router | None:
        target = getattr(exc, "reroute_to", None)
        return self._reroute(target) if isinstance(target, str) else None


# --------------------------------------------------------------------------- from config


def resolve_route(
    target: str, config: Any = None, **options: Any
) -> tuple[Route, str | None, tuple[Guard, ...], Any, PriceBook | None]:
    """(route, alias or None, guards, ledger, prices) for ``Model(target, ...)``.

    ``config``: a TollwaySettings, a path, a mapping (the file's shape), False (no
    config), or None (discover: ``$TOLLWAY_CONFIG``, else ``./tollway.yaml``).
    """
    settings = _settings_of(config)
    if settings is None:
        from tollway.core.model import SingleDeployment

        return SingleDeployment(resolve_deployment(target, **options)), None, (), None, None
    guards = settings.guards()
    ledger = settings.ledger_target
    prices = settings.price_book()
    if target in settings.models:
        return router_for(settings, target, **options), target, guards, ledger, prices
    try:
        dep = resolve_deployment(target, **options)
    except errors.UnknownModelError:
        raise errors.UnknownModelError(
            f"cannot resolve model {target!r}: it is not an alias under 'models:' in "
            f"{settings.source} (aliases: {', '.join(settings.models) or 'none'}) and not "
            f"'<provider>/<model>' with a known provider ({', '.join(sorted(PROVIDERS))})"
        ) from None

    def reroute(alias: str) -> Router | None:
        # The alias's own deployments: the options given for the direct target (its
        # api_base, key...) describe that target, not the alias.
        return router_for(settings, alias) if alias in settings.models else None

    return DirectRoute(dep, reroute, _attribution(settings)), None, guards, ledger, prices


def _settings_of(config: Any) -> TollwaySettings | None:
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


def router_for(settings: TollwaySettings, alias: str, **options: Any) -> Router:
    """A Router for ``alias`` sharing the config's health board. ``options`` (api_key,
    api_base, headers, timeout... given to the Model in code) apply on top of every
    deployment's settings."""
    aliases = _alias_map(settings, options)
    aliases[alias]  # build the alias's own deployments now: config mistakes surface early
    cached = settings.__dict__.get("_route_policy")
    if cached is None:
        cached = settings.__dict__["_route_policy"] = RoutePolicy.from_spec(settings.router)
    return Router(
        alias,
        aliases,
        fallbacks=_fallback_rules(settings),
        policy=cached,
        board=settings.health_board(),
        prices=settings.price_book(),
        attribution=_attribution(settings),
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
    cache: dict[Any, tuple[tuple[str | None, ...], _AliasDeployments]] = (
        settings.__dict__.setdefault("_alias_maps", {})
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
    names = settings.__dict__.get("_env_names")
    if names is None:
        found: dict[str, None] = {}
        for specs in settings.models.values():
            for spec in specs:
                provider = PROVIDERS[spec.provider]
                keys = (spec.key_env,) if spec.key_env else provider.key_env
                for name in (*keys, *provider.base_url_env):
                    found[name] = None
        names = settings.__dict__["_env_names"] = tuple(found)
    return names


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
    names: set[str] = set()
    for index, spec in enumerate(settings.models[alias]):
        path = ("models", alias, index)
        name = spec.name or _unique(spec.model, names)
        names.add(name)
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


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}#{n}" in taken:
        n += 1
    return f"{name}#{n}"


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
    rules = settings.__dict__.get("_fallback_rules")
    if rules is None:
        from tollway.core._routing_errors import error_types

        rules = {
            alias: tuple(FallbackRule(spec.to, error_types(spec.on)) for spec in specs)
            for alias, specs in settings.fallbacks.items()
        }
        settings.__dict__["_fallback_rules"] = rules
    return rules


def _attribution(settings: TollwaySettings) -> Attribution | None:
    if not settings.attribution:
        return None
    cached = settings.__dict__.get("_attribution")
    if cached is None:
        from tollway.core.cost.attribution import Attribution

        cached = Attribution.of(settings.attribution)
        settings.__dict__["_attribution"] = cached
    return cached
