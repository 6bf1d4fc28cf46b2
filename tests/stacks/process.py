"""Run a Llama Stack or OGX distribution as a subprocess on loopback, in its own venv.

Everything the stack writes goes under one private directory (``HOME``, ``TMPDIR``, the
config dir, ``SQLITE_STORE_DIR``): OGX writes its resolved config, the gateway key in
clear, into ``$TMPDIR``, and an unset ``OGX_CONFIG_DIR`` would move a real ``~/.llama``.
The environment is built from scratch (no inherited provider keys or proxies), so the
stack sees only the gateway. :func:`start` waits for ``/v1/health``; :meth:`stop` ends
the process it started and nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.gateway.conftest import free_port
from tests.stacks.venvs import STACKS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "llama_stack"
CONFIGS = {"llama-stack": EXAMPLES / "run.yaml", "ogx": EXAMPLES / "ogx.yaml"}
CONFIG_DIR_ENV = {"llama-stack": "LLAMA_STACK_CONFIG_DIR", "ogx": "OGX_CONFIG_DIR"}


@dataclass
class RunningStack:
    name: str
    venv: Path
    state: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def python(self, script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with the stack venv's Python (where its own client lives)."""
        return subprocess.run([str(self.venv / "bin" / "python"), str(script), *args],
                              capture_output=True, text=True, timeout=timeout,
                              env={**self.env, "PYTHONPATH": ""}, check=False)

    def stop(self) -> None:
        """End the stack and delete its TMPDIR (OGX's resolved config holds the key)."""
        # The stack runs in its own session: signal its group, so worker processes it
        # spawned (OGX's multiprocessing pools) end with it.
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=5)
        shutil.rmtree(self.state / "tmp", ignore_errors=True)


def start(name: str, venv: Path, state: Path, *, gateway_v1: str, key: str,
          chat_model: str = "fast", embed_model: str = "embed", dimensions: int = 256,
          timeout: float = 90) -> RunningStack:
    """Start distribution ``name`` with remote::openai at ``gateway_v1`` (the gateway's
    ``.../v1``) authenticated by virtual key ``key``."""
    for sub in ("home", "tmp", "config", "store"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(state / "home"),
        "TMPDIR": str(state / "tmp"),
        CONFIG_DIR_ENV[name]: str(state / "config"),
        "SQLITE_STORE_DIR": str(state / "store"),
        "TIKTOKEN_CACHE_DIR": str(venv / "tiktoken-cache"),
        "TOLLWAY_GATEWAY_URL": gateway_v1,
        "TOLLWAY_KEY": key,
        "TOLLWAY_CHAT_MODEL": chat_model,
        "TOLLWAY_EMBED_MODEL": embed_model,
        "TOLLWAY_EMBED_DIMENSIONS": str(dimensions),
        "STACK_HOST": "127.0.0.1",
        "NO_PROXY": "*",
        "LANG": "C.UTF-8",
    }
    port = free_port()
    log_path = state / "stack.log"
    command = [str(venv / "bin" / STACKS[name].command)]
    command += ["stack", "run"] if name == "llama-stack" else ["run"]
    command += ["--port", str(port), str(CONFIGS[name])]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=state, start_new_session=True)
    running = RunningStack(name, venv, state, port, process, log_path, env)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}) at start:\n"
                               f"{running.log()[-6000:]}")
        try:
            if httpx.get(f"{running.url}/v1/health", timeout=1).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"{name} did not answer /v1/health in {timeout} s:\n"
                               f"{running.log()[-6000:]}")
        time.sleep(0.2)
