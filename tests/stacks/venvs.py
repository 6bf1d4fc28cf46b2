"""Build (once) and find the Python 3.12 venvs that Llama Stack 0.7.3 and OGX 1.5.0 run in.

Neither can live in tollway's environment: both need Python >= 3.12 and they disagree on
``mcp`` (Llama Stack 0.7.3 needs ``mcp<2``, OGX ``mcp>=2``). Each stack gets its own venv,
built with ``uv venv`` + ``uv pip sync`` from a pinned file in ``requirements/`` (so the
build is reproducible) under ``~/.cache/tollway/stacks/<name>-<hash>`` (``$TOLLWAY_STACK_CACHE``
overrides the root). The hash covers the pinned file, the interpreter and the tiktoken
seed, so a changed pin builds a fresh venv and an unchanged one is reused. A venv counts
as present only once its build finished (a ``.complete`` marker written last); a build
is serialised by a file lock, so two test processes never build the same venv at once.

The tiktoken seed: the stacks' vector-store code loads tiktoken's ``cl100k_base`` at
start and, without a cached copy, downloads it from the internet, which is fatal
offline ("Failed to load tiktoken encoding 'cl100k_base'"). The BPE file ships inside
the litellm wheel (``litellm/litellm_core_utils/tokenizers/``, named as tiktoken's cache
names it); the build installs that wheel alone (``--no-deps --target``) from the package
registry, checks the file's sha256 and keeps only it, as ``<venv>/tiktoken-cache``, which
the tests pass as ``TIKTOKEN_CACHE_DIR``. Nothing is downloaded when a stack runs.

``.ci/run`` builds both before pytest (``python -m tests.stacks.venvs build``) so the
build's minutes are visible there and not inside a test's timeout.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS = Path(__file__).parent / "requirements"
PYTHON_VERSION = "3.12.1"

TIKTOKEN_WHEEL = "litellm==1.110.2"
"""A wheel from the registry that vendors tiktoken's cl100k_base file."""
TIKTOKEN_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
"""tiktoken's cache name for cl100k_base: sha1 of its download URL."""
TIKTOKEN_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
"""tiktoken's own expected hash of the cl100k_base file (it checks it on load too)."""


@dataclass(frozen=True, slots=True)
class Stack:
    """One distribution: its pinned requirements and the command its venv provides."""

    name: str
    requirements: str
    command: str
    """The console script that serves a run config (``llama`` / ``ogx``)."""
    client_module: str
    """The stack's own Python client, imported by tests/stacks/client_check.py."""


STACKS = {
    "llama-stack": Stack("llama-stack", "llama-stack.txt", "llama", "llama_stack_client"),
    "ogx": Stack("ogx", "ogx.txt", "ogx", "ogx_client"),
}


class BuildError(RuntimeError):
    """A venv could not be built; the message says which step and what it printed."""


def cache_root() -> Path:
    override = os.environ.get("TOLLWAY_STACK_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "tollway" / "stacks"


def python_path() -> Path:
    """The pyenv Python 3.12 the stacks need (``$PYENV_ROOT``, else ``pyenv root``, else
    ``~/.pyenv``)."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=False).stdout.strip()
    base = Path(root) if root else Path.home() / ".pyenv"
    return base / "versions" / PYTHON_VERSION / "bin" / "python3.12"


def venv_dir(stack: Stack) -> Path:
    digest = hashlib.sha256()
    digest.update((REQUIREMENTS / stack.requirements).read_bytes())
    digest.update(f"\0{PYTHON_VERSION}\0{TIKTOKEN_WHEEL}\0{TIKTOKEN_SHA256}".encode())
    return cache_root() / f"{stack.name}-{digest.hexdigest()[:16]}"


def find(name: str) -> Path | None:
    """The finished venv of stack ``name``, or None when it is not built (yet)."""
    path = venv_dir(STACKS[name])
    return path if (path / ".complete").is_file() else None


def missing_reason(name: str) -> str:
    """Why ``find(name)`` is None and what to run, for a skip or a failure message."""
    return (f"the {name} venv is not built ({venv_dir(STACKS[name])} has no .complete "
            f"marker): run `python -m tests.stacks.venvs build {name}` (uv and the package "
            f"registry needed; a few minutes), as .ci/run does before pytest")


def require(name: str) -> Path:
    """Stack ``name``'s venv for a test: skipped with the command that builds it when
    missing, failed under ``CI=true`` (where .ci/run builds it first, so a missing venv
    is a broken build, not a reason to skip)."""
    import pytest

    found = find(name)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing_reason(name))
        pytest.skip(missing_reason(name))
    return found


def build(name: str, *, log: bool = True) -> Path:
    """Build stack ``name``'s venv unless present; returns its directory."""
    stack = STACKS[name]
    target = venv_dir(stack)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").is_file():
            return target
        if target.exists():  # an interrupted build: start over
            shutil.rmtree(target)
        python = python_path()
        if not python.is_file():
            raise BuildError(f"{name}: Python {PYTHON_VERSION} not found at {python} "
                             f"(install it with `pyenv install {PYTHON_VERSION}`)")
        uv = shutil.which("uv")
        if uv is None:
            raise BuildError(f"{name}: `uv` is not on PATH (`pip install uv`)")
        started = time.monotonic()
        _run(name, [uv, "venv", "--quiet", "--python", str(python), str(target)])
        _run(name, [uv, "pip", "sync", "--quiet", "--python", str(target / "bin" / "python"),
                    str(REQUIREMENTS / stack.requirements)])
        _seed_tiktoken(name, uv, target / "tiktoken-cache")
        (target / ".complete").write_text(f"built in {time.monotonic() - started:.1f} s\n")
        if log:
            print(f"tests.stacks.venvs: built {target} in {time.monotonic() - started:.1f} s",
                  file=sys.stderr)
        return target


def _seed_tiktoken(name: str, uv: str, cache: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tollway-tiktoken-") as scratch:
        _run(name, [uv, "pip", "install", "--quiet", "--no-deps", "--target", scratch,
                    TIKTOKEN_WHEEL])
        source = Path(scratch) / "litellm" / "litellm_core_utils" / "tokenizers" / TIKTOKEN_FILE
        if not source.is_file():
            raise BuildError(f"{name}: {TIKTOKEN_WHEEL} no longer ships {source.name}; pick "
                             "another wheel that vendors cl100k_base")
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != TIKTOKEN_SHA256:
            raise BuildError(f"{name}: the cl100k_base file in {TIKTOKEN_WHEEL} does not "
                             "have tiktoken's expected sha256")
        cache.mkdir()
        (cache / TIKTOKEN_FILE).write_bytes(data)


def _run(name: str, argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"{name}: `{' '.join(argv[:3])} ...` failed "
                         f"({done.returncode}):\n{done.stderr[-4000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stacks.venvs",
                                     description="Build or locate the stacks' test venvs.")
    parser.add_argument("action", choices=["build", "path"])
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(STACKS)} (default: all)")
    args = parser.parse_args(argv)
    names = args.names or list(STACKS)
    unknown = [n for n in names if n not in STACKS]
    if unknown:
        parser.error(f"unknown stack {unknown[0]!r}: choose from {', '.join(STACKS)}")
    for name in names:
        if args.action == "build":
            try:
                print(build(name))
            except BuildError as exc:
                print(f"tests.stacks.venvs: {exc}", file=sys.stderr)
                return 1
        else:
            found = find(name)
            print(found if found else missing_reason(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
