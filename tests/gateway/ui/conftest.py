"""Fixtures for the dashboard: a seeded ledger (three orgs over three days, one of them
named like an XSS attack, and one agent run with two model rounds around a tool call),
and a standalone dashboard served on a free loopback port by a real uvicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import start_uvicorn
from tollway.core.cost.records import CallRecord
from tollway.core.stores.sqlite_ledger import SQLiteLedger
from tollway.core.types import Usage
from tollway.gateway.ui.app import Dashboard
from tollway.gateway.ui.source import standalone_source

XSS_ORG = '<script>alert("org")</script>&"x'
TOKEN = "dashboard-token-for-tests-0123456789"
TRACE_ID = "run-42"


def seed_rows(now: datetime | None = None) -> list[CallRecord]:
    """Ledger rows within the last three days (the spend page's default range is 7d)."""
    now = now or datetime.now(UTC)
    base = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    rows = []
    plan = [
        (0, "acme", "search", "alice", "fast", "gpt-4o-mini", 1_250_000),
        (1, "acme", "search", "bob", "smart", "gpt-4o", 9_500_000),
        (5, "acme", "ads", "alice", "smart", "gpt-4o", 4_000_000),
        (25, "globex", "bots", "carol", "fast", "gpt-4o-mini", 700_000),
        (26, XSS_ORG, "evil", "mallory", "fast", "gpt-4o-mini", 333_000),
        (40, "acme", "search", "alice", "fast", "gpt-4o-mini", 2_000_000),
    ]
    for hours, org, project, user, alias, model, cost in plan:
        rows.append(CallRecord(
            time=base + timedelta(hours=hours), trace_id=f"t-{hours}", org=org, project=project,
            user=user, provider="openai", model=model, alias=alias, agent="researcher",
            usage=Usage(1000 + hours, 100 + hours), cost_nanos=cost, latency_ms=420.0,
        ))
    start = base + timedelta(hours=44)
    steps = [
        (0.0, "model", "gpt-4o", 900.0, 3_100_000, Usage(2400, 60)),
        (0.95, "tool", "get_current_time", 120.0, None, Usage()),
        (1.1, "model", "gpt-4o", 700.0, 2_900_000, Usage(2520, 80)),
    ]
    for offset, kind, model, latency, cost, usage in steps:
        rows.append(CallRecord(
            time=start + timedelta(seconds=offset), kind=kind, trace_id=TRACE_ID, org="acme",
            project="search", user="alice", agent="mcp-loop", provider="openai" if kind == "model"
            else "mcp", model=model, alias="smart" if kind == "model" else None, usage=usage,
            cost_nanos=cost, latency_ms=latency,
            tool_server="time" if kind == "tool" else None,
            tool_name=model if kind == "tool" else None,
        ))
    return rows


def seed(path: Path | str) -> None:
    with SQLiteLedger(path) as ledger:
        for row in seed_rows():
            ledger.record(row)


@pytest.fixture
def seeded_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "seeded-ledger.db"
    seed(path)
    return path


@dataclass
class RunningDashboard:
    url: str
    app: Dashboard

    def client(self, *, login: bool = True) -> httpx.Client:
        client = httpx.Client(base_url=self.url, follow_redirects=False)
        if login:
            reply = client.post("/ui/login", data={"secret": TOKEN})
            assert reply.status_code == 303, reply.text
        return client


@pytest.fixture
def dashboard_server() -> Iterator[Callable[..., RunningDashboard]]:
    """``dashboard_server(ledger, config=None, keys=None)``: a standalone dashboard
    (login token :data:`TOKEN`), stopped at the end of the test."""
    started: list[Any] = []

    def start(ledger: Path | str, **options: Any) -> RunningDashboard:
        app = Dashboard(standalone_source(str(ledger), **options), TOKEN, link_login=True)
        port, server, thread = start_uvicorn(app)
        started.append((server, thread))
        return RunningDashboard(f"http://127.0.0.1:{port}", app)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)
