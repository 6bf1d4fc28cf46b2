"""The stack venv cache: a venv is reused only when its pinned requirements are unchanged
and its build finished; anything else points to a fresh directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.stacks import venvs


@pytest.fixture
def pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "requirements"
    shutil.copytree(venvs.REQUIREMENTS, folder)
    monkeypatch.setattr(venvs, "REQUIREMENTS", folder)
    monkeypatch.setenv("TOLLWAY_STACK_CACHE", str(tmp_path / "cache"))
    return folder


def test_a_venv_counts_only_once_its_build_finished(pins: Path) -> None:
    target = venvs.venv_dir(venvs.STACKS["ogx"])
    assert target.parent == pins.parent / "cache" and target.name.startswith("ogx-")
    target.mkdir(parents=True)  # an interrupted build leaves the directory behind
    assert venvs.find("ogx") is None
    assert "python -m tests.stacks.venvs build ogx" in venvs.missing_reason("ogx")
    (target / ".complete").write_text("built\n")
    assert venvs.find("ogx") == target


def test_changing_a_pin_selects_a_new_venv_and_leaves_the_other_stack_alone(pins: Path) -> None:
    before = {name: venvs.venv_dir(stack) for name, stack in venvs.STACKS.items()}
    pinned = pins / "llama-stack.txt"
    pinned.write_text(pinned.read_text().replace("llama-stack-client==0.7.5", "llama-stack-client==0.7.4"))
    after = {name: venvs.venv_dir(stack) for name, stack in venvs.STACKS.items()}
    assert after["llama-stack"] != before["llama-stack"]
    assert after["ogx"] == before["ogx"]


def test_the_pins_hold_the_versions_the_stacks_need() -> None:
    llama = (venvs.REQUIREMENTS / "llama-stack.txt").read_text().splitlines()
    ogx = (venvs.REQUIREMENTS / "ogx.txt").read_text().splitlines()
    assert {"llama-stack==0.7.3", "llama-stack-client==0.7.5", "faiss-cpu==1.15.1"} <= set(llama)
    assert {"ogx==1.5.0", "faiss-cpu==1.15.1"} <= set(ogx)
    major = {name: int(next(p for p in pins if p.startswith("mcp==")).split("==")[1].split(".")[0])
             for name, pins in (("llama", llama), ("ogx", ogx))}
    assert major == {"llama": 1, "ogx": 2}  # 0.7.3 imports McpError, gone in mcp 2
