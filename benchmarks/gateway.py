"""The gateway side by side: direct, tollway gateway (keys + budgets + ledger on, and all
off), LiteLLM proxy 1.110.2 and Portkey's gateway 1.15.2, in one run, over the same fake
upstream.

    uv run python benchmarks/gateway.py             # full (~4 min here)
    uv run python benchmarks/gateway.py --quick     # shorter loops, 20,000-call soak
    uv run python benchmarks/gateway.py --only tollway-on,portkey --json /tmp/gw.json

Method: the fake upstream (``fake_server.py``, raw asyncio) runs pinned to CPU 1; each
gateway (one worker) and the load generator (``_http_load.py``, raw asyncio sockets with
keep-alive) are pinned to CPU 0, so every gateway gets the same single core. Figures:

- sequential: p50 / p99 of one connection calling back to back; "added" = minus direct;
- throughput at 64 and 256 concurrent connections (requests/s over a few seconds);
- stream time to first byte (a 50-chunk stream; p50);
- RSS of the gateway's processes after the run; for tollway-on also over a soak of
  100,000 calls (RSS after the first 10% vs after all of it);
- cold start: from spawning the server to its first answered chat completion;
- scaling: tollway-on with ``--workers 2`` on both cores (not pinned) vs one worker,
  driven by ``wrk`` (one thread; ``apt-get install wrk``) when installed: the Python
  generator needs most of a core at these rates, which on this two-core machine left
  the second worker 1.2x to show (2,495 -> 3,091 req/s; with wrk 2,190 -> 4,696).

Peers are installed on first use under ~/.cache/tollway-bench (``_peers.py``); one that
cannot be installed or started is reported as skipped. The goals (DESIGN.md) are
checked in the verdict table at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _http_load as load  # noqa: E402
import _peers as peers  # noqa: E402
from _common import OFFLINE_ENV, latency_stats, pin  # noqa: E402
from fake_server import BenchServer, measure_capacity  # noqa: E402

SERVER_CPU, GATEWAY_CPU = 1, 0
PROMPT = [{"role": "user", "content": "What is the answer?"}]
Launcher = Callable[[str, int, Path], tuple[subprocess.Popen[bytes], str, dict[str, str], str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinned(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env.update(OFFLINE_ENV)
    env["XDG_DATA_HOME"] = str(tmp / "xdg")
    env["HOME"] = str(tmp / "home")
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "tollway-bench-pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# --------------------------------------------------------------------------- launchers


def tollway_launcher(mode: str, workers: int = 1, server: str = "uvicorn") -> Launcher:
    def launch(upstream: str, port: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str], str]:
        work = tmp / f"tollway-{mode}-{workers}-{server}"
        work.mkdir(parents=True)
        config = work / "tollway.yaml"
        lines = ["models:", "  fast:", "    model: openai/gpt-4o-mini", f"    api_base: {upstream}",
                 "    api_key: env:OPENAI_API_KEY"]
        if mode == "on":
            lines += [f"ledger: {work / 'ledger.db'}", "gateway:", f"  keys: {work / 'keys.db'}",
                      f"  budget_store: {{backend: sqlite, path: {work / 'budgets.db'}}}"]
        else:
            lines += ["ledger: false", "gateway:", "  auth: none"]
        config.write_text("\n".join(lines) + "\n")
        env = _env(tmp)
        headers: dict[str, str] = {}
        if mode == "on":
            out = subprocess.run(
                [sys.executable, "-m", "tollway.cli", "keys", "--config", str(config), "create",
                 "--org", "bench", "--budget", "1000000 usd/day"],
                env=env, capture_output=True, text=True, check=True).stdout.splitlines()
            headers = {"authorization": f"Bearer {out[1]}"}
        if server == "granian":
            import importlib.util

            if importlib.util.find_spec("granian") is None:
                raise RuntimeError("granian is not installed in this venv (pip install granian)")
            env["TOLLWAY_CONFIG"] = str(config)
            cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                   "--loop", "uvloop", "--no-ws", "--log-level", "warning",
                   "tollway.gateway.app:app_from_environment"]
        else:
            cmd = [sys.executable, "-m", "tollway.cli", "gateway", "--config", str(config),
                   "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
        cpu = GATEWAY_CPU if workers == 1 else None
        proc = subprocess.Popen(cmd, env=env, preexec_fn=_pinned(cpu),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return proc, f"http://127.0.0.1:{port}", headers, "fast"

    return launch


def litellm_launcher(upstream: str, port: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str], str]:
    python = peers.install_litellm()
    if python is None:
        raise RuntimeError("litellm-proxy-requirements.txt not found")
    work = tmp / "litellm"
    work.mkdir()
    proc, url, headers = peers.start_litellm(python, upstream, port, work, _env(tmp))
    os.sched_setaffinity(proc.pid, {GATEWAY_CPU})
    return proc, url, headers, "gpt-4o-mini"


def portkey_launcher(upstream: str, port: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str], str]:
    script = peers.install_portkey()
    if script is None:
        raise RuntimeError("npm is not installed")
    work = tmp / "portkey"
    work.mkdir()
    proc, url, headers = peers.start_portkey(script, upstream + "/v1", port, work, _env(tmp))
    os.sched_setaffinity(proc.pid, {GATEWAY_CPU})
    return proc, url, headers, "gpt-4o-mini"


# --------------------------------------------------------------------------- measuring


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants (workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = {pid}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    total = 0
    for member in tree:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _wait_ready(url: str, headers: dict[str, str], model: str, proc: subprocess.Popen[bytes],
                timeout: float = 60) -> float:
    """Seconds until the first chat completion answered 200."""
    start = time.perf_counter()
    body = {"model": model, "messages": PROMPT}
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            latencies = asyncio.run(load.sequential(url, "/v1/chat/completions", body, headers, 1, warmup=0))
            if latencies:
                return time.perf_counter() - start
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            pass
        if time.perf_counter() - start > timeout:
            raise RuntimeError("the server did not answer a chat completion in time")
        time.sleep(0.02)


def measure(name: str, launch: Launcher | None, upstream: str, tmp: Path, quick: bool,
            soak: int = 0) -> dict[str, Any]:
    """Every figure for one target (``launch`` None: the upstream itself, direct)."""
    seq_n = 2_000 if quick else 5_000
    seconds = 2.0 if quick else 4.0
    row: dict[str, Any] = {"name": name}
    proc: subprocess.Popen[bytes] | None = None
    if launch is None:
        url, headers, model = upstream, {}, "gpt-4o-mini"
    else:
        proc, url, headers, model = launch(upstream, free_port(), tmp)
        row["cold_start_s"] = _wait_ready(url, headers, model, proc)
    try:
        body = {"model": model, "messages": PROMPT}
        path = "/v1/chat/completions"
        stats = latency_stats(asyncio.run(load.sequential(url, path, body, headers, seq_n)))
        row.update({"p50_us": stats["p50_us"], "p99_us": stats["p99_us"]})
        for conc in (64, 256):
            row[f"rps_{conc}"] = asyncio.run(load.throughput(url, path, body, headers, conc, seconds))["rps"]
        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        ttfb = latency_stats(asyncio.run(load.first_byte(url, path, stream_body, headers, 100 if quick else 300)))
        row["ttfb_p50_us"] = ttfb["p50_us"]
        if proc is not None:
            row["rss_mb"] = _tree_rss_kb(proc.pid) / 1024
            if soak:
                asyncio.run(load.count(url, path, body, headers, soak // 10))
                early = _tree_rss_kb(proc.pid)
                errors = asyncio.run(load.count(url, path, body, headers, soak - soak // 10))
                late = _tree_rss_kb(proc.pid)
                row.update({"soak_calls": soak, "soak_rss_early_mb": early / 1024,
                            "soak_rss_late_mb": late / 1024, "soak_errors": errors})
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return row


def scaling(upstream: str, tmp: Path, quick: bool) -> dict[str, Any]:
    """tollway-on throughput at 256 connections with 1 and 2 workers, neither pinned,
    driven by wrk when it is installed (``apt-get install wrk``): the Python load
    generator needs most of a core at these rates, which on two cores leaves a second
    worker little to show. Without wrk the Python generator is used, and said."""
    out: dict[str, Any] = {"generator": "wrk" if shutil.which("wrk") else "python"}
    seconds = 2.0 if quick else 4.0
    for workers in (1, 2):
        launch = tollway_launcher("on", workers=workers)
        proc, url, headers, model = launch(upstream, free_port(), tmp / f"scale{workers}")
        try:
            _wait_ready(url, headers, model, proc)
            body = {"model": model, "messages": PROMPT}
            measured = load.wrk_throughput(url, "/v1/chat/completions", body, headers, 256,
                                           seconds, tmp)
            if measured is None:
                measured = asyncio.run(load.throughput(
                    url, "/v1/chat/completions", body, headers, 256, seconds))
            out[f"rps_workers_{workers}"] = measured["rps"]
            out[f"errors_workers_{workers}"] = measured["errors"]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    return out


# --------------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def report(rows: list[dict[str, Any]], scale: dict[str, Any], capacity: float) -> list[tuple[str, bool, str]]:
    direct = next(r for r in rows if r["name"] == "direct")
    print(f"\nfake upstream capacity: {capacity:,.0f} req/s (raw pipelined sockets)\n")
    head = ["target", "p50 us", "added p50", "p99 us", "added p99", "req/s @64", "req/s @256",
            "stream TTFB us", "RSS MB", "cold start s"]
    table = [head]
    for r in rows:
        if "error" in r:
            table.append([r["name"], f"skipped: {r['error']}"] + [""] * (len(head) - 2))
            continue
        table.append([
            r["name"], _fmt(r["p50_us"]), _fmt(r["p50_us"] - direct["p50_us"]), _fmt(r["p99_us"]),
            _fmt(r["p99_us"] - direct["p99_us"]), _fmt(r["rps_64"]), _fmt(r["rps_256"]),
            _fmt(r["ttfb_p50_us"]), _fmt(r.get("rss_mb"), 1), _fmt(r.get("cold_start_s"), 2),
        ])
    full = [line for line in table if not str(line[1]).startswith("skipped")]
    widths = [max(len(str(line[i])) for line in full) for i in range(len(head))]
    for number, line in enumerate(table):
        if len(line) == 2 or (len(line) > 1 and str(line[1]).startswith("skipped")):
            print(f"{line[0].ljust(widths[0])}  {line[1]}")
        else:
            print("  ".join(str(c).rjust(widths[i]) if i else str(c).ljust(widths[i]) for i, c in enumerate(line)))
        if number == 0:
            print("  ".join("-" * w for w in widths))
    by = {r["name"]: r for r in rows if "error" not in r}
    on, off = by.get("tollway-on"), by.get("tollway-off")
    verdicts: list[tuple[str, bool, str]] = []
    if on:
        added = on["p50_us"] - direct["p50_us"]
        verdicts.append(("added p50 <= 500 us (keys + budgets + ledger on)", added <= 500, f"{added:,.0f} us"))
        verdicts.append(("cold start <= 1 s", on["cold_start_s"] <= 1.0, f"{on['cold_start_s']:.2f} s"))
        if "soak_rss_late_mb" in on:
            growth = on["soak_rss_late_mb"] - on["soak_rss_early_mb"]
            verdicts.append((f"RSS flat over {on['soak_calls']:,} calls (< 10 MB growth after the first 10%)",
                             growth < 10, f"{on['soak_rss_early_mb']:.1f} -> {on['soak_rss_late_mb']:.1f} MB"))
    portkey, litellm = by.get("portkey"), by.get("litellm")
    for conc in (64, 256):
        key = f"rps_{conc}"
        if on and portkey:
            verdicts.append((f"on >= Portkey @{conc}", on[key] >= portkey[key],
                             f"{on[key]:,.0f} vs {portkey[key]:,.0f} req/s"))
        if on and litellm:
            verdicts.append((f"on >= 10x LiteLLM @{conc}", on[key] >= 10 * litellm[key],
                             f"{on[key]:,.0f} vs 10 x {litellm[key]:,.0f} req/s"))
        if off and portkey:
            verdicts.append((f"off >= 2x Portkey @{conc}", off[key] >= 2 * portkey[key],
                             f"{off[key]:,.0f} vs 2 x {portkey[key]:,.0f} req/s"))
    if scale:
        one, two = scale["rps_workers_1"], scale["rps_workers_2"]
        errors = scale.get("errors_workers_1", 0) + scale.get("errors_workers_2", 0)
        verdicts.append(("scales with --workers (2 workers > 1.3x one, both cores)",
                         two > 1.3 * one and not errors,
                         f"{one:,.0f} -> {two:,.0f} req/s ({scale.get('generator', 'python')} "
                         f"load generator, {errors:.0f} errors)"))
    print("\nverdicts")
    for text, ok, detail in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}: {detail}")
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated targets: direct, tollway-on, tollway-off, "
                                       "tollway-on-granian, litellm, portkey, scaling")
    parser.add_argument("--json", default=str(HERE / "results" / "gateway.json"))
    parser.add_argument("--soak", type=int, help="calls in tollway-on's RSS soak (default 100,000; quick 20,000)")
    args = parser.parse_args(argv)
    chosen = set(args.only.split(",")) if args.only else None
    soak = args.soak if args.soak is not None else (20_000 if args.quick else 100_000)
    targets: list[tuple[str, Launcher | None]] = [
        ("direct", None),
        ("tollway-on", tollway_launcher("on")),
        ("tollway-off", tollway_launcher("off")),
        ("tollway-on-granian", tollway_launcher("on", server="granian")),
        ("litellm", litellm_launcher),
        ("portkey", portkey_launcher),
    ]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tollway-gw-bench-") as tmp_name, \
            BenchServer(cpu=SERVER_CPU) as upstream:
        tmp = Path(tmp_name)
        pin(GATEWAY_CPU)
        capacity = measure_capacity(upstream)
        for name, launch in targets:
            if chosen is not None and name not in chosen and name != "direct":
                continue
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            try:
                rows.append(measure(name, launch, upstream, tmp, args.quick,
                                    soak=soak if name == "tollway-on" else 0))
            except Exception as exc:  # a peer that cannot run is reported, not fatal
                rows.append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:120]})
        scale: dict[str, Any] = {}
        if chosen is None or "scaling" in chosen:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            print("measuring scaling ...", file=sys.stderr, flush=True)
            scale = scaling(upstream, tmp, args.quick)
    verdicts = report(rows, scale, capacity)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "scaling": scale, "capacity": capacity,
                               "verdicts": verdicts}, indent=2))
    print(f"\nraw results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
