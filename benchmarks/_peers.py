"""The peer gateways of ``gateway.py``: installed once under ~/.cache/tollway-bench, then
started as subprocesses pointed at the same fake upstream.

- LiteLLM proxy 1.110.2 in its own venv, from ``shared/bench/litellm-proxy-requirements.txt``
  (``litellm[proxy]`` itself does not resolve on this registry: see DESIGN.md); no
  database (its virtual keys need Prisma engines downloaded at run time), master key only.
- Portkey's open-source gateway 1.15.2 from npm, with ``@hono/node-server`` pinned to
  1.14.1 by an npm override (1.19.x breaks streaming: "TypeError: immutable").

Each ``start_*`` returns ``(process, base_url, extra_headers)``; the caller stops it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("TOLLWAY_BENCH_CACHE", Path.home() / ".cache" / "tollway-bench"))
LITELLM_VENV = CACHE / "litellm-proxy-1.110.2"
PORTKEY_DIR = CACHE / "portkey-1.15.2"
REQUIREMENTS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "litellm-proxy-requirements.txt"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"


def install_litellm() -> Path | None:
    """The venv's python (None when the requirements file is absent)."""
    python = LITELLM_VENV / "bin" / "python"
    marker = LITELLM_VENV / ".installed"
    if marker.exists():
        return python
    requirements = REQUIREMENTS if REQUIREMENTS.exists() else Path(
        os.environ.get("TOLLWAY_LITELLM_REQUIREMENTS", ""))
    if not requirements.is_file():
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["uv", "venv", "--python", sys.executable, str(LITELLM_VENV)], check=True,
                   capture_output=True)
    subprocess.run(["uv", "pip", "install", "--python", str(python), "-r", str(requirements)],
                   check=True, capture_output=True)
    marker.write_text("ok\n")
    return python


def install_portkey() -> Path | None:
    """The gateway's start script (None when npm is missing)."""
    script = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if script.exists():
        return script
    if subprocess.run(["which", "npm"], capture_output=True).returncode != 0:
        return None
    PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
    (PORTKEY_DIR / "package.json").write_text(json.dumps({
        "name": "tollway-bench-portkey", "version": "1.0.0", "private": True,
        "dependencies": {"@portkey-ai/gateway": "1.15.2"},
        "overrides": {"@hono/node-server": "1.14.1"},
    }, indent=2))
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=PORTKEY_DIR, check=True, capture_output=True)
    return script


def start_litellm(python: Path, upstream: str, port: int, workdir: Path,
                  env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n"
        f"      model: openai/gpt-4o-mini\n      api_base: {upstream}\n"
        "      api_key: sk-bench-not-a-real-key\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    env = {**env, "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY}
    litellm = python.parent / "litellm"
    proc = subprocess.Popen(
        [str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "1",
         "--host", "127.0.0.1"],
        env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}", {"authorization": f"Bearer {LITELLM_MASTER_KEY}"}


def start_portkey(script: Path, upstream: str, port: int, workdir: Path,
                  env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    proc = subprocess.Popen(
        ["node", str(script), f"--port={port}", "--headless"],
        env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream,
               "authorization": "Bearer sk-bench-not-a-real-key"}
    return proc, f"http://127.0.0.1:{port}", headers


if __name__ == "__main__":
    print("litellm:", install_litellm())
    print("portkey:", install_portkey())
