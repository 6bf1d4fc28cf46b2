"""Where a client's time per call goes: cProfile over many calls against the fake server.

    uv run python benchmarks/_profile.py [--client tollway] [--mode sync|async|stream|concurrent]
                                        [--calls 3000] [--top 30] [--only-src]

Prints the functions with the most own time (tottime) and cumulative time, per call in
microseconds. cProfile adds its own cost to every Python function call, so absolute
figures are inflated (more so for code with many small calls); read the ranking, and
confirm a fix with run.py. ``--only-src`` keeps tollway's own functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CLIENT_CPU, OFFLINE_ENV, SERVER_CPU, install_network_guard, pin
from fake_server import BenchServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", default="tollway")
    parser.add_argument("--mode", choices=("sync", "async", "stream", "concurrent"), default="sync")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--only-src", action="store_true", help="only tollway's own functions")
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    install_network_guard()
    import _clients

    tmp = Path(tempfile.mkdtemp(prefix="tollway-profile-"))
    with BenchServer(cpu=SERVER_CPU) as url:
        pin(CLIENT_CPU)
        profiler = cProfile.Profile()
        if args.mode == "sync":
            call = _clients.sync_call(args.client, url, tmp)
            for _ in range(50):
                call()
            profiler.enable()
            for _ in range(args.calls):
                call()
            profiler.disable()
        elif args.mode == "stream":
            stream = _clients.sync_stream(args.client, url, tmp)
            for _ in range(20):
                stream()
            profiler.enable()
            for _ in range(args.calls):
                stream()
            profiler.disable()
        elif args.mode == "async":
            async def run() -> None:
                acall = _clients.async_call(args.client, url, tmp)
                for _ in range(50):
                    await acall()
                profiler.enable()
                for _ in range(args.calls):
                    await acall()
                profiler.disable()

            asyncio.run(run())
        else:
            async def wave() -> None:
                acall = _clients.async_call(args.client, url, tmp)
                left = args.calls

                async def caller() -> None:
                    nonlocal left
                    while left > 0:
                        left -= 1
                        await acall()

                await asyncio.gather(*(acall() for _ in range(args.concurrency)))
                profiler.enable()
                await asyncio.gather(*(caller() for _ in range(args.concurrency)))
                profiler.disable()

            asyncio.run(wave())
        _clients.cleanup()
    stats = pstats.Stats(profiler)
    per = 1e6 / args.calls
    src = str(Path(__file__).resolve().parents[1] / "src")
    rows = []
    for (file, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if args.only_src and not file.startswith(src):
            continue
        where = file.replace(src + "/", "").split("site-packages/")[-1]
        rows.append((tottime * per, cumtime * per, ncalls / args.calls, f"{where}:{line}({name})"))
    total = sum(r[0] for r in rows)
    print(f"{args.client} {args.mode}: {args.calls} calls profiled; own time of the listed "
          f"functions {total:.1f} us/call (inflated by cProfile)")
    for title, key in (("own time (tottime)", 0), ("cumulative time", 1)):
        print(f"\n-- top {args.top} by {title}, us per call --")
        print(f"{'own':>8} {'cum':>8} {'calls':>6}  function")
        for own, cum, ncalls, where in sorted(rows, key=lambda r: -r[key])[: args.top]:
            print(f"{own:8.2f} {cum:8.2f} {ncalls:6.1f}  {where}")


if __name__ == "__main__":
    main()
