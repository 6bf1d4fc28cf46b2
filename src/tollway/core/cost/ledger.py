"""The ledger: one durable row per model call (and per MCP tool call).

This module is the contract: the :class:`Ledger` protocol the stores implement
(``core/stores/sqlite_ledger.py``, ``postgres_ledger.py``) and the one mapping of a
CallRecord to columns. ``tollway.core.stores.open.open_ledger`` chooses a store.

Every store writes the row before ``record`` returns, so a process killed right after
a call returned loses nothing. Rows carry no secret and no prompt: CallRecord has no
field for either, and the error text is scrubbed again on the way in.

This module is the one place that maps a CallRecord to columns (:data:`COLUMNS`,
:func:`row_values`), so both stores store and query exactly the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tollway.core.errors import scrub

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord
    from tollway.core.cost.spend import CallsQuery, SpendQuery, SpendRow

__all__ = [
    "COLUMNS",
    "Column",
    "Ledger",
    "format_time",
    "row_values",
]


@runtime_checkable
class Ledger(Protocol):
    """Where CallRecords go. ``record`` returns only once the row is durable."""

    def record(self, row: CallRecord) -> None: ...

    async def arecord(self, row: CallRecord) -> None: ...

    def query(self, query: SpendQuery) -> list[SpendRow]:
        """Aggregate rows for :func:`tollway.core.cost.spend.spend` (SQL GROUP BY)."""
        ...

    def calls(self, query: CallsQuery) -> list[CallRecord]:
        """The rows themselves (latest calls, one trace) for the dashboard."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Column:
    """One ledger column: its name and SQL types in each store."""

    name: str
    sqlite: str
    postgres: str


COLUMNS: tuple[Column, ...] = (
    Column("time", "TEXT NOT NULL", "TIMESTAMPTZ NOT NULL"),
    Column("kind", "TEXT NOT NULL", "TEXT NOT NULL"),
    Column("trace_id", "TEXT NOT NULL", "TEXT NOT NULL"),
    Column("request_id", "TEXT", "TEXT"),
    Column("org", "TEXT", "TEXT"),
    Column("project", "TEXT", "TEXT"),
    Column("user", "TEXT", "TEXT"),
    Column("key", "TEXT", "TEXT"),
    Column("tags", "TEXT", "JSONB"),
    Column("framework", "TEXT", "TEXT"),
    Column("agent", "TEXT", "TEXT"),
    Column("node", "TEXT", "TEXT"),
    Column("attribution", "TEXT", "JSONB"),
    Column("provider", "TEXT NOT NULL", "TEXT NOT NULL"),
    Column("model", "TEXT NOT NULL", "TEXT NOT NULL"),
    Column("deployment", "TEXT", "TEXT"),
    Column("alias", "TEXT", "TEXT"),
    Column("input_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    Column("output_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    Column("cache_read_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    Column("cache_write_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    Column("cache_write_1h_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    Column("reasoning_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    Column("requests", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    Column("units", "TEXT", "JSONB"),
    Column("cost_nanos", "INTEGER", "BIGINT"),
    Column("latency_ms", "REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    Column("ttft_ms", "REAL", "DOUBLE PRECISION"),
    Column("status", "TEXT NOT NULL", "TEXT NOT NULL"),
    Column("error", "TEXT", "TEXT"),
    Column("stream", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    Column("tool_server", "TEXT", "TEXT"),
    Column("tool_name", "TEXT", "TEXT"),
    Column("input_image_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("output_image_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("input_audio_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("input_video_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("cache_audio_read_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("cache_image_read_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("output_audio_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("output_video_tokens", "INTEGER NOT NULL DEFAULT 0", "BIGINT NOT NULL DEFAULT 0"),
    Column("service_tier", "TEXT", "TEXT"),
)
"""Every CallRecord field, with ``usage`` spread into integer columns. Adding a field
to CallRecord means adding a column here (at the end, with a default) and a migration
in each store (a test checks that every field has a column)."""

ADDED_IN: dict[int, tuple[str, ...]] = {
    2: ("input_image_tokens", "output_image_tokens"),
    3: ("input_audio_tokens", "input_video_tokens", "cache_audio_read_tokens",
        "cache_image_read_tokens", "output_audio_tokens", "output_video_tokens", "service_tier"),
}
"""Schema version -> the columns it added (``ALTER TABLE ... ADD COLUMN``); the first
version's table has every other column."""
_ADDED = {name for names in ADDED_IN.values() for name in names}
FIRST_COLUMNS: tuple[Column, ...] = tuple(c for c in COLUMNS if c.name not in _ADDED)


def added_columns(version: int) -> tuple[Column, ...]:
    names = ADDED_IN.get(version, ())
    return tuple(c for c in COLUMNS if c.name in names)

COLUMN_NAMES = tuple(c.name for c in COLUMNS)


_LAST_SECOND: tuple[tuple[int, ...], str] = ((), "")
"""The last second :func:`format_time` formatted and its text up to the microseconds
(one tuple, swapped whole, so threads always read a matching pair)."""


def format_time(value: datetime) -> str:
    """A timestamp as the fixed-width UTC text SQLite stores (so text order is time
    order), exactly ``isoformat(timespec="microseconds")`` of its UTC value:
    ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``; naive datetimes are taken as UTC.

    ``isoformat`` costs ~12,000 instructions (it goes through ``PyUnicode_FromFormat``),
    as much as writing the row: the text of the current second is kept, and a call adds
    its microseconds to it."""
    global _LAST_SECOND
    tz = value.tzinfo
    if tz is not None and tz is not UTC and value.utcoffset():
        value = value.astimezone(UTC)
    key = (value.second, value.minute, value.hour, value.day, value.month, value.year)
    last = _LAST_SECOND
    if last[0] != key:
        if value.year < 1000:  # strftime does not pad %Y everywhere
            return value.replace(tzinfo=UTC).isoformat(timespec="microseconds")
        last = _LAST_SECOND = (key, value.strftime("%Y-%m-%dT%H:%M:%S."))
    return last[1] + str(1_000_000 + value.microsecond)[1:] + "+00:00"


def _json(value: Mapping[str, Any]) -> str | None:
    return json.dumps(value, separators=(",", ":"), default=str, sort_keys=True) if value else None


def row_values(row: CallRecord, *, text_time: bool) -> tuple[Any, ...]:
    """The column values of ``row``, in :data:`COLUMNS` order. ``text_time``: the time
    as text (SQLite) or as an aware datetime (PostgreSQL)."""
    u = row.usage
    t = row.time
    if text_time:
        when: Any = format_time(t)
    else:
        when = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    return (
        when,
        row.kind,
        row.trace_id,
        row.request_id,
        row.org,
        row.project,
        row.user,
        row.key,
        _json(row.tags),
        row.framework,
        row.agent,
        row.node,
        _json(row.attribution),
        row.provider,
        row.model,
        row.deployment,
        row.alias,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
        u.reasoning_tokens,
        u.requests,
        _json(u.units),
        row.cost_nanos,
        float(row.latency_ms),
        None if row.ttft_ms is None else float(row.ttft_ms),
        row.status,
        None if row.error is None else scrub(row.error),
        row.stream if not text_time else int(row.stream),
        row.tool_server,
        row.tool_name,
        u.input_image_tokens,
        u.output_image_tokens,
        u.input_audio_tokens,
        u.input_video_tokens,
        u.cache_audio_read_tokens,
        u.cache_image_read_tokens,
        u.output_audio_tokens,
        u.output_video_tokens,
        u.service_tier,
    )


def record_from_values(values: Mapping[str, Any]) -> CallRecord:
    """Rebuild a CallRecord from a stored row (for tools and tests that read rows back)."""
    from tollway.core.cost.records import CallRecord
    from tollway.core.types import Usage

    def load(value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        return json.loads(value) if isinstance(value, str) else dict(value)

    when = values["time"]
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return CallRecord(
        time=when,
        kind=values["kind"],
        trace_id=values["trace_id"],
        request_id=values["request_id"],
        org=values["org"],
        project=values["project"],
        user=values["user"],
        key=values["key"],
        tags=load(values["tags"]),
        framework=values["framework"],
        agent=values["agent"],
        node=values["node"],
        attribution=load(values["attribution"]),
        provider=values["provider"],
        model=values["model"],
        deployment=values["deployment"],
        alias=values["alias"],
        usage=Usage(
            input_tokens=values["input_tokens"],
            output_tokens=values["output_tokens"],
            cache_read_tokens=values["cache_read_tokens"],
            cache_write_tokens=values["cache_write_tokens"],
            cache_write_1h_tokens=values["cache_write_1h_tokens"],
            reasoning_tokens=values["reasoning_tokens"],
            requests=values["requests"],
            units=load(values["units"]),
            input_image_tokens=values.get("input_image_tokens") or 0,
            output_image_tokens=values.get("output_image_tokens") or 0,
            input_audio_tokens=values.get("input_audio_tokens") or 0,
            input_video_tokens=values.get("input_video_tokens") or 0,
            cache_audio_read_tokens=values.get("cache_audio_read_tokens") or 0,
            cache_image_read_tokens=values.get("cache_image_read_tokens") or 0,
            output_audio_tokens=values.get("output_audio_tokens") or 0,
            output_video_tokens=values.get("output_video_tokens") or 0,
            service_tier=values.get("service_tier"),
        ),
        cost_nanos=values["cost_nanos"],
        latency_ms=values["latency_ms"],
        ttft_ms=values["ttft_ms"],
        status=values["status"],
        error=values["error"],
        stream=bool(values["stream"]),
        tool_server=values["tool_server"],
        tool_name=values["tool_name"],
    )
