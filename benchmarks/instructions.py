"""Instructions per call, not seconds: a figure that holds on a loaded machine.

    python benchmarks/instructions.py [--calls 2000] [--only tollway,httpcore] [--mode sync|async|both]

Wall-clock benchmarks (run.py) are invalid while other work shares the cores; user-space
instruction counts are not. Each (client, mode) runs twice in a fresh interpreter under
``valgrind --tool=callgrind`` (the whole process, threads included: SQLite work done on
a worker thread counts; ``perf stat`` has no hardware counters on this VM): once with a few warm-up calls only and once with ``--calls``
more. The difference divided by ``--calls`` is the cost of one call, start-up and
imports cancelled out. The server is benchmarks/fake_server.py in its own process (its
instructions are not counted).

Issue 22 (telemetry off costs nothing): ``tollway`` runs with the ``otel`` extra
installed and telemetry off; ``tollway-nohook`` is the same Model with the telemetry
read taken out of ``complete``/``acomplete`` (a subclass, defined below, with the same
lines minus the hook). The child also reports whether ``opentelemetry`` was imported at
all: with telemetry off it must not be. ``tollway+otel`` is telemetry on (the SDK with
spans batched to a discarding exporter, as in run.py): the cost of turning it on. The
batch exporter's thread is counted too (callgrind counts the whole process).

Requires valgrind. Under callgrind a call runs ~50x slower: 200 calls per client take
~1-2 minutes; the whole table ~15-25 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WARMUP = 100
SYNC_CLIENTS = ["httptools", "httpcore", "tollway", "tollway-nohook", "tollway+otel", "tollway+ledger",
                "tollway+budgets-sqlite", "tollway+ledger+budgets-sqlite"]
ASYNC_CLIENTS = ["httptools", "aiohttp", "tollway", "tollway-nohook", "tollway+otel", "tollway+ledger",
                 "tollway+budgets-sqlite", "tollway+ledger+budgets-sqlite"]
BASELINE = {"sync": "httptools", "async": "httptools"}


def _nohook_model(url: str, tmp: Path) -> Any:
    """The benchmark's tollway Model with the telemetry read removed from the call path:
    what a call would cost if the telemetry hook had never been written."""
    import _clients

    from tollway.core.effects import adrive, drive
    from tollway.core.inputs import build_request
    from tollway.core.model import Model
    from tollway.core.routing.router import SingleDeployment

    class NoHook(Model):
        def complete(self, messages: Any, /, **params: Any) -> Any:
            ctx = self._context(build_request(messages, **params), stream=False)
            route = self._route
            if route.__class__ is SingleDeployment:
                return drive(self._attempt(ctx, route.deployment))
            return route.run(ctx, lambda dep: drive(self._attempt(ctx, dep)))

        async def acomplete(self, messages: Any, /, **params: Any) -> Any:
            ctx = self._context(build_request(messages, **params), stream=False)
            route = self._route
            if route.__class__ is SingleDeployment:
                return await adrive(self._attempt(ctx, route.deployment))
            return await route.arun(ctx, lambda dep: adrive(self._attempt(ctx, dep)))

    model = _clients.tollway_model("tollway", url, tmp)
    model.__class__ = NoHook
    return model


def child(client: str, mode: str, calls: int, url: str) -> None:
    """Make WARMUP + ``calls`` calls and exit (perf counts the process)."""
    from _common import OFFLINE_ENV, install_network_guard

    os.environ.update(OFFLINE_ENV)
    install_network_guard()
    import _clients
    from _common import PROMPT

    tmp = Path(tempfile.mkdtemp(prefix="tollway-instr-"))
    if client == "tollway-nohook":
        model = _nohook_model(url, tmp)
        sync_call: Any = lambda: model.complete(PROMPT)  # noqa: E731
        async_call: Any = lambda: model.acomplete(PROMPT)  # noqa: E731
    elif mode == "sync":
        sync_call = _clients.sync_call(client, url, tmp)
    if mode == "sync":
        for _ in range(WARMUP + calls):
            sync_call()
    else:
        async def run() -> None:
            acall = async_call if client == "tollway-nohook" else _clients.async_call(client, url, tmp)
            for _ in range(WARMUP + calls):
                await acall()

        asyncio.run(run())
    _clients.cleanup()
    print(f"opentelemetry imported: {'opentelemetry' in sys.modules}", file=sys.stderr)


def _count(client: str, mode: str, calls: int, url: str) -> tuple[int, bool]:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           sys.executable, __file__,
           "--child", client, "--mode", mode, "--calls", str(calls), "--url", url]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stderr
    otel = "opentelemetry imported: True" in out
    for line in out.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip()), otel
    raise RuntimeError(f"no instruction count in callgrind output:\n{out}")


def per_call(client: str, mode: str, calls: int, url: str) -> tuple[float, bool]:
    base, _ = _count(client, mode, 0, url)
    total, otel = _count(client, mode, calls, url)
    return (total - base) / calls, otel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--mode", default="both")
    parser.add_argument("--only", default="")
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode, args.calls, args.url)
        return
    from fake_server import BenchServer

    only = set(filter(None, args.only.split(",")))
    modes = ["sync", "async"] if args.mode == "both" else [args.mode]
    with BenchServer() as url:
        for mode in modes:
            clients = SYNC_CLIENTS if mode == "sync" else ASYNC_CLIENTS
            print(f"\n{mode}: user-space instructions per call ({args.calls} calls, "
                  f"after {WARMUP} warm-up)")
            baseline = None
            for client in clients:
                if only and client not in only:
                    continue
                n, otel = per_call(client, mode, args.calls, url)
                if client == BASELINE[mode]:
                    baseline = n
                added = f"{n - baseline:+,.0f}" if baseline is not None and client != BASELINE[mode] else ""
                note = "  (opentelemetry imported)" if otel else ""
                print(f"  {client:32} {n:12,.0f}  {added:>12}{note}", flush=True)


if __name__ == "__main__":
    main()
