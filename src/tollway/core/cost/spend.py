"""Spend: the ledger summed by any attribution key, over a time range.

``spend(group_by=("org", "project"), since="2026-11-01")`` returns one SpendRow per
group with calls, tokens and cost (nano-USD sums of the known costs, and how many calls
had no price, so an unknown cost is never mistaken for a free one). Both stores run the
same GROUP BY, built here from a small per-store :class:`SQLDialect`; ordering is done
here too, so SQLite and PostgreSQL give identical results.

Times are UTC; ``since`` is inclusive, ``until`` exclusive; a bare date means midnight
UTC (``since=2026-11-01, until=2026-12-01`` is November). Time buckets (``hour``,
``day``, ``month``) are UTC too, labelled ``2026-11-05T09``, ``2026-11-05``, ``2026-11``.

:class:`CallsQuery` reads the rows themselves (the latest calls, one trace) with the
same filters, for the dashboard's calls and trace pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tollway.core.errors import ConfigError
from tollway.core.types import NANOS_PER_USD

if TYPE_CHECKING:
    from tollway.core.cost.ledger import Column

__all__ = [
    "BUCKETS", "GROUP_KEYS", "CallsQuery", "SQLDialect", "SpendQuery", "SpendRow", "parse_time",
]

BUCKETS = ("hour", "day", "month")
"""The time-bucket group keys (UTC)."""

GROUP_KEYS = (
    "org", "project", "user", "key", "model", "provider", "deployment", "alias",
    "framework", "agent", "node", "status", "kind", *BUCKETS,
)
"""Keys to group or filter by; also ``tag:<name>`` for one tag's value."""

_COLUMN_KEYS = frozenset(GROUP_KEYS) - set(BUCKETS)
MAX_CALLS = 1000
"""The most rows one :class:`CallsQuery` returns (a page, not an export)."""
_TAG_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

METRICS = (
    "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_nanos", "unpriced_calls",
)


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One group's totals. ``calls`` counts every row (failed calls and MCP tool calls
    included: group or filter by ``status`` / ``kind`` to split them); ``cost_nanos``
    sums the known costs; ``unpriced_calls`` counts successful model calls whose price
    was unknown (their cost is unknown, not zero)."""

    group: Mapping[str, str | None]
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int = 0
    unpriced_calls: int = 0

    @property
    def cost(self) -> Decimal:
        """Known cost in USD (exact: integer nanos over 10^9)."""
        return Decimal(self.cost_nanos) / NANOS_PER_USD

    def as_dict(self) -> dict[str, Any]:
        """Group values then metrics, ``cost`` as an exact decimal string."""
        out: dict[str, Any] = dict(self.group)
        for name in METRICS:
            out[name] = getattr(self, name)
        out["cost"] = format(self.cost, "f")
        return out


@dataclass(frozen=True, slots=True)
class SpendQuery:
    """A validated spend query (what a store's ``query`` receives)."""

    group_by: tuple[str, ...] = ("model",)
    since: datetime | None = None
    until: datetime | None = None
    filters: tuple[tuple[str, tuple[str | None, ...]], ...] = ()

    @classmethod
    def build(
        cls,
        group_by: Sequence[str] | str = ("model",),
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> SpendQuery:
        keys = _split(group_by)
        for key in keys:
            _check_key(key, "group_by")
        return cls(
            group_by=tuple(keys),
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            filters=_parse_filters(filters),
        )


@dataclass(frozen=True, slots=True)
class CallsQuery:
    """Ledger rows themselves: the newest ``limit`` in ``[since, until)`` matching
    ``filters`` (newest first), or every row of one ``trace_id`` (oldest first)."""

    since: datetime | None = None
    until: datetime | None = None
    filters: tuple[tuple[str, tuple[str | None, ...]], ...] = ()
    trace_id: str | None = None
    limit: int = 100

    @classmethod
    def build(
        cls,
        *,
        since: datetime | date | str | None = None,
        until: datetime | date | str | None = None,
        filters: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        limit: int = 100,
    ) -> CallsQuery:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CALLS:
            raise ConfigError(f"limit must be a whole number from 1 to {MAX_CALLS}; got "
                              f"{limit!r}", key="limit")
        if trace_id is not None and (not isinstance(trace_id, str) or not trace_id):
            raise ConfigError("trace_id must be a non-empty string", key="trace_id")
        return cls(parse_time(since, "since"), parse_time(until, "until"),
                   _parse_filters(filters), trace_id, limit)


def _parse_filters(
    filters: Mapping[str, Any] | None,
) -> tuple[tuple[str, tuple[str | None, ...]], ...]:
    parsed: list[tuple[str, tuple[str | None, ...]]] = []
    for key, value in (filters or {}).items():
        _check_key(key, "filters")
        if value is None or isinstance(value, (str, int)):
            values: tuple[str | None, ...] = (None if value is None else str(value),)
        else:
            values = tuple(None if v is None else str(v) for v in value)
        if not values:
            raise ConfigError(f"filter {key!r} has no values", key="filters")
        parsed.append((key, values))
    return tuple(parsed)


def _split(value: Sequence[str] | str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    keys = [k.strip() for k in items if k and k.strip()]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"group_by lists a key twice: {keys}", key="group_by")
    return keys


def _check_key(key: str, where: str) -> None:
    if key in GROUP_KEYS:
        return
    if key.startswith("tag:") and _TAG_NAME.match(key[4:]):
        return
    raise ConfigError(
        f"cannot {'group' if where == 'group_by' else 'filter'} by {key!r}: use one of "
        f"{', '.join(GROUP_KEYS)} or tag:<name> (letters, digits, _ . : -)",
        key=where,
    )


def parse_time(value: datetime | date | str | None, name: str = "time") -> datetime | None:
    """A UTC datetime from a datetime, a date (midnight UTC), an ISO string, or a
    relative ``30m`` / ``12h`` / ``7d`` / ``2w`` (that long before now)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip()
    relative = _RELATIVE.match(text)
    if relative:
        delta = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return datetime.now(UTC) - delta
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a time: use 2026-11-01, 2026-11-01T08:00:00+01:00 or 7d / 12h",
            key=name,
        ) from None
    return parse_time(parsed, name)


# --------------------------------------------------------------------------- SQL


@dataclass(frozen=True, slots=True)
class SQLDialect:
    """What differs between the stores' SQL: placeholders, the table, hour / day /
    month buckets (UTC text labels), tag extraction, and how a time bound is passed."""

    table: str
    placeholder: str
    hour: str
    day: str
    month: str
    tag: Callable[[str], tuple[str, Any]]
    """tag name -> (SQL expression with one placeholder, its parameter)."""
    time_param: Callable[[datetime], Any]
    quote: Callable[[str], str] = field(default=lambda name: f'"{name}"')


def build_sql(query: SpendQuery, dialect: SQLDialect) -> tuple[str, list[Any]]:
    """The aggregate SELECT for ``query``: one row per group, group values first (in
    ``group_by`` order) then :data:`METRICS`."""
    q = dialect.quote
    params: list[Any] = []
    select = [f"{_expr(key, dialect, params)} AS {q(key)}" for key in query.group_by]
    select += [
        "COUNT(*)",
        f"COALESCE(SUM({q('input_tokens')}), 0)",
        f"COALESCE(SUM({q('output_tokens')}), 0)",
        f"COALESCE(SUM({q('cache_read_tokens')}), 0)",
        f"COALESCE(SUM({q('cache_write_tokens')}), 0)",
        f"COALESCE(SUM({q('reasoning_tokens')}), 0)",
        f"COALESCE(SUM({q('cost_nanos')}), 0)",
        f"COALESCE(SUM(CASE WHEN {q('cost_nanos')} IS NULL AND {q('kind')} <> 'tool' "
        f"AND {q('status')} = 'ok' THEN 1 ELSE 0 END), 0)",
    ]
    where = _where(query.since, query.until, query.filters, dialect, params)
    sql = f"SELECT {', '.join(select)} FROM {dialect.table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if query.group_by:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(query.group_by)))
    return sql, params


def build_calls_sql(
    query: CallsQuery, dialect: SQLDialect, columns: Sequence[Column]
) -> tuple[str, list[Any]]:
    """The SELECT of ``columns`` for ``query`` (ordered and limited as it says)."""
    q = dialect.quote
    params: list[Any] = []
    where = _where(query.since, query.until, query.filters, dialect, params)
    if query.trace_id is not None:
        where.append(f"{q('trace_id')} = {dialect.placeholder}")
        params.append(query.trace_id)
    sql = f"SELECT {', '.join(q(c.name) for c in columns)} FROM {dialect.table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = "ASC" if query.trace_id is not None else "DESC"
    sql += f" ORDER BY {q('time')} {order}, id {order} LIMIT {int(query.limit)}"
    return sql, params


def _expr(key: str, dialect: SQLDialect, params: list[Any]) -> str:
    """The SQL for a group / filter key; a tag's parameter is appended to ``params``, so
    call it once per use, in statement order."""
    if key in BUCKETS:
        return str(getattr(dialect, key))
    if key.startswith("tag:"):
        sql, param = dialect.tag(key[4:])
        params.append(param)
        return sql
    return dialect.quote(key)


def _where(
    since: datetime | None,
    until: datetime | None,
    filters: tuple[tuple[str, tuple[str | None, ...]], ...],
    dialect: SQLDialect,
    params: list[Any],
) -> list[str]:
    ph = dialect.placeholder
    q = dialect.quote
    where: list[str] = []
    if since is not None:
        where.append(f"{q('time')} >= {ph}")
        params.append(dialect.time_param(since))
    if until is not None:
        where.append(f"{q('time')} < {ph}")
        params.append(dialect.time_param(until))
    for key, values in filters:
        present = [v for v in values if v is not None]
        ors = []
        if present:
            ors.append(f"{_expr(key, dialect, params)} IN ({', '.join([ph] * len(present))})")
            params.extend(present)
        if len(present) != len(values):
            ors.append(f"{_expr(key, dialect, params)} IS NULL")
        where.append("(" + " OR ".join(ors) + ")")
    return where


def rows_from_sql(query: SpendQuery, rows: Sequence[Sequence[Any]]) -> list[SpendRow]:
    """SpendRows from :func:`build_sql` results, most expensive first, then by group
    (None last): the same order on every store."""
    n = len(query.group_by)
    out = []
    for row in rows:
        metrics = [int(v or 0) for v in row[n:]]
        if n == 0 and metrics[0] == 0:
            continue  # an aggregate over no rows
        group = {
            key: None if row[i] is None else str(row[i]) for i, key in enumerate(query.group_by)
        }
        out.append(SpendRow(group, *metrics))
    out.sort(key=lambda r: (
        -r.cost_nanos,
        -r.calls,
        tuple((v is None, v or "") for v in r.group.values()),
    ))
    return out
