"""``tollway dashboard``: the spend dashboard over a ledger, for programs that use the
Python API without the gateway.

    tollway dashboard --ledger ~/.local/share/tollway/ledger.db
    tollway dashboard --ledger postgresql://db/tollway --config tollway.yaml --port 8400

How it authenticates: a login token, printed at start inside a link
(``http://127.0.0.1:8400/ui/login?token=...``; opening it logs the browser in with a
session cookie and drops the token from the address bar). The token is random per
start unless ``$TOLLWAY_DASHBOARD_TOKEN`` pins one. A token rather than "loopback is
enough": every local user and process can reach 127.0.0.1, and spend, keys and traces
are not theirs to read. It binds 127.0.0.1 by default; ``--host 0.0.0.0`` serves the
network over plain HTTP (put TLS in front of it).

``--config`` adds the config's budgets (and its ledger when ``--ledger`` is not given);
the keys pages appear only with a key store (``--keys``, or a config with a
``gateway:`` section). Needs uvicorn: ``pip install 'tollway[gateway]'``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

TOKEN_ENV = "TOLLWAY_DASHBOARD_TOKEN"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", metavar="PATH_OR_URL",
                        help="SQLite path, sqlite:///path or postgresql://... (default: the "
                             "config's ledger, else $TOLLWAY_LEDGER or "
                             "~/.local/share/tollway/ledger.db)")
    parser.add_argument("--config", metavar="PATH", help="tollway.yaml: its budgets (and ledger)")
    parser.add_argument("--keys", metavar="TARGET",
                        help="a key store (SQLite path or postgresql:// URL) to list, create "
                             "and revoke keys in (default: the config's gateway.keys, if any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8400, help="port (default 8400)")


def run(args: argparse.Namespace) -> int:
    from tollway.core.errors import ConfigError
    from tollway.gateway.ui.app import Dashboard
    from tollway.gateway.ui.source import standalone_source

    try:
        import uvicorn
    except ImportError:
        raise ConfigError("tollway dashboard needs uvicorn: pip install 'tollway[gateway]'") from None
    token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    source = standalone_source(args.ledger, config=args.config, keys=args.keys)
    app = Dashboard(source, token, link_login=True)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"tollway dashboard over {source.ledger!r}", file=sys.stderr)
    print(f"open http://{host}:{args.port}/ui/login?token={token}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                lifespan="on")
    return 0
