"""Charts as inline SVG, drawn on the server: spend over time (stacked bars), a bar per
budget, and a trace's timeline. No JavaScript and no chart library: the page is the
picture, and a browser test can read every number off it.

Colours are SVG presentation attributes (never ``style=``), so the dashboard's strict
Content-Security-Policy needs no ``unsafe-inline``. Every label goes through ``esc``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from tollway.core.cost.budgets import BudgetRow
from tollway.core.cost.records import CallRecord
from tollway.core.cost.series import SpendSeries
from tollway.core.cost.spend import SpendRow
from tollway.gateway.ui.html import attrs, esc, nanos_usd, number

__all__ = ["METRICS", "PALETTE", "budget_bar", "colour", "spend_chart", "swatch", "timeline"]

PALETTE = ("#2f6fdf", "#e8743b", "#19a979", "#a44fb9", "#d9a600", "#13a4b4", "#d95f7f",
           "#6b8e23")
OTHER = "#9aa0a6"

METRICS: dict[str, tuple[str, Callable[[SpendRow], int]]] = {
    "cost": ("cost (USD)", lambda r: r.cost_nanos),
    "calls": ("calls", lambda r: r.calls),
    "tokens": ("tokens (in + out)", lambda r: r.input_tokens + r.output_tokens),
}
"""What the chart can stack: label and the value of one SpendRow."""


def colour(index: int, other: bool = False) -> str:
    return OTHER if other else PALETTE[index % len(PALETTE)]


def swatch(fill: str) -> str:
    return f'<svg class="swatch" width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2"{attrs(fill=fill)}/></svg>'


def _format(metric: str, value: int) -> str:
    return nanos_usd(value) if metric == "cost" else f"{value:,}"


def _ticks(top: int) -> list[int]:
    """Four round-ish steps from 0 to at least ``top``."""
    if top <= 0:
        return [0]
    raw = top / 4
    magnitude = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [int(step * i) for i in range(5)]


def spend_chart(series: SpendSeries, metric: str = "cost", *, width: int = 960,
                height: int = 320) -> str:
    """Stacked bars: one bar per bucket, one segment per line of the series."""
    label, value_of = METRICS[metric]
    n = len(series.buckets)
    if n == 0:
        return '<p class="empty">No calls in this range.</p>'
    left, right, top_pad, bottom = 96, 12, 12, 56
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    totals = [sum(value_of(line.points[i]) for line in series.lines) for i in range(n)]
    ticks = _ticks(max(totals))
    scale = plot_h / ticks[-1] if ticks[-1] else 0.0
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.8)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}"{attrs(width=width, height=height)}'
        f' aria-label="{esc(label)} per {esc(series.bucket)}">'
    ]
    for tick in ticks:
        y = top_pad + plot_h - tick * scale
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e5e8"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f"{esc(_format(metric, tick))}</text>")
    every = max(1, round(n / 12))
    for i, bucket in enumerate(series.buckets):
        x = left + i * slot + (slot - bar_w) / 2
        y = top_pad + plot_h
        for index, line in enumerate(series.lines):
            point = line.points[i]
            value = value_of(point)
            if value <= 0:
                continue
            h = value * scale
            y -= h
            name = "other" if line.other else ("(unset)" if line.value is None else line.value)
            tip = (f"{bucket} · {name}: {_format(metric, value)} ({point.calls:,} calls, "
                   f"{nanos_usd(point.cost_nanos)})")
            parts.append(
                f'<rect{attrs(x=f"{x:.1f}", y=f"{y:.1f}", width=f"{bar_w:.1f}", height=f"{h:.1f}", fill=colour(index, line.other), data_bucket=bucket, data_value=value)}>'
                f"<title>{esc(tip)}</title></rect>"
            )
        if i % every == 0:
            text = bucket[5:] if series.bucket == "day" else bucket[5:].replace("T", " ") + "h"
            parts.append(f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - bottom + 18}"'
                         f' text-anchor="middle" class="tick">{esc(text)}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" class="axis">{esc(label)} per '
                 f"{esc(series.bucket)} (UTC)</text></svg>")
    return "".join(parts)


def _share(part: Decimal | int, whole: Decimal | int) -> float:
    return 0.0 if not whole else max(0.0, min(1.0, float(part) / float(whole)))


def budget_bar(row: BudgetRow, *, width: int = 140, height: int = 14) -> str:
    """Spent (solid) then reserved (lighter) against the limit; red from 90 %."""
    spent = _share(row.spent, row.limit)
    reserved = min(1.0 - spent, _share(row.reserved, row.limit))
    fill = "#d93025" if spent + reserved >= 0.9 else "#2f6fdf"
    used = (spent + reserved) * 100
    pct = f"{used:.1f}% used" if used < 10 else f"{used:.0f}% used"
    return (
        f'<svg class="bar" role="img"{attrs(width=width, height=height, aria_label=pct)}>'
        f'<rect width="{width}" height="{height}" rx="3" fill="#e3e5e8"/>'
        f'<rect width="{spent * width:.1f}" height="{height}" rx="3"{attrs(fill=fill)}/>'
        f'<rect x="{spent * width:.1f}" width="{reserved * width:.1f}" height="{height}"'
        f'{attrs(fill=fill)} fill-opacity="0.4"/><title>{esc(pct)}</title></svg>'
        f' <span class="pct">{esc(pct)}</span>'
    )


def _step_name(record: CallRecord) -> str:
    if record.kind == "tool":
        return f"tool {record.tool_server or '?'}/{record.tool_name or record.model}"
    who = record.agent or record.node
    return f"model {record.alias or record.model}" + (f" ({who})" if who else "")


def timeline(records: Sequence[CallRecord], *, width: int = 960, row_h: int = 28) -> str:
    """One row per model round or tool call, placed at its start time and as long as
    it took, labelled with its tokens and cost."""
    if not records:
        return '<p class="empty">No rows for this trace.</p>'
    start = min(r.time for r in records)
    end = max(_end(r) for r in records)
    span_ms = max(1.0, (end - start).total_seconds() * 1000)
    left, right = 260, 200
    plot_w = width - left - right
    height = row_h * len(records) + 30
    parts = [f'<svg class="timeline" role="img" viewBox="0 0 {width} {height}"'
             f'{attrs(width=width, height=height, aria_label="trace timeline")}>']
    for i, record in enumerate(records):
        y = i * row_h + 4
        offset = (record.time - start).total_seconds() * 1000
        x = left + plot_w * offset / span_ms
        w = max(2.0, plot_w * record.latency_ms / span_ms)
        fill = "#19a979" if record.kind == "tool" else "#2f6fdf"
        if record.status != "ok":
            fill = "#d93025"
        tokens = f"{record.usage.input_tokens:,} in / {record.usage.output_tokens:,} out"
        info = (f"{nanos_usd(record.cost_nanos)} · {tokens}" if record.kind == "model"
                else f"{record.latency_ms:,.0f} ms")
        parts.append(f'<text x="4" y="{y + 16}" class="step">{esc(_step_name(record))}</text>')
        parts.append(
            f'<rect{attrs(x=f"{x:.1f}", y=y, width=f"{w:.1f}", height=row_h - 10, rx=3, fill=fill, data_kind=record.kind)}>'
            f"<title>{esc(_step_name(record))}: {esc(record.status)}, "
            f"{record.latency_ms:,.0f} ms, {esc(info)}</title></rect>"
        )
        parts.append(f'<text x="{width - right + 8}" y="{y + 16}" class="step">{esc(info)}</text>')
    parts.append(f'<text x="{left}" y="{height - 6}" class="axis">0 ms</text>'
                 f'<text x="{width - right}" y="{height - 6}" text-anchor="end" class="axis">'
                 f"{number(span_ms)} ms</text></svg>")
    return "".join(parts)


def _end(record: CallRecord) -> datetime:
    return record.time + timedelta(milliseconds=record.latency_ms)
