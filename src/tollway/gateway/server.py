"""Serving the gateway: uvicorn with uvloop and httptools, one process per worker.

Why uvicorn: with its C HTTP parser (httptools) and uvloop it serves plain ASGI and
streams, and its multi-process mode (``--workers N``: a supervisor that forks N workers
sharing the listening socket) spreads the load over the cores. granian (Rust, 2.8.9)
was measured beside it (``benchmarks/gateway.py``, its ``tollway-on-granian`` row, run
when granian is installed; 2026-12-08, one worker, keys + budgets + ledger on): the
same added p50 (726 against 724 µs), 1.15x the throughput at 64 connections, 42 MB
more RSS and a slower cold start; not enough to trade uvicorn's graceful shutdown and
disconnect handling (which the tests cover) for it.

Every worker builds its own app from ``$TOLLWAY_CONFIG`` (keys cache, Models, metrics are per process; keys, budgets and the ledger are shared
through their stores; ``/metrics`` sums the workers' counters through
:mod:`tollway.gateway.metrics_share`).

Graceful shutdown (SIGTERM / SIGINT): uvicorn stops accepting, lets requests in
flight finish (streams included) for up to ``graceful_seconds``, then runs the app's
lifespan shutdown (the key refresher stops, stores close).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tollway.core.config import CONFIG_ENV, load_config
from tollway.core.errors import ConfigError
from tollway.gateway.config import gateway_spec
from tollway.gateway.metrics_share import METRICS_DIR_ENV

__all__ = ["check", "serve"]


def check(config: str | None) -> Path:
    """Validate the config, the gateway section and the key store before any worker
    starts (a mistake is one clear message, not N worker tracebacks)."""
    settings = load_config(config)
    if settings is None or settings.path is None:
        raise ConfigError(f"the gateway needs a tollway.yaml: pass --config PATH or set {CONFIG_ENV}")
    spec = gateway_spec(settings)
    if spec.auth == "keys":
        from tollway.gateway.key_store import open_key_store

        open_key_store(spec.keys_target()).close()  # creates the tables once, up front
    return settings.path


def serve(config: str | None, *, host: str = "127.0.0.1", port: int = 4000, workers: int = 1,
          graceful_seconds: int = 30, log_level: str = "info") -> None:
    path = check(config)
    os.environ[CONFIG_ENV] = str(path.resolve())
    import uvicorn

    # Several workers sum their metrics through files in a directory of this run only
    # (a fresh one each start: counters begin at zero with the gateway, as they would
    # in one process).
    shared = tempfile.mkdtemp(prefix="tollway-metrics-") if workers > 1 else None
    if shared is not None:
        os.environ[METRICS_DIR_ENV] = shared
    try:
        uvicorn.run(
            "tollway.gateway.app:app_from_environment", factory=True, host=host, port=port,
            workers=workers, loop="uvloop", http="httptools", lifespan="on", access_log=False,
            timeout_graceful_shutdown=int(graceful_seconds), log_level=log_level,
        )
    finally:
        if shared is not None:
            os.environ.pop(METRICS_DIR_ENV, None)
            shutil.rmtree(shared, ignore_errors=True)
