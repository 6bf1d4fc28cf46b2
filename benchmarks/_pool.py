"""The orchestrator's side of the worker processes: start one per client library, send
it jobs, collect results, enforce time limits (run.py side).

A job is a dict: ``family`` (the case module, ``_<family>.py``), ``case``, ``client``,
``url``, ``params``; the pool adds ``out`` / ``tmp`` and reads the result the forked
child wrote. A job that overruns its ``timeout`` is killed and reported as an error, so
no benchmark can run away.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from _clients import family as client_family
from _common import HERE, worker_env

START_TIMEOUT = 120.0


class Worker:
    """One ``_worker.py`` process (a client library imported, forking per job)."""

    def __init__(self, family: str, url: str, tmp: Path, log: IO[str]) -> None:
        self.family = family
        self.tmp = tmp
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_worker.py"), family, url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            env=worker_env(tmp), cwd=tmp,
        )
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(START_TIMEOUT)
        if ready is None or not ready.startswith("ready "):
            self.close()
            raise RuntimeError(f"the {family} worker did not start (see the worker log)")
        self.import_seconds = float(ready.split()[1])
        self.warm_modules = int(ready.split()[2])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _next(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=max(0.1, timeout))
        except queue.Empty:
            return None

    def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        pid_line = self._next(30.0)
        if pid_line is None or not pid_line.startswith("pid "):
            raise RuntimeError(f"the {self.family} worker stopped answering")
        pid = int(pid_line.split()[1])
        done = self._next(deadline - time.monotonic())
        if done is None:
            try:
                os.kill(pid, signal.SIGKILL)  # our own worker's child, by its id
            except ProcessLookupError:
                pass
            self._next(30.0)
            return {"error": f"timed out after {timeout:.0f}s and was stopped"}
        out = Path(job["out"])
        if not out.exists():
            return {"error": f"the job process exited ({done}) without a result"}
        return json.loads(out.read_text())  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


class Pool:
    """Workers by library, started on first use and kept for the whole run."""

    def __init__(self, tmp: Path, log_path: Path) -> None:
        self.tmp = tmp
        self.log = log_path.open("a", encoding="utf-8")
        self.workers: dict[str, Worker] = {}
        self.counter = 0
        self.start_seconds: dict[str, float] = {}

    def worker(self, family: str, url: str) -> Worker:
        worker = self.workers.get(family)
        if worker is None or worker.proc.poll() is not None:
            t0 = time.perf_counter()
            worker = Worker(family, url, self.tmp, self.log)
            self.start_seconds[family] = time.perf_counter() - t0
            self.workers[family] = worker
        return worker

    def run(self, job: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        self.counter += 1
        job = dict(job)
        job["out"] = str(self.tmp / f"result-{self.counter}.json")
        job["tmp"] = str(self.tmp / f"job-{self.counter}")
        t0 = time.perf_counter()
        try:
            worker = self.worker(client_family(job["client"]), job["url"])
            result = worker.run(job, timeout)
        except RuntimeError as exc:
            result = {"error": str(exc)}
        result["job_seconds"] = time.perf_counter() - t0
        result.setdefault("client", job["client"])
        result.setdefault("case", job.get("case"))
        result.setdefault("rep", job.get("rep"))
        return result

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.log.close()


def run_probe(args: list[str], tmp: Path, timeout: float = 120.0, *,
              bytecode: bool = True) -> dict[str, Any]:
    """Run ``_import_probe.py`` in a brand-new interpreter; its last stdout line is JSON."""
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "_import_probe.py"), *args],
            capture_output=True, text=True, env=worker_env(tmp, bytecode=bytecode), cwd=tmp,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip()[-800:]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]
