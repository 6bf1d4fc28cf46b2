"""``tollway gateway``: serve the OpenAI- and Anthropic-compatible gateway.

    tollway gateway --config tollway.yaml --host 0.0.0.0 --port 4000 --workers 2

Clients: ``OpenAI(base_url="http://host:4000/v1", api_key=<virtual key>)``,
``Anthropic(base_url="http://host:4000", api_key=<virtual key>)``. Keys come from
``tollway keys create``.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="tollway.yaml (default: $TOLLWAY_CONFIG, else ./tollway.yaml)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, one per core (default 1)")
    parser.add_argument("--graceful-seconds", type=int, default=30,
                        help="how long a shutdown waits for requests in flight (default 30)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    from tollway.gateway.server import serve

    if args.workers < 1:
        raise SystemExit("tollway gateway: --workers must be 1 or more")
    serve(args.config, host=args.host, port=args.port, workers=args.workers,
          graceful_seconds=args.graceful_seconds, log_level=args.log_level)
    return 0
