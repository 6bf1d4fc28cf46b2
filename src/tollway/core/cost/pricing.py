"""Prices: what one call cost, in integer nano-USD, from ``genai-prices`` plus config.

A model's price is resolved ONCE per (provider, model[, deployment]) into a
:class:`ModelPrice` of integers and cached; pricing a call afterwards is a dict lookup
and a handful of integer multiplications (about a microsecond, against tens of
microseconds for ``genai_prices.calc_price``, which re-walks its unit registry with
Decimals on every call). Integers mean sums in the ledger never drift.

Only the data bundled with the installed ``genai-prices`` is used: nothing is fetched
or updated at run time (its auto-update is never started, and a snapshot another
library may have installed globally is ignored). ``genai_prices`` is imported lazily,
on the first price lookup, because loading its data takes about half a second.

Usage follows DESIGN.md: ``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning. Each token is billed exactly once, at the most
specific rate known for it: subsets (cached, reasoning, audio / image / video tokens)
at their own rates, the rest at the plain input or output rate, decomposed the way
genai-prices' ``calc_price`` decomposes them. Per-unit extras (web searches) are billed
per unit as ``Usage.units`` counts them.

A call's ``Usage.service_tier`` selects genai-prices' price variant for it (OpenAI
``priority`` / ``flex``, batch processing...): the variant's rates replace the standard
ones key by key, the rest stay standard, exactly as genai-prices resolves them.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tollway.core.cost.tool_images import tool_image_units, tool_images_cost
from tollway.core.errors import ConfigError
from tollway.core.types import NANOS_PER_USD, Usage

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot

__all__ = [
    "MODALITY_FIELDS",
    "ModelPrice",
    "PriceBook",
    "UnpricedModelWarning",
    "comparable_cost",
    "default_pricebook",
    "price_context",
    "usd_to_nanos",
]

TOKENS_PER_PRICE_UNIT = 1_000_000
"""Token rates are per million tokens (the unit every price list uses)."""
_HALF = TOKENS_PER_PRICE_UNIT // 2
_EMPTY_UNITS: Mapping[str, int] = MappingProxyType({})

MODALITY_FIELDS = (
    "input_audio_tokens",
    "input_image_tokens",
    "input_video_tokens",
    "cache_audio_read_tokens",
    "cache_image_read_tokens",
    "output_audio_tokens",
    "output_image_tokens",
    "output_video_tokens",
)
"""The Usage modality subsets a price can rate (``ModelPrice.modalities`` keys)."""
_CACHED_PART = {
    "input_audio_tokens": "cache_audio_read_tokens",
    "input_image_tokens": "cache_image_read_tokens",
}
"""Input modality -> its cached subset: when both are rated, a cached audio token is
billed as cached audio only (genai-prices' leaf decomposition)."""


class UnpricedModelWarning(UserWarning):
    """A call was made to a model with no known price; its cost is recorded as unknown."""


def usd_to_nanos(value: Decimal | int | float | str) -> int:
    """USD (a per-million-token rate, or a per-unit price) as integer nano-USD, rounded
    half up at the nano (finer than any price list publishes)."""
    scaled = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    return int((scaled * NANOS_PER_USD).to_integral_value(ROUND_HALF_UP))


# --------------------------------------------------------------------------- ModelPrice


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model's prices as integers: token rates in nano-USD per MILLION tokens,
    ``per_request`` and ``units`` in nano-USD per request / per unit.

    Rates left ``None`` fall back the way providers bill: cache reads and writes at the
    input rate, 1-hour cache writes at twice the input rate (Anthropic's published rule;
    it is the only API with that tier), reasoning at the output rate.

    ``tiers`` are ``(threshold, ModelPrice)`` pairs sorted by threshold: when a call's
    ``input_tokens`` (cache included) is ABOVE a threshold, every token of the call is
    billed at that tier's rates (the "cliff" model of Gemini 2.5 Pro >200k, GPT-5.x
    >272k, Claude long context).

    ``modalities`` rate the Usage modality subsets (:data:`MODALITY_FIELDS`, nano-USD per
    million tokens): an audio input token of Gemini 2.5 Flash costs $1.00/M, not the
    $0.30/M text rate. A modality without a rate is billed as text of its direction.

    ``max_output_tokens`` / ``context_window`` are known limits; budgets use them to bound
    a call's cost before it is made.

    Image tokens (gpt-image, Gemini image models) are the ``input_image_tokens`` /
    ``output_image_tokens`` modalities. A model priced per image lists ``units`` named
    ``image:<size>:<quality>`` (``*`` for any).
    """

    input: int
    output: int
    cache_read: int | None = None
    cache_write: int | None = None
    cache_write_1h: int | None = None
    reasoning: int | None = None
    per_request: int = 0
    units: Mapping[str, int] = field(default_factory=lambda: _EMPTY_UNITS)
    tiers: tuple[tuple[int, ModelPrice], ...] = ()
    modalities: Mapping[str, int] = field(default_factory=lambda: _EMPTY_UNITS)
    max_output_tokens: int | None = None
    context_window: int | None = None
    input_characters: int | None = None
    """nano-USD per million input characters, for models billed by the character
    (Vertex AI text embeddings): applies to ``Usage.units["input_characters"]``, on top
    of the token rates (0 for a model billed by characters only)."""

    def image_units(self) -> dict[str, int]:
        """The per-image prices (``units`` named ``image:...``)."""
        return {k: v for k, v in self.units.items() if k.startswith(IMAGE_UNIT_PREFIX)}

    def image_rate(self, size: str | None, quality: str | None) -> int | None:
        """nano-USD for one image of ``size`` x ``quality``; either left None means the
        dearest the price lists for it (what a budget must reserve). None: not priced."""
        best: int | None = None
        for name, rate in self.image_units().items():
            _, unit_size, unit_quality = [*name.split(":"), "*", "*"][:3]
            if size is not None and unit_size not in (size, "*", "default"):
                continue
            if quality is not None and unit_quality not in (quality, "*", "default"):
                continue
            if best is None or rate > best:
                best = rate
        if size is not None and quality is not None:
            exact = _image_price(self.units, f"{IMAGE_UNIT_PREFIX}{size}:{quality}")
            if exact is not None:
                return exact
        return best

    def cost_nanos(self, usage: Usage) -> int:
        """The cost of ``usage`` in nano-USD: pure integer arithmetic, rounded half up
        once per call (so the result is within half a nano-USD of the exact price)."""
        rates = self
        if self.tiers:
            n = usage.input_tokens
            for threshold, tier in reversed(self.tiers):
                if n > threshold:
                    rates = tier
                    break
        return rates._flat_cost(usage)

    def rates_for(self, input_tokens: int) -> ModelPrice:
        """The rates that apply to a call with ``input_tokens`` input tokens."""
        for threshold, tier in reversed(self.tiers):
            if input_tokens > threshold:
                return tier
        return self

    def _flat_cost(self, u: Usage) -> int:
        inp = self.input
        cache_read = u.cache_read_tokens
        cache_write = u.cache_write_tokens
        # Inconsistent provider counts (a subset above its total) are clamped so a cost
        # is never negative; every reported token is still billed once.
        uncached = u.input_tokens - cache_read - cache_write
        scaled = (uncached if uncached > 0 else 0) * inp
        if cache_read:
            rate = self.cache_read
            scaled += cache_read * (inp if rate is None else rate)
        if cache_write:
            write_rate = self.cache_write
            if write_rate is None:
                write_rate = inp
            long_writes = u.cache_write_1h_tokens
            if long_writes:
                long_rate = self.cache_write_1h
                if long_rate is None:
                    long_rate = 2 * inp
                short_writes = cache_write - long_writes
                scaled += (short_writes if short_writes > 0 else 0) * write_rate
                scaled += long_writes * long_rate
            else:
                scaled += cache_write * write_rate
        out = self.output
        reasoning = u.reasoning_tokens
        if reasoning and self.reasoning is not None and self.reasoning != out:
            visible = u.output_tokens - reasoning
            scaled += (visible if visible > 0 else 0) * out + reasoning * self.reasoning
        else:
            scaled += u.output_tokens * out
        if self.modalities and u.has_modalities:
            scaled += self._modality_delta(u)
            if scaled < 0:
                scaled = 0
        if self.input_characters is not None and u.units:
            scaled += u.units.get(CHARACTERS_UNIT, 0) * self.input_characters
        nanos = (scaled + _HALF) // TOKENS_PER_PRICE_UNIT
        if self.per_request:
            nanos += u.requests * self.per_request
        if u.units and self.units:
            nanos += self._units_cost(u.units)
        return nanos

    def _modality_delta(self, u: Usage) -> int:
        """Every modality token was counted above at its direction's rate (input, cache
        read, output); move each to its own rate. A rated cached subset is taken out of
        its input modality first, so no token is billed twice."""
        rates = self.modalities
        inp = self.input
        cached_rate = inp if self.cache_read is None else self.cache_read
        delta = 0
        for name, rate in rates.items():
            count = getattr(u, name)
            if not count:
                continue
            cached = _CACHED_PART.get(name)
            if cached is not None and cached in rates:
                count -= getattr(u, cached)
                if count <= 0:
                    continue
            if name.startswith("input_"):
                base = inp
            elif name.startswith("cache_"):
                base = cached_rate
            else:
                base = self.output
            delta += count * (rate - base)
        return delta

    def _units_cost(self, counts: Mapping[str, int]) -> int:
        total = 0
        prices = self.units
        for name, count in counts.items():
            rate = prices.get(name)
            if rate is None:
                if name.startswith(IMAGE_UNIT_PREFIX):
                    rate = _image_price(prices, name)
                else:
                    rate = prices.get(_unit_name(name))
            if rate is not None and count:
                total += count * rate
        return total


IMAGE_UNIT_PREFIX = "image:"
CHARACTERS_UNIT = "input_characters"
"""``Usage.units`` key of the billable input characters (priced per million by
``ModelPrice.input_characters``, never per unit)."""


def _image_price(prices: Mapping[str, int], name: str) -> int | None:
    """The price of an ``image:<size>:<quality>`` unit, an exact entry first, then one
    with ``*`` for the quality, the size, or both."""
    _, size, quality = [*name.split(":"), "default", "default"][:3]
    for key in (name, f"image:{size}:*", f"image:*:{quality}", "image:*:*"):
        rate = prices.get(key)
        if rate is not None:
            return rate
    return None


def _unit_name(name: str) -> str:
    """Canonical per-unit price name: ``web_search_requests`` / ``web_searches`` ->
    ``web_search``; ``file_search`` -> ``storage_search`` (genai-prices' name)."""
    key = name.lower().replace("-", "_")
    for suffix in ("_requests", "_calls", "_count"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    if key.endswith("es") and key[:-2].endswith(("search", "fetch")):
        key = key[:-2]
    elif key.endswith("s") and not key.endswith("ss"):
        key = key[:-1]
    return _UNIT_ALIASES.get(key, key)


_UNIT_ALIASES = {"file_search": "storage_search", "code_interpreter": "code_execution"}


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Prices that depend on when the call is made (a dated price change, DeepSeek's
    off-peak hours). Entries newest first; the first active one wins, else ``default``."""

    entries: tuple[tuple[str, int, int, ModelPrice], ...]
    default: ModelPrice

    def at(self, ts: float) -> ModelPrice:
        for kind, a, b, price in self.entries:
            if kind == "always":
                return price
            if kind == "since":
                if ts >= a:
                    return price
            else:  # daily window, seconds since UTC midnight
                tod = ts % 86400
                if (a <= tod < b) if a <= b else (tod >= a or tod < b):
                    return price
        return self.default

    def current(self, now: float) -> ModelPrice | _Schedule:
        """A plain ModelPrice when the answer can no longer change (the newest entry is
        unconditional or has already started), so the hot path never reads the clock."""
        kind, start, _end, price = self.entries[0]
        if kind == "always" or (kind == "since" and start <= now):
            return price
        return self


# --------------------------------------------------------------------------- genai-prices


_PROVIDER_IDS: Mapping[str, str | None] = MappingProxyType({
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "google": "google",
    "vertex_ai": "google",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "openrouter": "openrouter",
    "together": "together",
    "xai": "x-ai",
    # Proxies: the model name says whose model it is ("anthropic/claude-..." or "gpt-4o").
    "litellm_proxy": "litellm",
    "openai_compatible": None,
})
"""tollway provider -> genai-prices provider id; ``None`` = find the provider from the
model name. Providers absent here (ollama, vllm) have no public price: they are unpriced unless
configured (``"ollama/*": {"input": 0, "output": 0}``); in-process ``local`` models
cost 0 unless configured."""

_UNLISTED = object()
_DATE_SUFFIX = re.compile(r"(?:[-@](?:20\d\d-?\d\d-?\d\d|\d{4}|latest))+$")

_TOKEN_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "cache_write_5m_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
    "output_reasoning_mtok": "reasoning",
}
_MODALITY_KEYS = {
    "input_audio_mtok": "input_audio_tokens",
    "input_image_mtok": "input_image_tokens",
    "input_video_mtok": "input_video_tokens",
    "cache_audio_read_mtok": "cache_audio_read_tokens",
    "cache_image_read_mtok": "cache_image_read_tokens",
    "output_audio_mtok": "output_audio_tokens",
    "output_image_mtok": "output_image_tokens",
    "output_video_mtok": "output_video_tokens",
}
"""genai-prices modality price keys -> the Usage field they rate."""
_MODALITY_NAMES = frozenset(_MODALITY_KEYS.values())


def price_context(service_tier: str | None) -> dict[str, str] | None:
    """genai-prices' ``price_context`` for a ``Usage.service_tier``: batch is its
    ``processing`` dimension, ``fast`` both OpenAI's ``service_tier`` and Anthropic's
    ``speed``, every other tier its ``service_tier`` (None: standard)."""
    if service_tier is None:
        return None
    if service_tier == "batch":
        return {"processing": "batch"}
    if service_tier == "fast":  # OpenAI's renamed priority tier; Anthropic's fast mode
        return {"service_tier": "fast", "speed": "fast"}
    return {"service_tier": service_tier}


def _bundled_snapshot() -> DataSnapshot:
    """genai-prices' bundled data only (never a snapshot fetched by ``UpdatePrices``)."""
    global _SNAPSHOT
    if _SNAPSHOT is None:
        from genai_prices.data import providers
        from genai_prices.data_snapshot import DataSnapshot

        _SNAPSHOT = DataSnapshot(providers=providers, from_auto_update=False)
    return _SNAPSHOT


_SNAPSHOT: DataSnapshot | None = None


def _model_refs(model: str) -> Iterator[str]:
    """The names to try, most specific first: as given, without a ``models/`` or
    provider prefix, without a date / version suffix (``-20250514``, ``@20250514``)."""
    seen: set[str] = set()
    candidates = [model]
    if model.startswith("models/"):
        candidates.append(model[len("models/"):])
    if "/" in model:
        candidates.append(model.rsplit("/", 1)[1])
    for ref in list(candidates):
        stripped = _DATE_SUFFIX.sub("", ref)
        if stripped and stripped != ref:
            candidates.append(stripped)
    for ref in candidates:
        if ref and ref not in seen:
            seen.add(ref)
            yield ref


def _find_model(provider: str, model: str) -> tuple[Any, Any] | None:
    """genai-prices' (Provider, ModelInfo) for a tollway (provider, model), or None."""
    provider_id = _PROVIDER_IDS.get(provider, _UNLISTED)
    if provider_id is _UNLISTED:
        return None
    if provider_id is None and ":" in model:
        return None  # "deepseek-r1:7b" is a local build's tag, not the hosted model
    snapshot = _bundled_snapshot()
    attempts: list[tuple[str, str | None]] = []
    if provider_id is not None:
        attempts.extend((ref, provider_id) for ref in _model_refs(model))  # type: ignore[misc]
    if provider_id in ("litellm", None):
        attempts.extend((ref, None) for ref in _model_refs(model))
    for ref, pid in attempts:
        try:
            return snapshot.find_provider_model(ref, None, pid, None)
        except LookupError:
            continue
    return None


def _convert(prices: Any, context_window: int | None) -> ModelPrice | None:
    """A genai-prices ModelPrice (Decimal, possibly tiered per key) as integers."""
    from genai_prices.types import TieredPrices

    flat: dict[str, Decimal] = {}
    tiered: dict[str, Any] = {}
    per_request = 0
    units: dict[str, int] = {}
    for key, value in vars(prices).items():
        if value is None or key.startswith("_"):
            continue
        base = value.base if isinstance(value, TieredPrices) else value
        name = _TOKEN_KEYS.get(key) or _MODALITY_KEYS.get(key)
        if name is not None:
            if name in flat and key == "cache_write_5m_mtok":
                continue  # an explicit cache_write_mtok wins
            flat[name] = base
            if isinstance(value, TieredPrices):
                tiered[name] = value
        elif key == "requests_kcount":
            per_request = usd_to_nanos(base / 1000)
        elif (key.endswith("_kcount") and "search" in key) or key == "code_executions_kcount":
            units[_unit_name(key[: -len("_kcount")])] = usd_to_nanos(base / 1000)
    if "input" not in flat and "output" not in flat and not per_request:
        return None  # not priced per token or per request (images, audio seconds...)
    rates = {name: usd_to_nanos(v) for name, v in flat.items()}
    rates.setdefault("input", 0)
    rates.setdefault("output", 0)
    base_price = _with_rates(
        ModelPrice(
            input=0,
            output=0,
            per_request=per_request,
            units=MappingProxyType(units) if units else _EMPTY_UNITS,
            context_window=context_window,
        ),
        rates,
    )
    starts = sorted({tier.start for v in tiered.values() for tier in v.tiers})
    tiers = []
    for start in starts:
        changes: dict[str, int] = {}
        for name, value in tiered.items():
            applicable = value.base
            for tier in value.tiers:  # sorted ascending by genai-prices
                if tier.start <= start:
                    applicable = tier.price
            changes[name] = usd_to_nanos(applicable)
        tiers.append((start, _with_rates(base_price, changes)))
    if tiers:
        base_price = replace(base_price, tiers=tuple(tiers))
    return base_price


def _with_rates(price: ModelPrice, rates: Mapping[str, int]) -> ModelPrice:
    """``price`` with some rates replaced: ModelPrice fields (``input``, ``cache_read``...)
    and modality rates (``input_audio_tokens``...) alike."""
    plain: dict[str, Any] = {k: v for k, v in rates.items() if k not in _MODALITY_NAMES}
    modal = {k: v for k, v in rates.items() if k in _MODALITY_NAMES}
    if modal:
        plain["modalities"] = MappingProxyType({**price.modalities, **modal})
    return replace(price, **plain)


def _resolve_genai(
    provider: str, model: str, service_tier: str | None = None
) -> ModelPrice | _Schedule | None:
    found = _find_model(provider, model)
    if found is None:
        return None
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    owner, info = found
    window = info.context_window
    prices = info.prices
    variants = _variants(owner, info, service_tier)
    conditionals = prices if isinstance(prices, list) else None
    if conditionals is None and not variants:
        return _convert(prices, window)
    now = time.time()
    pairs = [(None, prices)] if conditionals is None else [(c.constraint, c.prices) for c in conditionals]
    groups: list[list[tuple[str, int, int, ModelPrice]]] = []
    default: ModelPrice | None = None
    for constraint, genai_price in pairs:
        if constraint is None:
            kind, a, b = "always", 0, 0
        elif isinstance(constraint, StartDateConstraint):
            start = datetime.combine(constraint.start_date, datetime.min.time(), UTC)
            kind, a, b = "since", int(start.timestamp()), 0
        elif isinstance(constraint, TimeOfDateConstraint):
            kind = "daily"
            a, b = _utc_seconds(constraint.start_time), _utc_seconds(constraint.end_time)
        else:
            continue
        group: list[tuple[str, int, int, ModelPrice]] = []
        if kind == "daily":  # variants as of now (no price list dates variants and hours)
            converted = _convert(_merged(genai_price, variants, now), window)
            if converted is not None:
                group.append((kind, a, b, converted))
        else:
            # A variant starting later than the conditional splits it: newest first.
            splits = sorted({s for s, _ in variants if s is not None and s > a}, reverse=True)
            for split in splits:
                converted = _convert(_merged(genai_price, variants, split), window)
                if converted is not None:
                    group.append(("since", split, 0, converted))
            converted = _convert(_merged(genai_price, variants, a if kind == "since" else None),
                                 window)
            if converted is not None:
                group.append((kind, a, b, converted))
        if group:
            default = default or _convert(_merged(genai_price, variants, now), window)
            groups.append(group)
    if default is None:
        return None
    # genai-prices: the last active conditional price takes precedence.
    entries = tuple(entry for group in reversed(groups) for entry in group)
    if len(entries) == 1 and entries[0][0] == "always":
        return entries[0][3]
    return _Schedule(entries, default)


def _variants(owner: Any, info: Any, service_tier: str | None) -> list[tuple[int | None, Any]]:
    """``(start, prices)`` of the model's price variants that apply to ``service_tier``,
    in genai-prices' order (the first one to set a key wins). Like genai-prices, none
    apply to a model priced through another provider's list (Azure's OpenAI models)."""
    context = price_context(service_tier)
    if context is None or not info.price_variants:
        return []
    if not any(info is listed for listed in owner.models):
        return []
    from genai_prices.types import StartDateConstraint

    out: list[tuple[int | None, Any]] = []
    for variant in info.price_variants:
        if not all(context.get(key) == value for key, value in variant.when.items()):
            continue
        constraint = variant.constraint
        if constraint is None:
            out.append((None, variant.prices))
        elif isinstance(constraint, StartDateConstraint):
            start = datetime.combine(constraint.start_date, datetime.min.time(), UTC)
            out.append((int(start.timestamp()), variant.prices))
        # A variant limited to hours of the day is not in any price list: not applied.
    return out


def _merged(genai_price: Any, variants: list[tuple[int | None, Any]], at: float | None) -> Any:
    """``genai_price`` with the variants active at ``at`` (None: only undated ones)
    applied key by key, as ``genai_prices.types.ModelInfo.get_prices`` does."""
    overrides: dict[str, Any] = {}
    for start, prices in variants:
        if start is not None and (at is None or at < start):
            continue
        for key, value in vars(prices).items():
            if value is not None and not key.startswith("_"):
                overrides.setdefault(key, value)
    if not overrides:
        return genai_price
    merged = copy.copy(genai_price)
    merged.__dict__.update(overrides)
    return merged


def _utc_seconds(value: Any) -> int:
    moment = datetime.combine(date(2000, 1, 3), value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.hour * 3600 + moment.minute * 60 + moment.second


# --------------------------------------------------------------------------- overrides


@cache
def _price_config() -> type[Any]:
    """The pydantic model of one price in config form, built on first use: pydantic is
    only imported when overrides are given (the no-config path stays light)."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field

    rate = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]

    class Rates(BaseModel):
        """USD per million tokens (numbers or strings), modality rates included."""

        model_config = ConfigDict(extra="forbid")

        input: rate | None = None
        output: rate | None = None
        cache_read: rate | None = None
        cache_write: rate | None = None
        cache_write_1h: rate | None = None
        reasoning: rate | None = None
        input_audio: rate | None = None
        input_image: rate | None = None
        input_video: rate | None = None
        cache_audio_read: rate | None = None
        cache_image_read: rate | None = None
        output_audio: rate | None = None
        output_image: rate | None = None
        output_video: rate | None = None

    class TierConfig(Rates):
        above_input_tokens: int = Field(ge=0)

    class PriceConfig(Rates):
        """The rates of :class:`Rates`; ``per_request`` / ``units`` in USD per request /
        per unit; ``tiers`` by input size; known limits."""

        per_request: rate | None = None
        units: dict[str, rate] = Field(default_factory=dict)
        images: dict[str, rate | dict[str, rate]] = Field(default_factory=dict)
        """USD per image by size, then quality: ``{"1024x1024": {standard: 0.04,
        hd: 0.08}}``, or one price for any quality (``{"1024x1024": 0.04}``); ``"*"``
        matches any size or quality."""
        input_characters: rate | None = None
        """USD per million input characters (Vertex AI text embeddings: 0.025)."""
        tiers: list[TierConfig] | None = None
        max_output_tokens: int | None = Field(default=None, gt=0)
        context_window: int | None = Field(default=None, gt=0)

    return PriceConfig


_RATE_FIELDS: dict[str, str] = {
    "input": "input",
    "output": "output",
    "cache_read": "cache_read",
    "cache_write": "cache_write",
    "cache_write_1h": "cache_write_1h",
    "reasoning": "reasoning",
    **{name.removesuffix("_tokens"): name for name in MODALITY_FIELDS},
}
"""Config rate name -> the ModelPrice rate it sets (``input_audio`` -> the
``input_audio_tokens`` modality rate)."""


def _config_rates(cfg: Any) -> dict[str, int]:
    """The rates a price or tier config sets, as integers keyed for :func:`_with_rates`."""
    return {
        target: usd_to_nanos(value)
        for name, target in _RATE_FIELDS.items()
        if (value := getattr(cfg, name)) is not None
    }


def _image_units(images: Mapping[str, Any]) -> dict[str, int]:
    """``images:`` config -> ``image:<size>:<quality>`` unit prices in nano-USD."""
    out: dict[str, int] = {}
    for size, value in images.items():
        if isinstance(value, Mapping):
            for quality, usd in value.items():
                out[f"{IMAGE_UNIT_PREFIX}{size}:{quality}"] = usd_to_nanos(usd)
        else:
            out[f"{IMAGE_UNIT_PREFIX}{size}:*"] = usd_to_nanos(value)
    return out


@dataclass(frozen=True, slots=True)
class _Override:
    """A validated override: a full price (``price``), or a patch onto genai-prices'."""

    complete: bool
    config: Any

    def apply(self, base: ModelPrice | None) -> ModelPrice | None:
        cfg = self.config
        if self.complete:
            start = ModelPrice(
                input=usd_to_nanos(cfg.input or 0), output=usd_to_nanos(cfg.output or 0)
            )
        elif base is None:
            return None
        else:
            start = base
        rates = _config_rates(cfg)
        changes: dict[str, Any] = {}
        if cfg.per_request is not None:
            changes["per_request"] = usd_to_nanos(cfg.per_request)
        if cfg.units or cfg.images:
            units = dict(start.units)
            units.update({_unit_name(k): usd_to_nanos(v) for k, v in cfg.units.items()})
            units.update(_image_units(cfg.images))
            changes["units"] = MappingProxyType(units)
        if cfg.input_characters is not None:
            changes["input_characters"] = usd_to_nanos(cfg.input_characters)
        if cfg.max_output_tokens is not None:
            changes["max_output_tokens"] = cfg.max_output_tokens
        if cfg.context_window is not None:
            changes["context_window"] = cfg.context_window
        price = _with_rates(replace(start, tiers=(), **changes), rates)
        if cfg.tiers is not None:
            tiers = []
            for tier in sorted(cfg.tiers, key=lambda t: t.above_input_tokens):
                tiers.append((tier.above_input_tokens, _with_rates(price, _config_rates(tier))))
            price = replace(price, tiers=tuple(tiers))
        elif not self.complete and start.tiers:
            # A patch keeps genai-prices' published tier rates; patched rates apply below
            # the first threshold, patched limits (max_output_tokens...) everywhere.
            price = replace(price, tiers=tuple((t, replace(p, **changes)) for t, p in start.tiers))
        return price


def _parse_overrides(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, _Override]:
    parsed: dict[str, _Override] = {}
    if not overrides:
        return parsed
    from pydantic import ValidationError

    schema = _price_config()
    for key, raw in overrides.items():
        if not isinstance(raw, Mapping):
            raise ConfigError(
                "a price must be a mapping like {input: 0.15, output: 0.6} (USD per million "
                f"tokens); got {type(raw).__name__}",
                key=f"prices.{key}",
            )
        try:
            cfg = schema.model_validate(dict(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"{err['msg']} (got {err.get('input')!r}); prices are USD per million tokens "
                "as non-negative numbers, e.g. {input: 0.15, output: 0.6}",
                key=f"prices.{key}.{where}" if where else f"prices.{key}",
            ) from None
        has_in, has_out = cfg.input is not None, cfg.output is not None
        if has_in != has_out:
            raise ConfigError(
                "give both 'input' and 'output' (a full price; 'output: 0' for an embedding "
                "model) or neither (a patch of the known price, e.g. only cache_read or "
                "max_output_tokens)",
                key=f"prices.{key}",
            )
        # Per-image or per-character prices alone are a full price too: no one lists
        # dall-e, Imagen or Vertex text embeddings per token, so there is nothing to patch.
        by_unit = bool(cfg.images) or cfg.input_characters is not None
        complete = has_in or (by_unit and not any(
            getattr(cfg, name) is not None for name in _RATE_FIELDS
        ))
        parsed[str(key)] = _Override(complete=complete, config=cfg)
    return parsed


# --------------------------------------------------------------------------- PriceBook


_MISSING = object()
_Entry = ModelPrice | _Schedule | None


class PriceBook:
    """Prices calls. ``overrides`` map ``"provider/model"``, a bare model / alias /
    deployment name, or ``"provider/*"`` to a price in config form (see
    ``PriceConfig`` in :func:`_price_config`); they win over genai-prices. A full
    override (``input`` and ``output``) is the price at every service tier; a patch
    applies on top of genai-prices' rates for the call's tier. Thread-safe."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._overrides = _parse_overrides(overrides)
        self._cache: dict[tuple[str, str, str | None, str | None], _Entry] = {}
        """Hot path: the price as of now (a plain ModelPrice unless it still depends on
        the clock), per (provider, model, deployment, service tier)."""
        self._history: dict[tuple[str, str, str | None, str | None], _Schedule] = {}
        """Every dated price of a model, for pricing at a given past time."""
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()

    def price(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        deployment: str | None = None,
        at: datetime | None = None,
    ) -> int | None:
        """The cost of a call in nano-USD, or None when the model has no known price
        (warned once per (provider, model); never a silent 0). The rates are those of
        ``usage.service_tier``. ``at``: price as of that time (default: now), e.g. to
        re-price old ledger rows."""
        tier = usage.service_tier
        if at is not None:
            price = self.model_price(
                provider, model, deployment=deployment, at=at, service_tier=tier
            )
        else:
            entry: Any = self._cache.get((provider, model, deployment, tier), _MISSING)
            if entry is _MISSING:
                entry = self._resolve(provider, model, deployment, tier)
            if entry is None:
                return None
            price = entry if entry.__class__ is ModelPrice else entry.at(time.time())
        if price is None:
            return None
        if usage.units and not self._images_priced(provider, model, price, usage):
            return None
        cost = price.cost_nanos(usage)
        if usage.units and tool_image_units(usage.units):
            images = self._tool_images(provider, model, usage, at)
            if images is None:
                return None
            cost += images
        return cost

    def _tool_images(
        self, provider: str, model: str, usage: Usage, at: datetime | None
    ) -> int | None:
        """What the images a built-in tool made cost (:mod:`.tool_images`), at the
        image model's price from this book; None (warned once) when unknown."""
        cost = tool_images_cost(
            usage.units,
            lambda image_model: self.model_price(
                provider, image_model, at=at, service_tier=usage.service_tier
            ),
        )
        if cost is None:
            names = ", ".join(sorted(tool_image_units(usage.units)))
            if (provider, names) not in self._warned:
                self._warned.add((provider, names))
                warnings.warn(
                    f"no price known for the images {provider}/{model} made with its "
                    f"image tool ({names}): the call is recorded with cost unknown. Add "
                    "the image model's prices under 'prices' in tollway.yaml: "
                    f"'{provider}/<image model>': {{images: {{'<size>': {{'<quality>': "
                    "<USD per image>}}}}",
                    UnpricedModelWarning,
                    stacklevel=3,
                )
        return cost

    def _images_priced(self, provider: str, model: str, price: ModelPrice, usage: Usage) -> bool:
        """Whether every per-image unit of ``usage`` has a price (an image of a size or
        quality the price does not list makes the cost unknown, never $0)."""
        for name in usage.units:
            if name.startswith(IMAGE_UNIT_PREFIX) and _image_price(price.units, name) is None:
                if (provider, name) not in self._warned:
                    self._warned.add((provider, name))
                    warnings.warn(
                        f"no price known for {provider}/{model} images {name[6:]!r} (size:"
                        f"quality): the call is recorded with cost unknown. Add it under "
                        f"'prices' in tollway.yaml: '{provider}/{model}': {{images: "
                        "{'<size>': {'<quality>': <USD per image>}}}",
                        UnpricedModelWarning,
                        stacklevel=3,
                    )
                return False
        return True

    def model_price(
        self,
        provider: str,
        model: str,
        *,
        deployment: str | None = None,
        at: datetime | None = None,
        service_tier: str | None = None,
    ) -> ModelPrice | None:
        """The model's prices at ``service_tier`` (None: standard) as of ``at`` (default
        now), or None when unknown."""
        key = (provider, model, deployment, service_tier)
        entry: Any = self._cache.get(key, _MISSING)
        if entry is _MISSING:
            entry = self._resolve(provider, model, deployment, service_tier)
        if at is not None and key in self._history:
            return self._history[key].at(at.timestamp())
        if entry is None or entry.__class__ is ModelPrice:
            return entry
        return entry.at(time.time())

    def _resolve(
        self, provider: str, model: str, deployment: str | None, tier: str | None
    ) -> _Entry:
        with self._lock:
            key = (provider, model, deployment, tier)
            if key in self._cache:
                return self._cache[key]
            entry = self._lookup(provider, model, deployment, tier)
            if isinstance(entry, _Schedule):
                self._history[key] = entry
                entry = entry.current(time.time())
            self._cache[key] = entry
            if entry is None and (provider, model) not in self._warned:
                self._warned.add((provider, model))
                warnings.warn(
                    f"no price known for {provider}/{model}: its calls are recorded with cost "
                    f"unknown. Add a price under 'prices' in tollway.yaml, e.g. "
                    f"'{provider}/{model}': {{input: <USD per 1M tokens>, output: ...}}",
                    UnpricedModelWarning,
                    stacklevel=3,
                )
            return entry

    def _lookup(
        self, provider: str, model: str, deployment: str | None, tier: str | None
    ) -> _Entry:
        names = [f"{provider}/{model}", model, f"{provider}/*"]
        if deployment:
            names.insert(0, deployment)
        override = next((self._overrides[n] for n in names if n in self._overrides), None)
        if override is not None and override.complete:
            return override.apply(None)
        base = FREE if _in_process(provider) else _resolve_genai(provider, model, tier)
        if override is None:
            return base
        if isinstance(base, _Schedule):
            return _Schedule(
                tuple((k, a, b, override.apply(p)) for k, a, b, p in base.entries),  # type: ignore[misc]
                override.apply(base.default),  # type: ignore[arg-type]
            )
        return override.apply(base)


def comparable_cost(price: ModelPrice) -> int:
    """What one reference call (1,000 input and 1,000 output tokens, one request) costs
    at ``price``'s base rates, in nano-USD x 1,000 (unrounded, so $0.01/M and $0.02/M
    still differ): how ``strategy: cost`` ranks deployments."""
    return (price.input + price.output) + price.per_request * 1_000


def _in_process(provider: str) -> bool:
    """Providers that run on this machine: no one bills them, so they cost 0 unless a
    price is configured (unlike ollama / vllm servers, which may be someone's paid
    endpoint)."""
    from tollway.core.providers import provider_spec

    spec = provider_spec(provider)
    return spec is not None and spec.in_process
FREE = ModelPrice(input=0, output=0)

_DEFAULT: PriceBook | None = None


def default_pricebook() -> PriceBook:
    """The process-wide PriceBook without overrides (genai-prices only), shared so every
    Model resolves each model's price once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PriceBook()
    return _DEFAULT
