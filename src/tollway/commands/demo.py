"""``tollway demo``: agents from four frameworks on swapped models, MCP tools, costs per
org / project / user / agent, a budget that stops spending and an off-hours reroute.

Runs offline on the embedded local model when no provider key is set (first run
assembles and verifies the model file: about half a minute), or on OpenAI / Anthropic /
Gemini when their key is set (``--provider`` to choose).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tollway.core.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    from tollway.demo.setup import PROVIDER_NAMES

    parser.add_argument("--provider", choices=PROVIDER_NAMES,
                        help="run on this provider (default: the first whose key is set, "
                             "else the embedded local model)")
    parser.add_argument("--model", help="put both aliases on this provider/model")
    parser.add_argument("--config", help="your own tollway.yaml (must define aliases "
                        "'fast' and 'smart'); default: the demo writes one")
    parser.add_argument("--workdir", help="keep the demo's files (config, ledger) here "
                        "instead of a temporary directory")


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tollway-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _quiet_frameworks(workdir)
    try:
        return _run(args, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _quiet_frameworks(workdir: Path) -> None:
    """CrewAI phones home and writes into $HOME; keep it quiet and inside the workdir."""
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    os.environ.setdefault("CREWAI_STORAGE_DIR", str(workdir / "crewai"))
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("tollway").setLevel(logging.ERROR)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    from tollway.core.config import TollwaySettings
    from tollway.core.cost.pricing import PriceBook, default_pricebook
    from tollway.demo import setup
    from tollway.demo.show import Show
    from tollway.demo.story import DemoClock, Story, bob_budget

    show = Show()
    started = time.perf_counter()
    choice = setup.choose_provider(args.provider, args.model)
    if args.config:
        settings = TollwaySettings.load(args.config)
        missing = {"fast", "smart"} - set(settings.models)
        if missing:
            raise ConfigError(f"{args.config} must define the aliases {sorted(missing)}")
        config_path = Path(args.config)
    else:
        prices: Any = default_pricebook()
        if choice.demo_prices:
            prices = PriceBook({"fast-model": setup.FAST_DEMO_PRICE,
                                "smart-model": setup.SMART_DEMO_PRICE})
        budget = bob_budget(prices, (choice.fast.split("/", 1)[0], "fast-model"),
                            (choice.smart.split("/", 1)[0], "smart-model"))
        config = setup.demo_config(choice, workdir, budget)
        config_path = setup.write_config(config, workdir)
        settings = TollwaySettings.load(config_path)
    clock = DemoClock()
    settings.clock = clock
    where = "in-process (llama.cpp)" if choice.name == "local" else choice.name
    note = "  (demo prices: the local model costs nothing to run)" if choice.demo_prices else ""
    show.banner(
        "tollway demo",
        f"provider: {where}\n"
        f"fast  -> {_target(settings, 'fast')}\nsmart -> {_target(settings, 'smart')}{note}\n"
        f"config: {config_path}\nledger: {settings.ledger_target}\n"
        f"demo clock: {clock.now:%A %H:%M} Europe/Berlin",
    )
    story = Story(settings, show, workdir, clock)
    story.run()
    _spend_table(show, settings)
    _budget_table(show, settings, clock)
    show.line(f"\nfinished in {time.perf_counter() - started:.0f} s")
    show.line(_next_steps(settings.ledger_target, config_path, kept=bool(args.workdir)))
    if story.failures:
        show.error(f"{len(story.failures)} step(s) failed: " + "; ".join(story.failures))
        return 1
    return 0


def _next_steps(ledger: Any, config_path: Path, *, kept: bool) -> str:
    """Where to look next: the same figures on the command line and in the browser."""
    lines = [
        f"see the same figures with: tollway spend --ledger {ledger} --by project,user,agent,alias",
        f"and in the browser (spend over time, budgets, the MCP loop's trace): "
        f"tollway dashboard --ledger {ledger} --config {config_path}",
    ]
    if not kept:
        lines.append("(this run's files are in a temporary directory deleted on exit: run "
                     "`tollway demo --workdir DIR` to keep them for those commands)")
    return "\n".join(lines)


def _target(settings: Any, alias: str) -> str:
    deployments = settings.models[alias]
    return ", ".join(d.model for d in deployments)


def _spend_table(show: Any, settings: Any) -> None:
    from tollway.core.reports import spend
    from tollway.core.stores.open import shared_ledger

    ledger = shared_ledger(settings.ledger_target)
    rows = spend(ledger, group_by=["org", "project", "user", "agent", "node", "alias", "model",
                                   "status"])
    body = []
    for row in sorted(rows, key=lambda r: tuple(str(v) for v in r.group.values())):
        g = row.group
        who = g.get("agent") or g.get("node") or "-"
        body.append([
            g.get("org"), g.get("project"), g.get("user"), who,
            g.get("alias") or f"tool:{g.get('model')}",
            g.get("status"), row.calls, f"{row.input_tokens:,}/{row.output_tokens:,}",
            f"${row.cost:.6f}" + (" +?" if row.unpriced_calls else ""),
        ])
    total = sum((r.cost for r in rows), start=0)
    body.append(["", "", "", "", "", "total", sum(r.calls for r in rows), "", f"${total:.6f}"])
    show.table(
        "Spend from the ledger, by org / project / user / agent (or graph node) / alias",
        ["org", "project", "user", "agent/node", "alias", "status", "calls", "tokens in/out",
         "cost"],
        body, right=("calls", "tokens in/out", "cost"),
    )


def _budget_table(show: Any, settings: Any, clock: Any) -> None:
    from tollway.core.reports import budget_status

    rows = budget_status(settings)
    show.table(
        f"Budgets at the demo clock ({clock.now:%A %H:%M} Europe/Berlin: a new day for bob)",
        ["budget", "scope", "period", "limit", "spent", "remaining", "resets at"],
        [[r.budget, r.scope, r.period, _usd(r.limit, r.unit), _usd(r.spent, r.unit),
          _usd(r.remaining, r.unit), f"{r.resets_at:%Y-%m-%d %H:%M %Z}" if r.resets_at else "-"]
         for r in rows if r.kind == "budget"],
        right=("limit", "spent", "remaining"),
    )


def _usd(value: Any, unit: str) -> str:
    return f"${value:.6f}" if unit == "usd" else f"{value:,}"
