"""examples/pydantic_ai_agent.py runs offline (--fake) as a user would run it: the tool
runs, the structured report prints, and Pydantic AI's cost equals the ledger's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pydantic_ai")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pydantic_ai_agent.py"


def test_pydantic_ai_agent_example_reports_weather_and_the_same_cost_as_the_ledger(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    done = subprocess.run([sys.executable, str(EXAMPLE), "--fake"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Oslo: 4C. Pack a rain jacket" in out
    usage = re.search(r"usage: 2 requests, (\d+) input / (\d+) output tokens, cost \$([\d.]+)", out)
    ledger = re.search(r"agent=travel_weather model=gpt-4o-mini: 2 calls, \$([\d.]+)", out)
    assert usage is not None and ledger is not None
    assert usage[3] == ledger[1] and float(ledger[1]) > 0
