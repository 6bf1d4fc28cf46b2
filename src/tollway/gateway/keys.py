"""Virtual keys: what a key is, how its secret is made, and how its limits are written.

A key's secret (``sk-tw-`` + 43 url-safe characters: 256 random bits) is shown once, at
creation or rotation, and never stored: the store keeps its SHA-256 (a slow KDF buys
nothing against 256-bit random secrets; it only makes every request slower) and its
first characters, the *prefix*, so people can tell keys apart. The ``sk-`` start means
:func:`tollway.core.errors.scrub` masks a secret that slips into a message.

A key carries attribution (org / project / user / tags), the models it may use, budgets,
rate limits and allowed hours. The limits are written the way the CLI takes them
(``"10 usd/day"``, ``rpm 60``, ``"mon-fri 08:00-19:00 Europe/Berlin"``) and become the
core's policies scoped to ``key=<id>`` (:mod:`tollway.gateway.guard`): the gateway
never counts anything itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Any

from tollway.core.errors import ConfigError

__all__ = [
    "SECRET_PREFIX",
    "VirtualKey",
    "hash_secret",
    "new_key",
    "new_key_id",
    "new_secret",
    "parse_budget",
    "parse_expiry",
    "parse_mcp_grant",
    "parse_mcp_grants",
]

SECRET_PREFIX = "sk-tw-"
PREFIX_LENGTH = len(SECRET_PREFIX) + 6
"""How much of a secret is kept to show (``sk-tw-AbC123``): 36 bits, never enough to use."""

_UNITS = {
    "usd": "usd", "$": "usd", "dollar": "usd", "dollars": "usd",
    "token": "tokens", "tokens": "tokens",
    "input_tokens": "input_tokens", "output_tokens": "output_tokens",
    "request": "requests", "requests": "requests", "req": "requests",
}
_PERIODS = {
    "min": "minute", "minute": "minute", "hour": "hour", "h": "hour", "day": "day",
    "d": "day", "week": "week", "w": "week", "month": "month", "total": "total",
}
_BUDGET = re.compile(r"^\s*\$?\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z_$]+)?\s*(?:/|per\s+)\s*([A-Za-z]+)\s*$")
_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$")
_GRANT = re.compile(r"^[A-Za-z0-9_.*?\[\]-]+$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """The key's public id (``key_`` + 12 hex): what budgets, the ledger and logs name."""
    return "key_" + secrets.token_hex(6)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A key as stored (never its secret). ``models`` None means every alias of the
    config; ``budgets`` are strings like ``"10 usd/day"``; times are epoch seconds."""

    id: str
    prefix: str
    name: str | None = None
    org: str | None = None
    project: str | None = None
    user: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    models: tuple[str, ...] | None = None
    vector_stores: tuple[str, ...] = ()
    """The ``vector_stores:`` this key may search and list (deny by default: none;
    ``*`` for all). Keys stored before the field existed read as none."""
    vector_store_writes: tuple[str, ...] = ()
    """The stores this key may also write (add and remove files through ``/v1/vector_stores
    /{id}/files``): a separate grant, so an agent's key that searches a store cannot put
    documents into it unless named here (deny by default; ``*`` for all). A store named
    here may be read too."""
    budgets: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    hours: str | None = None
    mcp: tuple[str, ...] = ()
    """MCP grants (deny by default): ``"time"`` (every tool of server time),
    ``"docs:search"`` (one tool; ``fnmatch`` patterns allowed), ``"*"`` (everything)."""
    expires_at: float | None = None
    created_at: float = 0.0
    revoked_at: float | None = None

    def __post_init__(self) -> None:
        for text in self.budgets:
            parse_budget(text)  # a bad budget fails at creation, never at the first call
        for grant in self.mcp:
            parse_mcp_grant(grant)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def allows(self, model: str) -> bool:
        """May this key call ``model`` (an alias or ``provider/model``)? ``models`` None
        allows the config's aliases; a direct ``provider/model`` must be listed."""
        if self.models is None:
            return "/" not in model
        return model in self.models or "*" in self.models

    def mcp_allows(self, server: str, tool: str | None = None) -> bool:
        """May this key use ``tool`` of MCP server ``server`` (any of its tools when
        ``tool`` is None)? Nothing is allowed unless a grant names it."""
        for grant in self.mcp:
            granted_server, granted_tool = parse_mcp_grant(grant)
            if not fnmatchcase(server, granted_server):
                continue
            if tool is None or granted_tool is None or fnmatchcase(tool, granted_tool):
                return True
        return False

    def allows_store(self, store: str) -> bool:
        """May this key use (search, list) the configured vector store ``store``? Only
        if named, for reading or for writing."""
        return (store in self.vector_stores or "*" in self.vector_stores
                or self.allows_store_write(store))

    def allows_store_write(self, store: str) -> bool:
        """May this key add files to ``store`` and remove them? Only if named for writing."""
        return store in self.vector_store_writes or "*" in self.vector_store_writes

    def with_changes(self, **changes: Any) -> VirtualKey:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (the admin API and ``keys list --format json``): no secret, no hash."""
        out = asdict(self)
        out["tags"] = dict(self.tags)
        out["models"] = list(self.models) if self.models is not None else None
        out["budgets"] = list(self.budgets)
        out["mcp"] = list(self.mcp)
        out["vector_stores"] = list(self.vector_stores)
        out["vector_store_writes"] = list(self.vector_store_writes)
        for name in ("expires_at", "created_at", "revoked_at"):
            value = out[name]
            out[name] = None if value is None else datetime.fromtimestamp(value, UTC).isoformat()
        return out

    def spec(self) -> dict[str, Any]:
        """What the store keeps besides the id, hash, prefix and times."""
        return {
            "name": self.name, "org": self.org, "project": self.project, "user": self.user,
            "tags": dict(self.tags), "models": None if self.models is None else list(self.models),
            "vector_stores": list(self.vector_stores),
            "vector_store_writes": list(self.vector_store_writes),
            "budgets": list(self.budgets), "rpm": self.rpm, "tpm": self.tpm, "hours": self.hours,
            "mcp": list(self.mcp),
        }

    @classmethod
    def from_spec(cls, *, id: str, prefix: str, spec: Mapping[str, Any], created_at: float,
                  expires_at: float | None, revoked_at: float | None) -> VirtualKey:
        models = spec.get("models")
        return cls(
            id=id, prefix=prefix, name=spec.get("name"), org=spec.get("org"),
            project=spec.get("project"), user=spec.get("user"), tags=dict(spec.get("tags") or {}),
            models=None if models is None else tuple(models),
            vector_stores=tuple(spec.get("vector_stores") or ()),
            vector_store_writes=tuple(spec.get("vector_store_writes") or ()),
            budgets=tuple(spec.get("budgets") or ()), rpm=spec.get("rpm"), tpm=spec.get("tpm"),
            hours=spec.get("hours"), mcp=tuple(spec.get("mcp") or ()),  # older rows: none
            expires_at=expires_at, created_at=created_at,
            revoked_at=revoked_at,
        )


def parse_budget(text: str) -> tuple[Decimal, str, str]:
    """``"10 usd/day"`` -> (10, "usd", "day"); also ``"$5/month"``, ``"200000 tokens
    per day"``, ``"100 requests/hour"``. A bare number is USD."""
    match = _BUDGET.match(text)
    if match is None:
        raise ConfigError(
            f"cannot read the budget {text!r}: write '<amount> <unit>/<period>', e.g. "
            "'10 usd/day', '200000 tokens/month', '100 requests/hour'"
        )
    amount, unit_word, period_word = match.groups()
    unit = _UNITS.get((unit_word or "usd").lower())
    period = _PERIODS.get(period_word.lower())
    if unit is None:
        raise ConfigError(f"budget {text!r}: unknown unit {unit_word!r}; use usd, tokens, "
                          "input_tokens, output_tokens or requests")
    if period is None:
        raise ConfigError(f"budget {text!r}: unknown period {period_word!r}; use minute, "
                          "hour, day, week, month or total")
    try:
        limit = Decimal(amount)
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        raise ConfigError(f"budget {text!r}: {amount!r} is not a number") from None
    if unit != "usd" and limit != limit.to_integral_value():
        raise ConfigError(f"budget {text!r}: a limit in {unit} must be a whole number")
    return limit, unit, period


def parse_mcp_grant(text: str) -> tuple[str, str | None]:
    """``"time"`` -> ("time", None): every tool of a server; ``"docs:search"`` ->
    ("docs", "search"); ``fnmatch`` patterns in either part (``"*"``, ``"docs:get_*"``)."""
    server, sep, tool = text.strip().partition(":")
    if not server or (sep and not tool) or not _GRANT.match(server) or (tool and not _GRANT.match(tool)):
        raise ConfigError(
            f"cannot read the MCP grant {text!r}: write a server name ('time'), "
            "'server:tool' ('docs:search') or '*' for every server; names use letters, "
            "digits, '_', '-', '.' and the patterns * ? []"
        )
    return server, tool or None


def parse_mcp_grants(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Grants from ``"time,docs:search"`` or a list; each checked by :func:`parse_mcp_grant`."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    grants = tuple(str(item).strip() for item in items if str(item).strip())
    for grant in grants:
        parse_mcp_grant(grant)
    return grants


def parse_expiry(text: str | None, now: float | None = None) -> float | None:
    """``"30d"`` / ``"12h"`` / ``"90m"`` / ``"2w"`` from now, or an ISO date / time
    (UTC when it names no zone); None or ``"never"`` for no expiry."""
    if text is None or text.strip().lower() in ("", "never", "none"):
        return None
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now + int(match.group(1)) * _SECONDS[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"cannot read the expiry {text!r}: write a duration like 30d, 12h, 90m, 2w "
            "or a date like 2026-12-31"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def new_key(
    *, name: str | None = None, org: str | None = None, project: str | None = None,
    user: str | None = None, tags: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None, budgets: Sequence[str] = (), rpm: int | None = None,
    vector_stores: Sequence[str] = (), vector_store_writes: Sequence[str] = (),
    tpm: int | None = None, hours: str | None = None, expires_at: float | None = None,
    mcp: Sequence[str] | str | None = None, now: float | None = None,
) -> tuple[str, VirtualKey, str]:
    """A fresh ``(secret, key, secret_hash)``: give the secret to its owner, store the rest."""
    secret = new_secret()
    if hours is not None:
        from tollway.core.cost.windows import AllowedHours

        AllowedHours([hours])  # a bad schedule fails here, with the parser's own message
    key = VirtualKey(
        id=new_key_id(), prefix=secret[:PREFIX_LENGTH], name=name, org=org, project=project,
        user=user, tags=dict(tags or {}), models=None if models is None else tuple(models),
        budgets=tuple(budgets), rpm=rpm, tpm=tpm, hours=hours, mcp=parse_mcp_grants(mcp),
        vector_stores=tuple(vector_stores), vector_store_writes=tuple(vector_store_writes),
        expires_at=expires_at, created_at=time.time() if now is None else now,
    )
    return secret, key, hash_secret(secret)
