"""examples/smolagents_tools.py runs offline (``--fake``), streamed and not: both agents
answer through their tool, and smolagents' token counts equal the ledger's."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.adapters._isolation import NETWORK_ATTEMPT, run_offline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smolagents_tools.py"

pytestmark = pytest.mark.skipif(find_spec("smolagents") is None, reason="smolagents not installed")


@pytest.mark.parametrize("flags", [(), ("--stream",)], ids=["generate", "stream"])
def test_smolagents_tools_example_answers_through_the_tool_with_equal_token_counts(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    result = run_offline(EXAMPLE, "--fake", *flags, cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert NETWORK_ATTEMPT not in result.stderr
    out = result.stdout
    assert "treasurer (ToolCallingAgent): 250 EUR is 40500.0 JPY" in out
    assert "analyst (CodeAgent): 250 EUR is 40500.0 JPY" in out
    assert out.count("(equal); ") == 2
    assert "2 call(s)" in out and "1 call(s)" in out
