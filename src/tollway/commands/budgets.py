"""``tollway budgets``: each budget and rate limit with limit, spent, reserved, remaining
and next reset, read from the budget store the config names.

    tollway budgets
    tollway budgets --config deploy/tollway.yaml --format json

A budget per value (``user: each``) shows one row per value seen this period; a fixed
scope shows its row even before its first call. With a ``gateway:`` section (keys on),
every virtual key's budgets and rate limits follow, as on the dashboard's budgets page.
``reserved`` is what calls in flight hold right now (reservations of crashed processes disappear after their TTL).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING

from tollway.core.errors import ConfigError

if TYPE_CHECKING:
    from tollway.core.cost.budgets import BudgetRow

FORMATS = ("table", "json")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH",
        help="tollway.yaml to read (default: $TOLLWAY_CONFIG, else ./tollway.yaml)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    from tollway.core.config import CONFIG_ENV, load_config
    from tollway.core.reports import budget_status
    from tollway.gateway.key_budget_rows import config_key_budget_rows

    try:
        settings = load_config(getattr(args, "config", None))
        if settings is None:
            print(
                f"tollway budgets: no config found: pass --config PATH, set {CONFIG_ENV}, or "
                "create ./tollway.yaml",
                file=sys.stderr,
            )
            return 2
        rows = budget_status(settings) + config_key_budget_rows(settings)
    except ConfigError as exc:
        print(f"tollway budgets: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    if getattr(args, "format", "table") == "json":
        json.dump([row.as_dict() for row in rows], out, indent=2)
        out.write("\n")
    elif not rows:
        out.write(f"no budgets, rate limits or hours with counters in {settings.source}\n")
    else:
        write_table(rows, out)
    return 0


def _amount(value: Decimal | int, unit: str) -> str:
    if unit == "usd":
        text = f"{Decimal(value):,.6f}".rstrip("0")
        if len(text.partition(".")[2]) < 2:
            text = f"{Decimal(value):,.2f}"
        return f"${text}"
    suffix = {"requests": "req", "tokens": "tok", "input_tokens": "in tok",
              "output_tokens": "out tok"}.get(unit, unit)
    return f"{int(value):,} {suffix}"


def write_table(rows: Sequence[BudgetRow], out: IO[str]) -> None:
    """A plain-text table: one line per counter, amounts right-aligned."""
    headers = ["budget", "scope", "period", "limit", "spent", "reserved", "remaining", "resets"]
    lines: list[list[str]] = []
    for row in rows:
        unit, resets = row.unit, row.resets_at
        lines.append([
            row.budget,
            row.scope,
            row.period,
            _amount(row.limit, unit),
            _amount(row.spent, unit),
            _amount(row.reserved, unit),
            _amount(row.remaining, unit),
            "never" if resets is None else resets.isoformat(timespec="minutes"),
        ])
    numeric = {3, 4, 5, 6}
    widths = [max(len(line[i]) for line in [headers, *lines]) for i in range(len(headers))]

    def fmt(line: Sequence[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(cells).rstrip()

    out.write(fmt(headers) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for line in lines:
        out.write(fmt(line) + "\n")
