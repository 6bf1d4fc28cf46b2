"""Aggregation across repetitions and the plain-text tables (run.py side).

Figures are medians over fresh-process repetitions. "Added" figures are PAIRED: in each
repetition the client's median minus the baseline's median from the same repetition
(run back to back), then the median of those differences, so slow drifts of a shared
machine cancel out instead of landing on one column.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from _clients import label


@dataclass
class Table:
    title: str
    columns: list[tuple[str, str, str]]
    """(key, header, format) — format like ``{:.1f}``; ``s`` for text."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        headers = [h for _, h, _ in self.columns]
        body: list[list[str]] = []
        for row in self.rows:
            cells = []
            for key, _, fmt in self.columns:
                value = row.get(key)
                if value is None:
                    cells.append("-")
                elif fmt == "s":
                    cells.append(str(value))
                else:
                    try:
                        cells.append(fmt.format(value))
                    except (TypeError, ValueError):
                        cells.append(str(value))
            body.append(cells)
        widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
        lines = [f"\n== {self.title} =="]
        lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                               for i, (h, w) in enumerate(zip(headers, widths, strict=True))))
        for cells in body:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths, strict=True))))
        lines.extend(f"  * {note}" for note in self.notes)
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "rows": self.rows, "notes": self.notes}


def by_client(results: Iterable[Mapping[str, Any]], case: str | None = None) -> dict[str, list[Mapping[str, Any]]]:
    """Successful results grouped by client (optionally of one case), in first-seen order."""
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for result in results:
        if case is not None and result.get("case") != case:
            continue
        grouped[result["client"]].append(result)
    return dict(grouped)


def med(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if "error" not in r and isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def spread(rows: Sequence[Mapping[str, Any]], key: str) -> str | None:
    """``min..max`` of a figure across repetitions (how noisy it was)."""
    values = [r[key] for r in rows if "error" not in r and isinstance(r.get(key), int | float)]
    if len(values) < 2:
        return None
    return f"{min(values):.0f}..{max(values):.0f}"


def paired(rows: Sequence[Mapping[str, Any]], base: Sequence[Mapping[str, Any]], key: str,
           combine: Callable[[float, float], float] = lambda a, b: a - b) -> float | None:
    """Median over repetitions of combine(row[key], base[key]) for the same ``rep``."""
    base_by_rep = {r.get("rep"): r for r in base if "error" not in r}
    diffs = []
    for row in rows:
        other = base_by_rep.get(row.get("rep"))
        if other is None or "error" in row:
            continue
        a, b = row.get(key), other.get(key)
        if isinstance(a, int | float) and isinstance(b, int | float):
            diffs.append(combine(a, b))
    return statistics.median(diffs) if diffs else None


def errors_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(r["error"]).strip().splitlines()[-1][:200] for r in rows if "error" in r]


def latency_table(title: str, results: Sequence[Mapping[str, Any]], case: str, baseline: str,
                  notes: Sequence[str] = (), against: Mapping[str, str] | None = None,
                  ) -> tuple[Table, dict[str, Any]]:
    """The per-call table used by sync / async / streaming / router: p50, p99, CPU, and
    the paired difference to a baseline: ``baseline`` for every client, except those
    ``against`` maps to another (tollway on aiohttp against raw httpx-aiohttp)."""
    against = dict(against or {})
    table = Table(title, [
        ("label", "client", "s"),
        ("p50_us", "p50 us", "{:.1f}"),
        ("p99_us", "p99 us", "{:.1f}"),
        ("cpu_us", "CPU us/call", "{:.1f}"),
        ("added_cpu_us", "added CPU us", "{:+.1f}"),
        ("added_us", "added p50 us", "{:+.1f}"),
        ("added_cpu_pct", "added CPU %", "{:+.0%}"),
        ("vs", "added vs", "s"),
        ("reps", "reps", "{}"),
        ("p50_spread", "p50 range", "s"),
    ], notes=list(notes))
    groups = by_client(results, case)
    data: dict[str, Any] = {}
    for client, rows in groups.items():
        ok = [r for r in rows if "error" not in r]
        base_name = against.get(client, baseline)
        base = groups.get(base_name, []) if base_name != client else []
        base_cpu = med(base, "cpu_us")
        added_cpu = paired(rows, base, "cpu_us") if base else None
        row = {
            "client": client, "label": label(client), "p50_us": med(rows, "p50_us"),
            "p99_us": med(rows, "p99_us"), "cpu_us": med(rows, "cpu_us"),
            "calls_per_s": med(rows, "calls_per_s"),
            "added_us": paired(rows, base, "p50_us") if base else None,
            "added_cpu_us": added_cpu,
            "added_cpu_pct": added_cpu / base_cpu if added_cpu is not None and base_cpu else None,
            "vs": label(base_name) if base else None, "baseline": base_name if base else None,
            "reps": len(ok), "p50_spread": spread(rows, "p50_us"),
            "samples_per_rep": med(rows, "n"),
        }
        for error in errors_of(rows):
            table.notes.append(f"{label(client)}: {error}")
        table.rows.append(row)
        data[client] = row
    table.notes.append("added = paired per repetition (same fresh-process round): the "
                       "client's median minus its baseline's; CPU = process CPU time per call")
    return table, data
