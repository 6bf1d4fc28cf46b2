"""Cold start in brand-new interpreters: import time and memory, construction, first call.

Each probe is a new ``python`` process (no fork, nothing pre-imported but the probe's
few stdlib modules), so this is what a user's script pays before its first answer.
``import tollway`` is lazy by design; ``from tollway import Model`` is the import a
real program does, so both are shown. DESIGN.md: ``import tollway`` within 50 ms of
``import httpx``.
"""

from __future__ import annotations

from typing import Any

from _clients import label
from _common import PYCACHE
from _report import Table, by_client, errors_of, med

CLIENTS = ["python", "httpx", "aiohttp", "openai", "litellm", "tollway"]


def jobs(cfg: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    usable = [c for c in CLIENTS if c not in env["skip"]]
    # One untimed probe each first: fills the bytecode cache (and the OS page cache).
    # Quick mode skips it once the cache exists (an earlier run filled it).
    out = []
    if cfg.get("import_prime", True) or not PYCACHE.exists():
        out = [{"probe": True, "case": "prime", "client": c, "rep": -1, "args": [c, env["url"]]}
               for c in usable]
    for rep in range(cfg.get("import_nopyc_reps", 0)):
        out += [{"probe": True, "case": "import-nopyc", "client": c, "rep": rep,
                 "args": [c, env["url"]], "bytecode": False} for c in usable]
    for rep in range(cfg["import_reps"]):
        shift = rep % len(usable)
        for client in usable[shift:] + usable[:shift]:
            out.append({"probe": True, "case": "import", "client": client, "rep": rep,
                        "args": [client, env["url"]]})
    return out


def summarize(results: list[dict[str, Any]], env: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    table = Table("cold start (fresh interpreter): import, construct, first call", [
        ("label", "client", "s"),
        ("import_ms", "import ms", "{:.1f}"),
        ("import_rss_mb", "import RSS MB", "{:.1f}"),
        ("import_model_ms", "+ import Model ms", "{:.1f}"),
        ("construct_ms", "+ construct ms", "{:.1f}"),
        ("first_call_ms", "+ first call ms", "{:.1f}"),
        ("first_call_rss_mb", "RSS after 1st call MB", "{:.1f}"),
        ("vs_httpx_ms", "import vs httpx ms", "{:+.1f}"),
        ("nopyc_import_ms", "import ms, no .pyc", "{:.1f}"),
    ], notes=[
        "bytecode cached (PYTHONPYCACHEPREFIX, filled by an untimed first probe); 'no .pyc' "
        "compiles every module from source, as this machine's PYTHONDONTWRITEBYTECODE=1 does",
        "times are cumulative from the start of the import; RSS is added over a bare "
        "interpreter (python row: its own RSS)",
        "tollway: 'import ms' is `import tollway` (lazy); '+ import Model' adds "
        "`from tollway import Model`; construct = Model('openai/gpt-4o-mini', ledger=False)",
    ])
    groups = by_client(results, "import")
    nopyc = by_client(results, "import-nopyc")
    httpx_ms = med(groups.get("httpx", []), "import_ms")
    data: dict[str, Any] = {}
    keys = ("import_ms", "import_rss_mb", "import_model_ms", "construct_ms", "first_call_ms",
            "first_call_rss_mb", "base_rss_mb")
    for client, rows in groups.items():
        row: dict[str, Any] = {"client": client, "label": label(client) if client != "python" else
                               "python (nothing imported)", **{k: med(rows, k) for k in keys}}
        if client == "python":
            row["import_rss_mb"] = row["base_rss_mb"]
        if row.get("import_ms") is not None and httpx_ms is not None and client != "python":
            row["vs_httpx_ms"] = row["import_ms"] - httpx_ms
        row["reps"] = len([r for r in rows if "error" not in r])
        row["nopyc_import_ms"] = med(nopyc.get(client, []), "import_ms")
        if client == "tollway":
            row["nopyc_import_model_ms"] = med(nopyc.get(client, []), "import_model_ms")
        table.rows.append(row)
        data[client] = row
        for error in errors_of(rows):
            table.notes.append(f"{client}: {error}")
    return [table], data
