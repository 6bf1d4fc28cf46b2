"""What every benchmark process shares: the request, CPU pinning, the loopback-only
network guard, the environment that keeps LiteLLM and tollway offline and out of the
user's files, and the statistics.

Imported by the orchestrator (``run.py``), by the per-client worker processes
(``_worker.py``) and by the import probe; it imports nothing heavy itself.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

MODEL = "gpt-4o-mini"
LITELLM_MODEL = f"openai/{MODEL}"
TOLLWAY_MODEL = f"openai/{MODEL}"
API_KEY = "sk-bench-not-a-real-key"
PROMPT: list[dict[str, Any]] = [{"role": "user", "content": "What is the answer?"}]
HEADERS = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}

SERVER_CPU = 1
CLIENT_CPU = 0

OFFLINE_ENV = {
    # LiteLLM fetches its model cost map from GitHub at import unless told not to.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_OFFLINE_MODE": "true",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "LITELLM_SUPPRESS_STARTUP_OUTPUT": "True",
    "OPENAI_API_KEY": API_KEY,
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
}
"""Set in every benchmark subprocess before anything is imported."""


PYCACHE = Path(tempfile.gettempdir()) / "tollway-bench-pycache"
"""Bytecode caches for every benchmark process, outside the repository and the venv.
This machine sets PYTHONDONTWRITEBYTECODE=1 and the venv holds no ``.pyc`` files, so
without it every import would compile from source (LiteLLM's import mostly is that);
an installed package normally has its bytecode cached after the first run."""


def worker_env(tmp: Path, *, bytecode: bool = True) -> dict[str, str]:
    """The environment of a benchmark subprocess: offline switches, tollway's default
    ledger / budget files redirected into ``tmp`` (never the user's home), no config
    discovery from the caller's directory, ``benchmarks/`` importable, and bytecode
    cached in :data:`PYCACHE` (``bytecode=False``: compile every import from source)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env.update(OFFLINE_ENV)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["TOLLWAY_LEDGER"] = str(tmp / "default-ledger.db")
    env["TOLLWAY_BUDGETS_DB"] = str(tmp / "default-budgets.db")
    env["XDG_DATA_HOME"] = str(tmp / "xdg")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    env.pop("PYTHONTRACEMALLOC", None)
    return env


# --------------------------------------------------------------------------- pinning


def pin(cpu: int) -> bool:
    """Pin this process (and the threads it starts later) to one core; False where the
    platform or the machine (one core) does not allow it."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- network guard

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
blocked: list[str] = []
"""Destinations the guard refused in this process (reported with the results)."""


def install_network_guard() -> None:
    """Refuse every connection and name lookup that is not loopback, in this process.

    The benchmark must never send traffic anywhere but 127.0.0.1 (LiteLLM in particular
    fetches cost maps and tokenizers on its own when a switch is missed). Refused
    attempts raise OSError, like an unreachable network, and are listed in ``blocked``.
    """
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and str(name) not in _LOOPBACK:
            blocked.append(f"lookup {name}")
            raise socket.gaierror(socket.EAI_NONAME, f"benchmark network guard: {name} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: Any) -> None:
        if isinstance(address, tuple) and address and str(address[0]) not in _LOOPBACK:
            blocked.append(f"connect {address[0]}")
            raise OSError(f"benchmark network guard: {address[0]} is not loopback")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


# --------------------------------------------------------------------------- memory


def rss_kb() -> int:
    """Resident set size of this process now (kB), from /proc (0 where unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1))))
    return float(sorted_values[rank])


def latency_stats(samples_ns: Iterable[int]) -> dict[str, float]:
    """p50 / p90 / p99 / mean in microseconds from per-call nanosecond samples."""
    values = sorted(samples_ns)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_us": percentile(values, 50) / 1e3,
        "p90_us": percentile(values, 90) / 1e3,
        "p99_us": percentile(values, 99) / 1e3,
        "mean_us": statistics.fmean(values) / 1e3,
    }


def median_of(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def eprint(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)
