"""examples/crew_model_swap.py runs offline (``--fake``) and shows what it promises: the
writer's alias moved to another provider by a one-line tollway.yaml edit, same code,
with the cost per agent printed from the ledger."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.adapters._isolation import NETWORK_ATTEMPT, real_home_snapshot, run_offline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crew_model_swap.py"

# Checked without importing CrewAI here: an import outside the isolated HOME writes to
# the real one. The example runs in its own interpreter.
pytestmark = pytest.mark.skipif(find_spec("crewai") is None, reason="crewai not installed")


def test_crew_model_swap_example_moves_the_writer_to_another_model_with_no_code_change(
    tmp_path: Path,
) -> None:
    before = real_home_snapshot()
    result = run_offline(EXAMPLE, "--fake", cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert real_home_snapshot() == before  # CrewAI imported and ran in the temporary HOME
    assert NETWORK_ATTEMPT not in result.stderr
    first, second = result.stdout.split("run 2:")
    assert "(written by gpt-4o)" in first
    assert "(written by claude-sonnet-4-5)" in second
    writer_rows = [line.split() for line in result.stdout.splitlines()
                   if line.strip().startswith("Writer")]
    assert [row[1] for row in writer_rows] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"]
    researcher_rows = [line.split() for line in result.stdout.splitlines()
                       if line.strip().startswith("Researcher")]
    assert [row[1:3] for row in researcher_rows] == [["openai/gpt-4o-mini", "2"]] * 2
    assert all(float(row[-1]) > 0 for row in writer_rows + researcher_rows)
    assert list(tmp_path.iterdir()) == []  # the example cleans up after itself
