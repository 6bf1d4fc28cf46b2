"""``tollway demo`` end to end, offline, on the embedded local model (slow: runs real
inference for a CrewAI crew, a LangGraph graph, a Pydantic AI agent and an MCP loop)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tollway.core.reports import spend
from tollway.core.stores.open import open_ledger

pytestmark = pytest.mark.slow


def test_demo_runs_offline_and_prints_the_spend_table(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "HOME": str(tmp_path / "home"),
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "OTEL_SDK_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tollway.cli", "demo", "--provider", "local",
         "--workdir", str(workdir)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for expected in ("CrewAI crew", "LangGraph graph", "Pydantic AI agent", "MCP",
                     "embedded 3 documents and a query on 'embed-model'", "nearest document",
                     "Toll roads charge per trip", "images need a provider",
                     "STOP", "served by 'fast-model'", "Spend from the ledger", "Budgets"):
        assert expected in out, f"{expected!r} missing from the demo output:\n{out[-4000:]}"

    # the demo ends by pointing at the dashboard over its ledger (lines may wrap)
    dashboard = f"tollway dashboard --ledger sqlite:///{workdir / 'ledger.db'} --config"
    assert dashboard in " ".join(out.split()), out[-2000:]

    ledger = open_ledger(f"sqlite:///{workdir / 'ledger.db'}")
    rows = spend(ledger, group_by=["user", "status"])
    by = {(r.group["user"], r.group["status"]): r for r in rows}
    assert by[("alice", "ok")].calls >= 5  # crew (2), agent, mcp rounds, off-hours
    assert by[("bob", "ok")].calls >= 3  # graph (2) + at least one question
    assert ("bob", "BudgetExceededError") in by  # the denied call is on record
    assert by[("bob", "BudgetExceededError")].input_tokens == 0  # never reached a model
    kinds = {r.group["kind"]: r for r in spend(ledger, group_by=["kind"])}
    assert kinds["embedding"].calls == 2 and kinds["embedding"].cost_nanos > 0  # demo rate
    assert "image" not in kinds  # offline: no image, and no fake one
    users = {r.group["user"] for r in rows}
    assert users == {"alice", "bob"}
    assert all(r.cost_nanos > 0 for r in rows if r.group["status"] == "ok")
