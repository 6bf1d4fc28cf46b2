"""Budget, allowed-hours and rate-limit policies: what tollway.yaml and Python say.

These are the public-input boundary (pydantic): ``BudgetPolicy(scope={"user": "each"},
limit=5, period="day")`` in Python is the same as the YAML mapping under ``budgets:``.
The engine (:mod:`tollway.core.cost.budgets`) compiles them once into plain slotted
objects, so nothing here runs on the hot path except :meth:`Scope.match`.

Scope selectors
---------------
A scope says which calls a policy counts. It is a mapping (or a short string) of
dimensions to a value or ``each``::

    scope: {project: search}              # calls of project "search"
    scope: {user: each}                   # one counter PER user ("every user gets $5/day")
    scope: {project: search, model: each} # per model, within project search
    scope: {"tag:team": ml}               # tags: tag:<name>; or  tags: {team: ml}
    scope: "project=search+model"         # the string form of the line above but one
    scope: all                            # (or omitted) every call

Dimensions: ``org``, ``project``, ``user``, ``key`` and ``tag:<name>`` come from the
call's attribution; ``model`` (``gpt-4o`` or ``openai/gpt-4o``), ``provider`` and
``deployment`` from the deployment the attempt goes to; ``alias`` from the alias the
Model was created with. A call whose attribution lacks a dimension is outside that
scope (also for ``each``: a call without a user is nobody's user budget).
Hierarchies need nothing special: a call is checked against EVERY policy it falls in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tollway.core.cost.windows import AllowedHours, zone
from tollway.core.errors import ConfigError

if TYPE_CHECKING:
    from tollway.core.hooks import CallContext
    from tollway.core.providers import Deployment

__all__ = [
    "EACH",
    "UNITS",
    "BudgetPolicy",
    "HoursPolicy",
    "RateLimitPolicy",
    "Scope",
    "SoftLimitEvent",
]

EACH = "each"
UNITS = ("usd", "tokens", "input_tokens", "output_tokens", "requests")
Unit = Literal["usd", "tokens", "input_tokens", "output_tokens", "requests"]
PeriodName = Literal["minute", "hour", "day", "week", "month", "total"]
DIMENSIONS = ("org", "project", "user", "key", "model", "provider", "deployment", "alias")
"""Scope dimensions besides ``tag:<name>``, in the order labels list them."""

_NEEDS_QUOTING = re.compile(r"[,=|%\s]")


def _quote(value: str) -> str:
    """Values inside a scope label are escaped so two different scopes never share a
    label (a user named ``"a,project=b"`` must not land in another counter)."""
    if not _NEEDS_QUOTING.search(value):
        return value
    return "".join(f"%{ord(c):02X}" if _NEEDS_QUOTING.match(c) else c for c in value)


# --------------------------------------------------------------------------- scopes


def _attr_getter(name: str) -> Callable[[CallContext, Deployment], str | None]:
    def get(ctx: CallContext, dep: Deployment) -> str | None:
        return getattr(ctx.attribution, name)

    return get


def _tag_getter(name: str) -> Callable[[CallContext, Deployment], str | None]:
    def get(ctx: CallContext, dep: Deployment) -> str | None:
        return ctx.attribution.tags.get(name)

    return get


def _model(ctx: CallContext, dep: Deployment) -> str | None:
    return dep.model


def _qualified_model(ctx: CallContext, dep: Deployment) -> str | None:
    return f"{dep.provider.name}/{dep.model}"


def _provider(ctx: CallContext, dep: Deployment) -> str | None:
    return dep.provider.name


def _deployment(ctx: CallContext, dep: Deployment) -> str | None:
    return dep.name


def _alias(ctx: CallContext, dep: Deployment) -> str | None:
    return ctx.alias


def _getter(dim: str, value: str | None) -> Callable[[CallContext, Deployment], str | None]:
    if dim.startswith("tag:"):
        return _tag_getter(dim[4:])
    if dim == "model":
        # "each" counts per provider/model: two providers' "llama-3" are different models.
        return _qualified_model if value is None or "/" in value else _model
    return {
        "provider": _provider,
        "deployment": _deployment,
        "alias": _alias,
    }.get(dim) or _attr_getter(dim)


class Scope:
    """A compiled scope: ``selectors`` are ``(dimension, value)`` pairs, value None for
    ``each``. :meth:`match` returns the call's label in this scope, or None.

    A plain slotted class (not a dataclass) so pydantic treats it as an opaque value."""

    __slots__ = ("getters", "selectors")

    def __init__(self, selectors: tuple[tuple[str, str | None], ...]) -> None:
        self.selectors = selectors
        self.getters = tuple(_getter(d, v) for d, v in selectors)

    @classmethod
    def parse(cls, spec: Any) -> Scope:
        pairs = _scope_pairs(spec)
        order = {d: i for i, d in enumerate(DIMENSIONS)}
        pairs.sort(key=lambda p: (order.get(p[0], len(order)), p[0]))
        return cls(tuple(pairs))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scope) and other.selectors == self.selectors

    def __hash__(self) -> int:
        return hash(self.selectors)

    def __repr__(self) -> str:
        return f"Scope({self.text!r})"

    @property
    def text(self) -> str:
        """Canonical spec: ``all``, ``project=search+user`` (a bare name means each)."""
        if not self.selectors:
            return "all"
        return "+".join(d if v is None else f"{d}={_quote(v)}" for d, v in self.selectors)

    @property
    def per_value(self) -> bool:
        """True when the scope counts per distinct value (has an ``each``)."""
        return any(v is None for _, v in self.selectors)

    def match(self, ctx: CallContext, dep: Deployment) -> str | None:
        """The call's label in this scope (``project=search,user=alice``; ``all`` for
        the global scope), or None when the call is outside it."""
        selectors = self.selectors
        if not selectors:
            return "all"
        getters = self.getters
        if len(selectors) == 1:  # the common case, without the list
            dim, want = selectors[0]
            got = getters[0](ctx, dep)
            if got is None or (want is not None and got != want):
                return None
            return f"{dim}={_quote(got)}"
        parts = []
        for i, (dim, want) in enumerate(selectors):
            got = getters[i](ctx, dep)
            if got is None or (want is not None and got != want):
                return None
            parts.append(f"{dim}={_quote(got)}")
        return ",".join(parts)

    def fixed_label(self) -> str:
        """The label status rows show before any call: the one label of a fixed scope,
        with ``*`` for each ``each`` dimension (``user=*``)."""
        if not self.selectors:
            return "all"
        return ",".join(f"{d}={'*' if v is None else _quote(v)}" for d, v in self.selectors)


def _check_dim(dim: str) -> str:
    dim = dim.strip()
    if dim in DIMENSIONS or (dim.startswith("tag:") and len(dim) > 4):
        return dim
    raise ValueError(
        f"unknown scope dimension {dim!r}; use {', '.join(DIMENSIONS)} or tag:<name>"
    )


def _value(raw: Any, dim: str) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(
            f"scope {dim}: expected a value or 'each', got {type(raw).__name__} "
            "(a budget per value is written 'each'; for several values write several budgets)"
        )
    text = str(raw).strip()
    if not text:
        raise ValueError(f"scope {dim}: empty value; write a value or 'each'")
    return None if text.lower() == EACH else text


def _scope_pairs(spec: Any) -> list[tuple[str, str | None]]:
    if spec is None:
        return []
    if isinstance(spec, Scope):
        return list(spec.selectors)
    pairs: dict[str, str | None] = {}
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in ("", "all", "global", "*"):
            return []
        for part in re.split(r"[+,]", text):
            part = part.strip()
            if not part:
                continue
            dim, sep, value = part.partition("=")
            dim = _check_dim(dim)
            pairs[dim] = _value(value, dim) if sep else None
        return list(pairs.items())
    if isinstance(spec, Mapping):
        for raw_dim, raw_value in spec.items():
            dim = str(raw_dim)
            if dim in ("tags", "tag") and isinstance(raw_value, Mapping):
                for tag, tag_value in raw_value.items():
                    pairs[f"tag:{tag}"] = _value(tag_value, f"tag:{tag}")
                continue
            dim = _check_dim(dim)
            pairs[dim] = _value(raw_value, dim)
        return list(pairs.items())
    raise ValueError(
        f"a scope is a mapping like {{project: search, user: each}} or a string like "
        f"'project=search+user'; got {type(spec).__name__}"
    )


# --------------------------------------------------------------------------- policies


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    name: str | None = Field(default=None, min_length=1)
    """Shown by ``tollway budgets`` and in errors; derived from the scope when omitted."""
    scope: Scope = Field(default_factory=lambda: Scope.parse(None))

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and "|" in value:
            raise ValueError("a policy name may not contain '|'")
        return value

    @field_validator("scope", mode="before")
    @classmethod
    def _parse_scope(cls, value: Any) -> Scope:
        return Scope.parse(value)


def _check_tz(value: str) -> str:
    try:
        zone(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


@dataclass(frozen=True, slots=True)
class SoftLimitEvent:
    """A budget counter's settled spend reached its soft threshold (once per period)."""

    budget: str
    scope: str
    unit: str
    limit: float
    spent: float
    threshold: float
    period_start: int
    period_end: int | None


class BudgetPolicy(_Policy):
    """A ceiling on spend (USD), tokens or requests per period on a scope.

    ``limit`` is in the ``unit``: USD (decimals allowed, e.g. ``0.50``), tokens
    (``input_tokens``, ``output_tokens`` or ``tokens`` = both) or ``requests``.
    ``soft_threshold`` (e.g. 0.8) fires ``on_soft_limit`` and a log warning once per
    period when settled spend reaches that fraction of the limit. ``unpriced``: what a
    USD budget does with a model that has no known price: ``deny`` (default: an unknown
    cost cannot be bounded) or ``allow`` (the call counts as 0 USD; the ledger still
    records it with cost unknown).
    """

    limit: Decimal = Field(ge=0, allow_inf_nan=False)
    unit: Unit = "usd"
    period: PeriodName
    timezone: str = "UTC"
    soft_threshold: float | None = Field(default=None, gt=0, le=1)
    unpriced: Literal["deny", "allow"] = "deny"
    on_soft_limit: Callable[[SoftLimitEvent], Any] | None = Field(default=None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_tz(value)

    @model_validator(mode="after")
    def _whole_units(self) -> BudgetPolicy:
        if self.unit != "usd" and self.limit != self.limit.to_integral_value():
            raise ValueError(f"a limit in {self.unit} must be a whole number, got {self.limit}")
        return self

    @property
    def id(self) -> str:
        """Stable id of this budget's counters (its name, else scope/unit/period[/tz])."""
        if self.name:
            return self.name
        tz = "" if self.timezone == "UTC" else f"/{self.timezone}"
        return f"{self.scope.text}/{self.unit}/{self.period}{tz}"


class RateLimitPolicy(_Policy):
    """Requests and/or tokens per minute on a scope, on the budget machinery: a fixed
    calendar minute per counter (so up to twice the rate can pass across a minute
    boundary); tokens are reserved at the call's estimate and settled to the real
    count."""

    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_limit(self) -> RateLimitPolicy:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("give requests_per_minute and/or tokens_per_minute")
        return self

    @property
    def id(self) -> str:
        return self.name or f"rate:{self.scope.text}"


class HoursPolicy(_Policy):
    """Weekly windows in which the scope may call models. Outside them the call is
    denied (OutsideAllowedHoursError) or, with ``action: reroute``, sent to the alias
    ``to`` instead. A reroute policy does not apply to calls already on its ``to``
    alias (so a project-wide policy cannot loop)."""

    windows: list[str] = Field(min_length=1)
    timezone: str | None = None
    holidays: list[date] = Field(default_factory=list)
    action: Literal["deny", "reroute"] = "deny"
    to: str | None = None

    @field_validator("windows", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_tz(value)

    @model_validator(mode="after")
    def _reroute_target(self) -> HoursPolicy:
        if self.action == "reroute" and not self.to:
            raise ValueError("action 'reroute' needs 'to': the alias to use outside the hours")
        if self.action == "deny" and self.to:
            raise ValueError("'to' is only used with action: reroute")
        try:
            self.schedule()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def schedule(self) -> AllowedHours:
        return AllowedHours(self.windows, self.timezone, self.holidays)

    @property
    def id(self) -> str:
        return self.name or f"hours:{self.scope.text}"

