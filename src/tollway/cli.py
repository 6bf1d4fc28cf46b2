"""The ``tollway`` command: demo, spend, budgets, check-config, gateway, keys, dashboard.

Each subcommand lives in ``tollway/commands/<name>.py`` with ``configure(parser)`` and
``run(args) -> int``; only the chosen one is imported, so ``tollway --version`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from tollway import __version__
from tollway.core.errors import TollwayError

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("tollway.commands.demo", "run agents on swapped models with costs, budgets and hours"),
    "spend": ("tollway.commands.spend", "totals from the ledger grouped by org/project/user/model..."),
    "budgets": ("tollway.commands.budgets", "each budget: limit, spent, reserved, remaining, reset"),
    "check-config": ("tollway.commands.check_config", "validate tollway.yaml and print it resolved"),
    "gateway": ("tollway.commands.gateway", "serve the OpenAI- and Anthropic-compatible gateway"),
    "keys": ("tollway.commands.keys", "create, list, revoke, rotate the gateway's virtual keys"),
    "dashboard": ("tollway.commands.dashboard", "the spend dashboard in the browser, over a ledger"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollway", description="One model layer for every agent framework."
    )
    parser.add_argument("--version", action="version", version=f"tollway {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            import_module(module).configure(cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    module = import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except TollwayError as exc:
        print(f"tollway {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
