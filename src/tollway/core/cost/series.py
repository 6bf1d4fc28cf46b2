"""Spend over time: ledger totals per hour or day bucket, stacked by one dimension.

``tollway spend --every day --by org`` and the dashboard's chart both come from
:func:`build_series` over the rows of one ``spend(group_by=[bucket, dimension])``
query, so the command and the page always show the same numbers. Buckets are UTC
(labels ``2026-11-05T09`` for hours, ``2026-11-05`` for days); empty buckets between
the first and the last (or across ``since`` / ``until`` when given) are filled with
zeros so a chart's x axis is time, not just the hours that had calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from tollway.core.cost.spend import METRICS, SpendRow
from tollway.core.errors import ConfigError

__all__ = ["MAX_BUCKETS", "SERIES_BUCKETS", "SeriesLine", "SpendSeries", "build_series"]

SERIES_BUCKETS = ("hour", "day")
MAX_BUCKETS = 750
"""About a month of hours or two years of days: more would be an unreadable chart."""

Bucket = Literal["hour", "day"]
_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_FORMAT = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}


@dataclass(frozen=True, slots=True)
class SeriesLine:
    """One stacked value (an org, a model...) with one SpendRow per bucket. ``value``
    None is calls where the dimension was unset; ``other`` merges the values beyond the
    top ones."""

    value: str | None
    points: tuple[SpendRow, ...]
    other: bool = False

    @property
    def total(self) -> SpendRow:
        return sum_rows(self.points, {})


@dataclass(frozen=True, slots=True)
class SpendSeries:
    bucket: Bucket
    stack_by: str | None
    buckets: tuple[str, ...]
    lines: tuple[SeriesLine, ...]
    """Most expensive first (then most calls, then by value); ``other`` last."""
    total: SpendRow

    def bucket_totals(self) -> list[SpendRow]:
        """Every line summed per bucket."""
        return [sum_rows([line.points[i] for line in self.lines], {"bucket": b})
                for i, b in enumerate(self.buckets)]

    def rows(self) -> list[SpendRow]:
        """Flat rows in time order (bucket, then the line order), empty points left
        out: what ``tollway spend --every`` prints."""
        return [line.points[i] for i in range(len(self.buckets)) for line in self.lines
                if line.points[i].calls]


def sum_rows(rows: Sequence[SpendRow], group: dict[str, str | None]) -> SpendRow:
    return SpendRow(group, *(sum(getattr(r, m) for r in rows) for m in METRICS))


def bucket_label(when: datetime, bucket: Bucket) -> str:
    return when.astimezone(UTC).strftime(_FORMAT[bucket])


def _parse_label(label: str, bucket: Bucket) -> datetime:
    return datetime.strptime(label, _FORMAT[bucket]).replace(tzinfo=UTC)


def _labels(first: datetime, last: datetime, bucket: Bucket) -> list[str]:
    step = _STEP[bucket]
    start = _parse_label(bucket_label(first, bucket), bucket)
    count = int((last - start) / step) + 1
    if count > MAX_BUCKETS:
        raise ConfigError(
            f"{count} {bucket} buckets is too many for one series (at most {MAX_BUCKETS}): "
            f"narrow the range or use {'day' if bucket == 'hour' else 'a shorter range'}",
            key="every",
        )
    return [bucket_label(start + i * step, bucket) for i in range(max(0, count))]


def build_series(
    rows: Sequence[SpendRow],
    *,
    bucket: Bucket,
    stack_by: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int | None = None,
) -> SpendSeries:
    """The series for ``rows`` grouped by ``[bucket]`` or ``[bucket, stack_by]``.
    ``top``: keep that many lines (by cost) and merge the rest into one ``other``."""
    if bucket not in SERIES_BUCKETS:
        raise ConfigError(f"a series is bucketed by hour or day; got {bucket!r}", key="every")
    seen = sorted({str(r.group[bucket]) for r in rows})
    first = since or (_parse_label(seen[0], bucket) if seen else None)
    last = (until - timedelta(microseconds=1)) if until is not None else (
        _parse_label(seen[-1], bucket) if seen else None)
    if first is not None and seen:
        first = min(first, _parse_label(seen[0], bucket))
    if last is not None and seen:
        last = max(last, _parse_label(seen[-1], bucket))
    labels = _labels(first, last, bucket) if first is not None and last is not None else []
    index = {label: i for i, label in enumerate(labels)}

    by_value: dict[str | None, list[SpendRow | None]] = {}
    for row in rows:
        value = row.group.get(stack_by) if stack_by else None
        points = by_value.setdefault(value, [None] * len(labels))
        points[index[str(row.group[bucket])]] = row

    def line_of(value: str | None, points: Sequence[SpendRow | None], other: bool = False) -> SeriesLine:
        filled = tuple(
            p if p is not None else SpendRow(_group(bucket, labels[i], stack_by, value))
            for i, p in enumerate(points)
        )
        return SeriesLine(value, filled, other)

    lines = [line_of(v, p) for v, p in by_value.items()]
    lines.sort(key=lambda ln: (-ln.total.cost_nanos, -ln.total.calls, ln.value is None,
                               ln.value or ""))
    if top is not None and len(lines) > top:
        kept, rest = lines[:top], lines[top:]
        merged = [
            sum_rows([ln.points[i] for ln in rest], _group(bucket, labels[i], stack_by, None))
            for i in range(len(labels))
        ]
        lines = [*kept, SeriesLine(None, tuple(merged), other=True)]
    total = sum_rows(rows, {})
    return SpendSeries(bucket, stack_by, tuple(labels), tuple(lines), total)


def _group(bucket: str, label: str, stack_by: str | None, value: str | None) -> dict[str, str | None]:
    return {bucket: label, stack_by: value} if stack_by else {bucket: label}
