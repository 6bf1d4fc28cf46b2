"""examples/langgraph_nodes.py runs offline (--fake) as a user would run it, and prints
each node's cost from the ledger."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langgraph_nodes.py"


def test_langgraph_nodes_example_prints_the_cost_of_each_node_from_the_ledger(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    done = subprocess.run([sys.executable, str(EXAMPLE), "--fake", "--topic", "tolls"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Why tolls exist" in out and "Metering every trip" in out
    rows = {m[0]: m for m in re.findall(
        r"^(planner|writer)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)/(\d+)\s+\$([\d.]+)", out, re.M)}
    assert rows["planner"][1:4] == ("planner", "gpt-4o-mini", "1")
    assert rows["writer"][1:4] == ("writer", "claude-sonnet-4-5", "1")
    assert float(rows["planner"][6]) > 0 and float(rows["writer"][6]) > 0
    total = re.search(r"^total\s+2\s+\$([\d.]+)", out, re.M)
    assert total is not None
    assert float(total[1]) == pytest.approx(float(rows["planner"][6]) + float(rows["writer"][6]),
                                            abs=2e-6)
    assert not (tmp_path / "tollway.yaml").exists()  # the fake run leaves nothing behind
