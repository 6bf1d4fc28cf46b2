"""examples/mcp_agent.py runs offline (``--fake``) with the real MCP servers."""

from __future__ import annotations

import re
from pathlib import Path

from tests.adapters._isolation import NETWORK_ATTEMPT, run_offline

REPO = Path(__file__).resolve().parents[2]


def test_mcp_agent_example_runs_the_loop_with_real_servers_offline() -> None:
    done = run_offline(REPO / "examples" / "mcp_agent.py", "--fake", cwd=REPO, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert NETWORK_ATTEMPT not in done.stderr
    out = done.stdout
    assert "notes__add_note" in out and "time__get_current_time" in out
    stamp = re.search(r'"datetime": "(\d{4}-\d\d-\d\dT[\d:]+\+09:00)"', out)
    assert stamp is not None  # mcp-server-time really answered, in Tokyo time
    assert f"Saved. Your notes: {{\"tokyo\":\"{stamp[1]}\"}}" in out  # the notes session kept it
    assert re.search(r"total: 4 model calls, 3 tool calls, .* cost \$0\.\d+ \(tools \$0\.000200\)", out)
    assert re.search(r"model gpt-4o-mini: 4 calls, \$0\.\d+", out)
    assert "tool notes: 2 calls, $0.000200" in out and "tool time: 1 calls" in out
