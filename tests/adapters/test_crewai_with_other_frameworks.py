"""The four framework extras (crewai, langgraph, pydantic-ai, smolagents) installed side
by side: their dependency closures agree, they import together in one fresh process
with every tollway adapter, and ``import tollway`` itself loads none of them.

Nothing here imports a framework into the test process: CrewAI imported outside the
isolated HOME (``_isolation``) would write into the real one. Imports happen in child
interpreters that get the isolated environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec

import pytest
from packaging.requirements import Requirement

from tests.adapters._isolation import ENV, NETWORK_ATTEMPT

DISTRIBUTIONS = ("crewai", "langgraph", "langchain-core", "pydantic-ai-slim", "smolagents")
MODULES = ("crewai", "langgraph", "langchain_core", "pydantic_ai", "smolagents")
ADAPTERS = ("crewai", "langgraph", "pydantic_ai", "smolagents")


def _name(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def test_the_extras_dependency_closure_is_satisfied_by_the_installed_versions() -> None:
    missing = [m for m in MODULES if find_spec(m) is None]  # not imported: see below
    if missing:
        pytest.skip(f"framework extras not installed: {missing}")
    seen: set[str] = set()
    todo = list(DISTRIBUTIONS)
    conflicts: list[str] = []
    while todo:
        dist = _name(todo.pop())
        if dist in seen:
            continue
        seen.add(dist)
        for spec in metadata.requires(dist) or ():
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an optional extra of that package, or another platform
            try:
                installed = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                conflicts.append(f"{dist} needs {req} but {req.name} is not installed")
                continue
            if not req.specifier.contains(installed, prereleases=True):
                conflicts.append(f"{dist} needs {req}, installed {req.name} {installed}")
            todo.append(req.name)
    assert conflicts == []
    assert len(seen) > 50  # the closure really was walked (these stacks are large)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    guard = (
        "import socket\n"
        "def _no(self, address):\n"
        f"    raise OSError('{NETWORK_ATTEMPT} ' + repr(address))\n"
        "socket.socket.connect = _no\n"
    )
    return subprocess.run(
        [sys.executable, "-c", guard + code], capture_output=True, text=True, timeout=300,
        env={**os.environ, **ENV}, check=False,
    )


def test_all_four_frameworks_and_their_adapters_import_together_in_one_process() -> None:
    missing = [m for m in MODULES if find_spec(m) is None]
    if missing:
        pytest.skip(f"framework extras not installed: {missing}")
    adapters = [a for a in ADAPTERS if find_spec(f"tollway.adapters.{a}") is not None]
    imports = "\n".join(
        [f"import {m}" for m in MODULES] + [f"import tollway.adapters.{a}" for a in adapters]
    )
    code = imports + (
        "\nfrom tollway.adapters.crewai import TollwayLLM"
        "\nfrom tollway.adapters.smolagents import TollwayModel"
        "\nimport crewai, smolagents"
        "\nassert issubclass(TollwayLLM, crewai.BaseLLM)"
        "\nassert issubclass(TollwayModel, smolagents.Model)"
        "\nprint('ok', len(__import__('sys').modules))"
    )

    result = _python(code)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
    assert "crewai" in adapters and "smolagents" in adapters


def test_import_tollway_loads_no_framework() -> None:
    result = _python(
        "import sys, tollway\n"
        "tollway.Model\n"
        "loaded = [m for m in ('crewai', 'smolagents', 'langgraph', 'langchain_core',"
        " 'pydantic_ai') if m in sys.modules]\n"
        "print(loaded)\n"
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_each_adapter_loads_only_its_own_framework() -> None:
    result = _python(
        "import sys\n"
        "import tollway.adapters.smolagents\n"
        "assert 'crewai' not in sys.modules, 'smolagents adapter imported crewai'\n"
        "import tollway.adapters.crewai\n"
        "print('ok')\n"
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
