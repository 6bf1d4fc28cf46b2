"""tollway against raw httpx, the OpenAI SDK and LiteLLM, side by side, in one run.

    uv run python benchmarks/run.py [--quick | --full] [--json PATH] [--only CASES]

Every client calls the same loopback fake OpenAI server (``fake_server.py``, its own
process on its own core; its raw capacity is measured and printed first). Each case
runs for each client in a FRESH process (forked from a per-library worker that has
only imported that library; see ``_worker.py``), several times; figures are medians
over those repetitions, "added" figures are paired within a repetition. Cases:

  import       cold import time and memory, construction, first call (new interpreters)
  sequential   sync and async non-streamed calls; tollway with ledger / budgets on
  concurrency  256 concurrent async calls (raw httpx, aiohttp, httpx-aiohttp, SDK,
               LiteLLM, tollway on both async transports)
  streaming    time to first chunk and per-chunk cost, 50 chunks, sync and async
  router       failover: an alias whose first deployment answers 500
  memory       RSS after 100 calls and after 10,000 (2,000 with --quick)
  overshoot    a budget worth 2.5 calls under 50 concurrent calls: calls that reached
               the server, tollway's stores vs LiteLLM's budget mechanisms

The table goes to stdout and everything to JSON (default
``benchmarks/results/latest.json``). Nothing leaves 127.0.0.1: every benchmark process
runs with a network guard that refuses any other destination, and LiteLLM with its
offline switches. Read benchmarks/README.md for the method and its caveats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clients import tollway_default_transport
from _common import CLIENT_CPU, HERE, OFFLINE_ENV, SERVER_CPU, pin
from _pool import Pool, run_probe
from fake_server import BenchServer, measure_capacity

MODES: dict[str, dict[str, Any]] = {
    # reps: fresh processes per (case, client); seconds / max_calls bound each timing loop.
    "quick": {
        "reps": 3, "import_reps": 1, "import_prime": False, "warmup": 20, "warmup_seconds": 0.12,
        "min_calls": 30,
        "max_calls": 1500, "seconds": 0.25, "concurrency": 256, "conc_reps": 1,
        "conc_calls": 1536, "conc_seconds": 0.8, "stream_seconds": 0.25, "router_seconds": 0.25,
        "memory_calls": 1000, "memory_reps": 1, "overshoot_reps": 1,
    },
    "full": {
        "reps": 5, "import_reps": 5, "import_nopyc_reps": 1, "warmup": 50, "warmup_seconds": 0.12,
        "min_calls": 100,
        "max_calls": 6000, "seconds": 1.0, "concurrency": 256, "conc_reps": 3,
        "conc_calls": 6144, "conc_seconds": 2.0, "stream_seconds": 0.8, "router_seconds": 0.8,
        "memory_calls": 10000, "memory_reps": 1, "overshoot_reps": 3,
    },
}

FAMILIES: dict[str, str] = {
    "import": "cold import, construction and first call",
    "sequential": "sequential calls, sync and async, ledger / budgets on",
    "concurrency": "256 concurrent async calls",
    "streaming": "streaming: first chunk and per-chunk cost",
    "router": "router failover",
    "memory": "memory growth over many calls",
    "overshoot": "budget overshoot under concurrency",
    # "gateway": the gateway load test goes here when the gateway lands. Add
    # benchmarks/_gateway.py with the same three functions as the others --
    # jobs(cfg, env) -> job dicts, run(job) -> result (in a forked worker), and
    # summarize(results, env) -> (tables, data) -- start the gateway process (pinned to
    # SERVER_CPU beside the fake provider, or a third core) from jobs() or here, and
    # point the openai / litellm / raw clients at it; verdict.py then gets its budget.
}
"""Case families in run order; each is benchmarks/_<name>.py."""


_STORE_MODULES = {
    "memory": "tollway.core.cost.budgets.memory",
    "sqlite": "tollway.core.stores.sqlite_budgets",
    "redis": "tollway.core.stores.redis_budgets",
}


def availability() -> dict[str, str]:
    """Clients that cannot run here, with the reason printed in their table."""
    skip: dict[str, str] = {}
    if importlib.util.find_spec("litellm") is None:
        skip["litellm"] = "litellm is not installed (uv sync --group bench)"
    if importlib.util.find_spec("openai") is None:
        skip["openai"] = "openai is not installed (uv sync --group bench)"
    for name in ("aiohttp", "httpx_aiohttp", "httptools"):
        if importlib.util.find_spec(name) is None:
            skip[name.replace("_", "-")] = f"{name} is not installed"
    budgets = importlib.util.find_spec("tollway.core.cost.budgets") is not None
    for store in ("memory", "sqlite", "redis"):
        reason = None
        if not budgets:
            reason = "tollway.core.cost.budgets is not in this build"
        elif importlib.util.find_spec(_STORE_MODULES[store]) is None:
            reason = f"{_STORE_MODULES[store]} is not in this build"
        elif store == "redis":
            reason = redis_down()
        if reason:
            for client in (f"tollway+budgets-{store}", f"tollway+ledger+budgets-{store}"):
                skip[client] = reason
            skip[f"overshoot:{store}"] = reason
    if importlib.util.find_spec("tollway.core.cost.ledger") is None:
        skip["tollway+ledger"] = "tollway.core.cost.ledger is not in this build"
    if importlib.util.find_spec("tollway.core.routing") is None or (
        importlib.util.find_spec("tollway.core.config") is None
    ):
        skip["router:tollway"] = "tollway.core.config / tollway.core.routing are not in this build"
    return skip


def redis_down() -> str | None:
    """None when Redis answers PING at 127.0.0.1:6379, else why not."""
    if importlib.util.find_spec("redis") is None:
        return "the redis package is not installed (tollway[redis])"
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(64).startswith(b"+PONG"):
                return "redis at 127.0.0.1:6379 did not answer PING"
    except OSError as exc:
        return f"redis is not reachable at 127.0.0.1:6379 ({exc.strerror or exc})"
    return None


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("httpx", "openai", "litellm", "aiohttp", "httpx-aiohttp", "tollway"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu_model,
        "python": platform.python_version(), "platform": platform.platform(),
        "load_avg_at_start": load, "versions": versions,
    }


def cpu_counters() -> list[int]:
    """The machine's cumulative CPU ticks (/proc/stat: user nice system idle iowait irq
    softirq steal), to tell afterwards how busy the machine was during the run."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            return [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return []


def busy_report(before: list[int], after: list[int]) -> dict[str, float]:
    if len(before) < 8 or len(after) < 8:
        return {}
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    return {"busy_share": 1 - (delta[3] + delta[4]) / total, "steal_share": delta[7] / total,
            "load_avg_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer repetitions, shorter loops (< 2 min)")
    mode.add_argument("--full", action="store_true", help="the default: more repetitions (< 10 min)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json",
                        help="where to write every figure (default: %(default)s)")
    parser.add_argument("--only", help=f"comma-separated case families: {', '.join(FAMILIES)}")
    parser.add_argument("--reps", type=int, help="override the repetitions of every case")
    args = parser.parse_args()
    mode_name = "quick" if args.quick else "full"
    cfg = dict(MODES[mode_name])
    if args.reps:
        for key in ("reps", "import_reps", "conc_reps", "overshoot_reps"):
            cfg[key] = args.reps
    families = list(FAMILIES)
    if args.only:
        families = [f.strip() for f in args.only.split(",") if f.strip()]
        unknown = set(families) - set(FAMILIES)
        if unknown:
            parser.error(f"unknown case families: {', '.join(sorted(unknown))}")

    os.environ.update(OFFLINE_ENV)
    started = time.perf_counter()
    ticks = cpu_counters()
    tmp = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.json.parent / "worker.log"
    log_path.write_text("")
    info = machine()
    print(f"tollway benchmarks ({mode_name}), {info['date']}, {info['cpus']} CPUs "
          f"({info['cpu_model'] or 'unknown CPU'}), load average at start "
          f"{', '.join(f'{x:.2f}' for x in info['load_avg_at_start'] or [])}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    output: dict[str, Any] = {"mode": mode_name, "settings": cfg, "machine": info, "cases": {}}
    all_tables: list[Any] = []
    try:
        with BenchServer(cpu=SERVER_CPU) as url:
            pinned = pin(CLIENT_CPU)
            capacity = measure_capacity(url, 1.0 if args.quick else 2.0)
            print(f"fake server: {url}, pinned to CPU {SERVER_CPU}, clients to CPU {CLIENT_CPU} "
                  f"({'pinned' if pinned else 'NOT pinned: one core or no affinity support'}); "
                  f"raw capacity {capacity:,.0f} requests/s (pipelined raw sockets)")
            output["server"] = {"url": url, "capacity_rps": capacity, "pinned": pinned}
            env = {"url": url, "skip": availability(), "capacity_rps": capacity,
                   "tollway_transport": tollway_default_transport()}
            print(f"tollway's default async transport: {env['tollway_transport']}")
            for name, reason in env["skip"].items():
                print(f"  skipped: {name}: {reason}")
            output["skipped"] = env["skip"]
            pool = Pool(tmp, log_path)
            try:
                for fam in families:
                    module = importlib.import_module(f"_{fam}")
                    t0 = time.perf_counter()
                    job_list = module.jobs(cfg, env)
                    print(f"\n[{fam}] {FAMILIES[fam]}: {len(job_list)} fresh processes ...",
                          flush=True)
                    results = []
                    for job in job_list:
                        if job.get("probe"):
                            result = run_probe(job["args"], tmp, bytecode=job.get("bytecode", True))
                            result.update({"client": job["client"], "case": job["case"],
                                           "rep": job.get("rep")})
                        else:
                            result = pool.run(job, timeout=job.get("timeout", 180.0))
                        results.append(result)
                    tables, data = module.summarize(results, env)
                    seconds = time.perf_counter() - t0
                    for table in tables:
                        print(table.render())
                    print(f"  ({fam}: {seconds:.1f} s)")
                    all_tables.extend(tables)
                    blocked = sorted({b for r in results for b in r.get("network_blocked", [])})
                    output["cases"][fam] = {"data": data, "seconds": seconds,
                                            "tables": [t.as_json() for t in tables],
                                            "raw": results, "network_blocked": blocked}
                    if blocked:
                        print(f"  NOTE: the network guard refused: {', '.join(blocked)}")
                output["worker_start_seconds"] = pool.start_seconds
            finally:
                pool.close()
        from _verdict import verdict

        table, checks = verdict(output)
        print(table.render())
        output["design_budgets"] = checks
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        output["wall_seconds"] = time.perf_counter() - started
        output["machine"].update(busy_report(ticks, cpu_counters()))
        args.json.write_text(json.dumps(output, indent=2, default=str))
    busy = output["machine"]
    print(f"\nwall time {output['wall_seconds']:.0f} s ({mode_name} mode); both CPUs were "
          f"{busy.get('busy_share', 0):.0%} busy on average (this run included; steal "
          f"{busy.get('steal_share', 0):.0%}), load average at end "
          f"{', '.join(f'{x:.2f}' for x in busy.get('load_avg_at_end') or [])}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
