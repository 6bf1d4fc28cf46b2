"""``tollway spend``: ledger totals grouped by org / project / user / model / day / tag...

    tollway spend --by org,project,user --since 2026-11-01 --until 2026-12-01
    tollway spend --by model,day --since 7d --filter org=acme --format csv
    tollway spend --ledger postgresql://host/db --format json
    tollway spend --config deploy/tollway.yaml --by project

The ledger read is the one the config's models write to (``--config``, else
``$TOLLWAY_CONFIG``, else ``./tollway.yaml``: its ``ledger:``, else the default ledger),
unless ``--ledger`` names another.

    tollway spend --every day --by org --since 7d      # the dashboard's chart, as rows

``--every hour|day`` prints spend over time: one row per UTC bucket and value of the
(at most one) ``--by`` key, in time order, from the same ``spend_series`` the dashboard
draws its chart with.

Costs are exact (integer nano-USD summed, printed as decimal USD); calls to models
without a known price are counted in ``unpriced_calls``, never priced as zero.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import IO

from tollway.core.cost.spend import GROUP_KEYS, METRICS, SpendRow
from tollway.core.errors import ConfigError
from tollway.core.reports import spend, spend_series
from tollway.core.types import NANOS_PER_USD

FORMATS = ("table", "json", "csv")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        default="model",
        metavar="KEYS",
        help=f"comma-separated group keys: {', '.join(GROUP_KEYS)}, tag:<name> "
        "(default: model; '' for one grand total)",
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="inclusive start: 2026-11-01, an ISO time, or relative 30m / 12h / 7d / 2w",
    )
    parser.add_argument(
        "--until",
        metavar="TIME",
        help="exclusive end, same forms (a bare date is midnight UTC: "
        "--since 2026-11-01 --until 2026-12-01 is November)",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only rows where KEY equals VALUE (repeat a key for OR; VALUE '-' "
        "matches unset)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="read the ledger this tollway.yaml's models write to (its 'ledger:'; default: "
        "$TOLLWAY_CONFIG, else ./tollway.yaml, as Model finds it)",
    )
    parser.add_argument(
        "--ledger",
        metavar="PATH_OR_URL",
        help="read this ledger instead: SQLite path, sqlite:///path, postgresql://... "
        "(without --ledger or a config ledger: $TOLLWAY_LEDGER or "
        "~/.local/share/tollway/ledger.db)",
    )
    parser.add_argument("--every", choices=("hour", "day"),
                        help="spend over time: one row per UTC hour / day (and --by value, "
                             "at most one key), in time order, as the dashboard's chart")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")


def _filters(items: Sequence[str]) -> dict[str, list[str | None]]:
    filters: dict[str, list[str | None]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--filter needs KEY=VALUE; got {item!r}", key="filter")
        filters.setdefault(key.strip(), []).append(None if value == "-" else value)
    return filters


def run(args: argparse.Namespace) -> int:
    keys = [k.strip() for k in args.by.split(",") if k.strip()]
    every = getattr(args, "every", None)
    if every:
        if len(keys) > 1:
            raise ConfigError(f"--every stacks by at most one --by key; got {args.by!r}",
                              key="by")
        series = spend_series(args.ledger, config=getattr(args, "config", None), every=every,
                              stack_by=keys[0] if keys else None, since=args.since,
                              until=args.until, filters=_filters(args.filter or []))
        rows = series.rows()
        keys = [every, *keys]
    else:
        rows = spend(
            args.ledger,
            config=getattr(args, "config", None),
            group_by=args.by,
            since=args.since,
            until=args.until,
            filters=_filters(args.filter or []),
        )
    out = sys.stdout
    if args.format == "json":
        write_json(rows, out)
    elif args.format == "csv":
        write_csv(rows, keys, out)
    else:
        write_table(rows, keys, out)
    return 0


def write_json(rows: Sequence[SpendRow], out: IO[str]) -> None:
    """A JSON array of objects: group keys, metrics, ``cost`` as an exact decimal string."""
    json.dump([r.as_dict() for r in rows], out, indent=2)
    out.write("\n")


def write_csv(rows: Sequence[SpendRow], keys: Sequence[str], out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*keys, *METRICS, "cost"])
    for r in rows:
        d = r.as_dict()
        writer.writerow([*("" if d[k] is None else d[k] for k in keys), *(d[m] for m in METRICS),
                         d["cost"]])


_HEADERS = {
    "calls": "calls",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "reasoning_tokens": "reasoning",
    "cost": "cost (USD)",
    "unpriced_calls": "unpriced",
}


def _usd(nanos: int) -> str:
    value = Decimal(nanos) / NANOS_PER_USD
    return f"{value:,.6f}"


def _table_rows(rows: Sequence[SpendRow], keys: Sequence[str]) -> list[list[str]]:
    lines = []
    for r in rows:
        lines.append([
            *("-" if r.group[k] is None else str(r.group[k]) for k in keys),
            f"{r.calls:,}", f"{r.input_tokens:,}", f"{r.output_tokens:,}",
            f"{r.cache_read_tokens:,}", f"{r.cache_write_tokens:,}", f"{r.reasoning_tokens:,}",
            _usd(r.cost_nanos), f"{r.unpriced_calls:,}",
        ])
    return lines


def _total(rows: Sequence[SpendRow], keys: Sequence[str]) -> list[str]:
    total = SpendRow(
        {k: None for k in keys},
        *(sum(getattr(r, m) for r in rows) for m in METRICS),
    )
    line = _table_rows([total], keys)[0]
    if keys:
        line[0] = "total"
        line[1 : len(keys)] = [""] * (len(keys) - 1)
    return line


def write_table(rows: Sequence[SpendRow], keys: Sequence[str], out: IO[str]) -> None:
    """A table (rich when installed, plain text otherwise) with a total line."""
    headers = [*keys, *(_HEADERS[m] for m in (*METRICS[:6], "cost", "unpriced_calls"))]
    body = _table_rows(rows, keys)
    total = _total(rows, keys) if len(rows) > 1 else None
    numeric = set(range(len(keys), len(headers)))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _plain_table(headers, body, total, numeric, out)
        return
    table = Table(show_footer=total is not None)
    for i, header in enumerate(headers):
        table.add_column(
            header,
            justify="right" if i in numeric else "left",
            no_wrap=True,
            footer=total[i] if total is not None else "",
        )
    for line in body:
        table.add_row(*line)
    cells = [headers, *body] + ([total] if total else [])
    width = sum(max(len(line[i]) for line in cells) + 3 for i in range(len(headers))) + 1
    Console(file=out, width=max(80, width)).print(table)


def _plain_table(
    headers: Sequence[str],
    body: Sequence[Sequence[str]],
    total: Sequence[str] | None,
    numeric: set[int],
    out: IO[str],
) -> None:
    lines: list[Sequence[str]] = [headers, *body] + ([total] if total else [])
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]

    def fmt(line: Sequence[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out.write(fmt(headers) + "\n" + rule + "\n")
    for line in body:
        out.write(fmt(line) + "\n")
    if total:
        out.write(rule + "\n" + fmt(total) + "\n")


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - `python -m` convenience
    parser = argparse.ArgumentParser(prog="tollway spend")
    configure(parser)
    return run(parser.parse_args(argv))


__all__ = ["configure", "run", "write_csv", "write_json", "write_table"]
