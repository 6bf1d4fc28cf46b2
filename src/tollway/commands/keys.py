"""``tollway keys``: create, list, revoke and rotate the gateway's virtual keys.

    tollway keys create --org acme --project search --user alice --models fast,smart \\
        --budget "10 usd/day" --rpm 60 --hours "mon-fri 08:00-19:00 Europe/Berlin" --expires 30d
    tollway keys list [--format json]
    tollway keys revoke key_1a2b3c4d5e6f
    tollway keys rotate key_1a2b3c4d5e6f

The secret is printed once, by ``create`` and ``rotate``; the store keeps only its hash
and prefix. The store is the config's ``gateway.keys`` (``--config``), else
``$TOLLWAY_KEYS_DB``, else ``~/.local/share/tollway/keys.db``; ``--store`` overrides it.
Every running gateway sees a change within a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.gateway.key_store import KeyStore
    from tollway.gateway.keys import VirtualKey


def _store_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="tollway.yaml whose gateway.keys to use")
    parser.add_argument("--store", metavar="TARGET", default=default,
                        help="key store: a SQLite path or a postgresql:// URL (overrides the config)")


def configure(parser: argparse.ArgumentParser) -> None:
    _store_options(parser, default=None)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    # Every action takes --config / --store too, so `tollway keys create --config F` works
    # as well as `tollway keys --config F create` (SUPPRESS: an action that does not
    # name them leaves what came before the action).
    actions = argparse.ArgumentParser(add_help=False)
    _store_options(actions, default=argparse.SUPPRESS)
    create = sub.add_parser("create", parents=[actions],
                            help="create a key and print its secret once")
    for name in ("org", "project", "user", "name"):
        create.add_argument(f"--{name}", help=f"attribution: {name}" if name != "name" else "a label")
    create.add_argument("--models", help="comma-separated aliases or provider/model the key may "
                                         "use (default: every alias of the config)")
    create.add_argument("--vector-stores", default="", metavar="A,B",
                        help="comma-separated vector stores the key may search ('*' for all; "
                             "default: none)")
    create.add_argument("--vector-store-writes", default="", metavar="A,B",
                        help="comma-separated vector stores the key may also add files to and "
                             "remove them from ('*' for all; default: none)")
    create.add_argument("--budget", action="append", default=[], metavar="LIMIT",
                        help="'10 usd/day', '200000 tokens/month', '100 requests/hour' (repeatable)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--mcp", help="MCP servers / tools the key may use (none without it): "
                        "comma-separated 'server', 'server:tool' or '*', e.g. time,docs:search")
    create.add_argument("--hours", help="allowed hours, e.g. 'mon-fri 08:00-19:00 Europe/Berlin'")
    create.add_argument("--expires", help="30d, 12h, 2w, or a date (default: never)")
    create.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE",
                        help="a tag on every call of the key (repeatable)")
    listing = sub.add_parser("list", parents=[actions],
                             help="every key: id, prefix, attribution, limits, state")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    for action in ("revoke", "rotate"):
        cmd = sub.add_parser(action, parents=[actions],
                             help="stop the key everywhere" if action == "revoke"
                             else "a new secret for the same key (the old one stops working)")
        cmd.add_argument("key_id", help="the key's id (key_...), as `tollway keys list` shows")


def _store(args: argparse.Namespace) -> KeyStore:
    from tollway.core.config import load_config
    from tollway.gateway.config import gateway_spec
    from tollway.gateway.key_store import open_key_store

    if args.store:
        return open_key_store(args.store)
    return open_key_store(gateway_spec(load_config(args.config)).keys_target())


def run(args: argparse.Namespace) -> int:
    from tollway.gateway.keys import new_key, parse_expiry

    store = _store(args)
    out = sys.stdout
    try:
        if args.action == "create":
            tags = dict(item.partition("=")[::2] for item in args.tag)
            models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
            secret, key, digest = new_key(
                name=args.name, org=args.org, project=args.project, user=args.user, tags=tags,
                models=models, budgets=args.budget, rpm=args.rpm, tpm=args.tpm, hours=args.hours,
                mcp=args.mcp,
                expires_at=parse_expiry(args.expires),
                vector_stores=[v.strip() for v in args.vector_stores.split(",") if v.strip()],
                vector_store_writes=[v.strip() for v in args.vector_store_writes.split(",")
                                     if v.strip()],
            )
            store.add(key, digest)
            out.write(f"created {key.id}\n{secret}\n")
            out.write("(the key is shown once; store it now)\n")
        elif args.action == "list":
            keys = store.list()
            if args.format == "json":
                json.dump([k.to_json() for k in keys], out, indent=2)
                out.write("\n")
            else:
                write_table(keys, out)
        elif args.action == "revoke":
            key = store.revoke(args.key_id)
            out.write(f"revoked {key.id} ({key.prefix}...)\n")
        else:
            secret, key = store.rotate(args.key_id)
            out.write(f"rotated {key.id}\n{secret}\n(the old secret no longer works)\n")
    finally:
        store.close()
    return 0


def _state(key: VirtualKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expired():
        return "expired"
    if key.expires_at is not None:
        return "until " + datetime.fromtimestamp(key.expires_at, UTC).strftime("%Y-%m-%d")
    return "active"


def write_table(keys: list[VirtualKey], out: object) -> None:
    headers = ["id", "prefix", "org/project/user", "models", "limits", "state"]
    rows = []
    for key in keys:
        who = "/".join(v or "-" for v in (key.org, key.project, key.user))
        limits = list(key.budgets)
        if key.rpm is not None:
            limits.append(f"{key.rpm} rpm")
        if key.tpm is not None:
            limits.append(f"{key.tpm} tpm")
        if key.hours:
            limits.append(key.hours)
        if key.mcp:
            limits.append("mcp " + ",".join(key.mcp))
        models = "all aliases" if key.models is None else ",".join(key.models)
        rows.append([key.id, key.prefix + "...", who, models, "; ".join(limits) or "-", _state(key)])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    write = out.write  # type: ignore[attr-defined]
    for row in [headers, ["-" * w for w in widths], *rows]:
        write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
