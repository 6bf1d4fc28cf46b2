"""A worker process for one client library: imports it once, then forks a fresh child
per benchmark job.

    python benchmarks/_worker.py <family> <server url>     (started by run.py)

Why fork from a pre-imported parent: every job must start the same way for every
client (no pools, no caches, no garbage from an earlier case), which a fresh process
gives; but LiteLLM takes ~5 s to import, and paying that per job would not fit the
quick mode in two minutes. Forking after the import gives each job a process that has
imported its library and done nothing else. The worker also pre-imports the modules
the first calls would import lazily (learnt from a scout child that makes each kind of
call once), so jobs do not spend their time compiling and importing; only imports
carry over. (Import time itself is measured in fresh interpreters by
``_import_probe.py``.)

Protocol on stdin / stdout, one line each: the worker prints ``ready <import seconds>``;
then for every job line (JSON) it forks, prints ``pid <child pid>``, waits and prints
``done <exit status>``. The child writes its result as JSON to ``job["out"]``. Child
output goes to stderr (the run's worker log), never to the protocol channel.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path


def _child(job: dict) -> None:
    os.dup2(2, 1)  # the protocol channel is the parent's; prints go to the log
    sys.stdout = sys.stderr
    out = Path(job["out"])
    try:
        for name, value in (job.get("env") or {}).items():
            os.environ[name] = value
        tmp = Path(job["tmp"])
        tmp.mkdir(parents=True, exist_ok=True)
        os.chdir(tmp)
        module = importlib.import_module(f"_{job['family']}")
        result = module.run(job)
        import _clients
        from _common import blocked

        _clients.cleanup()
        result["network_blocked"] = list(blocked)
        out.write_text(json.dumps(result))
        code = 0
    except BaseException:
        out.write_text(json.dumps({"error": traceback.format_exc(limit=8)}))
        code = 1
    sys.stderr.flush()
    os._exit(code)


def _warm_imports(family: str, url: str) -> int:
    """Import what the first calls of this family import lazily, learnt from a scout
    child that makes each kind of call once; returns how many modules were added.
    Only imports carry over (no client, pool or cache is built in this process)."""
    listing = Path(os.environ.get("TMPDIR", "/tmp")) / f"tollway-bench-scout-{os.getpid()}.json"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.dup2(2, 1)
        code = 1
        try:
            import _clients

            scout_tmp = Path.cwd() / f"scout-{family}"
            scout_tmp.mkdir(exist_ok=True)
            _clients.exercise(family, url, scout_tmp)
            _clients.cleanup()
            listing.write_text(json.dumps(list(sys.modules)))
            code = 0
        except BaseException:
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(code)
    os.waitpid(pid, 0)
    if not listing.exists():
        return 0
    names = json.loads(listing.read_text())
    listing.unlink()
    added = 0
    for name in names:
        if name in sys.modules or name.startswith("__main__"):
            continue
        try:
            importlib.import_module(name)
            added += 1
        except BaseException:  # a module that only imports in its natural order: skip it
            continue
    return added


def main() -> None:
    family, url = sys.argv[1], sys.argv[2]
    from _common import CLIENT_CPU, install_network_guard, pin

    pin(CLIENT_CPU)
    install_network_guard()
    import threading

    import _clients

    t0 = time.perf_counter()
    _clients.preload(family)
    import_seconds = time.perf_counter() - t0
    added = _warm_imports(family, url)
    if threading.active_count() > 1:
        print(f"warning: the {family} worker has {threading.active_count()} threads before "
              "forking", file=sys.stderr)
    print(f"ready {import_seconds:.3f} {added}", flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        job = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(job)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"done {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()
