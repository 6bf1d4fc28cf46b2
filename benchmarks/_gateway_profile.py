"""The gateway's own CPU per request, in-process: the ASGI app driven directly (no HTTP
server, no load generator) against the fake upstream, under cProfile.

    python benchmarks/_gateway_profile.py [--mode on|off] [--calls 3000] [--top 30] [--only-src]
                                          [--stream] [--no-profile]

On a machine shared with other work, wall-clock figures of ``gateway.py`` are noise;
this isolates what tollway spends between the ASGI ``receive`` of a request and the
last ``send`` of its reply (the upstream call over loopback included, the server's
HTTP parsing excluded). ``--no-profile`` prints the mean CPU time (process time, not
wall) per request; the profile ranks functions by own time. cProfile inflates code
with many small calls: read the ranking, confirm a fix with ``--no-profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OFFLINE_ENV, SERVER_CPU, install_network_guard
from fake_server import BenchServer


def _settings(mode: str, upstream: str, tmp: Path) -> Any:
    from tollway.core.config import TollwaySettings

    data: dict[str, Any] = {"models": {"fast": {"model": "openai/gpt-4o-mini", "api_base": upstream,
                                               "api_key": "env:OPENAI_API_KEY"}}}
    if mode == "on":
        data["ledger"] = str(tmp / "ledger.db")
        data["gateway"] = {"keys": str(tmp / "keys.db"),
                           "budget_store": {"backend": "sqlite", "path": str(tmp / "budgets.db")}}
    else:
        data["ledger"] = False
        data["gateway"] = {"auth": "none"}
    return TollwaySettings.from_dict(data)


class Harness:
    """One ASGI request at a time, the way uvicorn hands it over."""

    def __init__(self, app: Any, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.app = app
        self.scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                      "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
                      "raw_path": b"/v1/chat/completions", "query_string": b"",
                      "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
                      "server": ("127.0.0.1", 8000)}
        self.body = body

    async def call(self) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []
        delivered = False
        never = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await never  # a client that stays connected
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(dict(self.scope), receive, send)
        never.cancel()
        status = sent[0]["status"]
        return status, b"".join(m.get("body", b"") for m in sent[1:])


async def _lifespan(app: Any, phase: str) -> None:
    messages = asyncio.Queue[dict[str, Any]]()
    await messages.put({"type": f"lifespan.{phase}"})
    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].endswith(".failed"):
            raise RuntimeError(message)
        done.set()

    task = asyncio.ensure_future(app({"type": "lifespan"}, messages.get, send))
    await done.wait()
    if phase == "shutdown":
        await task
    else:
        app._lifespan_task = task


async def run(args: argparse.Namespace, upstream: str, tmp: Path) -> None:
    from tollway.gateway.app import create_app
    from tollway.gateway.keys import new_key

    app = create_app(_settings(args.mode, upstream, tmp))
    await _lifespan(app, "startup")
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
               (b"user-agent", b"bench")]
    if args.mode == "on":
        secret, key, digest = new_key(org="bench", budgets=["1000000 usd/day"])
        app.gateway.keys.store.add(key, digest)
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    body: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "What is the answer?"}]}
    if args.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    payload = json.dumps(body).encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    harness = Harness(app, headers, payload)
    for _ in range(200):
        status, reply = await harness.call()
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {reply[:300]!r}")
    profiler = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if not args.no_profile:
        profiler.enable()
    for _ in range(args.calls):
        await harness.call()
    if not args.no_profile:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"{args.mode}{' stream' if args.stream else ''}: {args.calls} requests, "
          f"CPU {cpu / args.calls * 1e6:.0f} us/request, wall {wall / args.calls * 1e6:.0f} us/request"
          f"{' (profiled)' if not args.no_profile else ''}")
    await _lifespan(app, "shutdown")
    if not args.no_profile:
        stats = pstats.Stats(profiler)
        if args.dump:
            stats.dump_stats(args.dump)
        stats.sort_stats("tottime").print_stats("tollway" if args.only_src else "", args.top)
        stats.sort_stats("cumulative").print_stats("tollway" if args.only_src else "", args.top)
        if args.callers:
            stats.print_callers(args.callers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("on", "off"), default="on")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--only-src", action="store_true", help="only tollway's own functions")
    parser.add_argument("--no-profile", action="store_true", help="time only (CPU per request)")
    parser.add_argument("--dump", help="also write the profile to this file (pstats)")
    parser.add_argument("--callers", help="also print who calls functions matching this")
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
    install_network_guard()
    tmp = Path(tempfile.mkdtemp(prefix="tollway-gwprofile-"))
    os.environ["XDG_DATA_HOME"] = str(tmp / "xdg")
    with BenchServer(cpu=SERVER_CPU) as url:
        try:
            import uvloop

            uvloop.run(run(args, url, tmp))
        except ImportError:
            asyncio.run(run(args, url, tmp))


if __name__ == "__main__":
    main()
