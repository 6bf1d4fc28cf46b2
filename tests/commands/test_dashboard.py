"""``tollway dashboard`` as a user runs it: a process that prints a login link, serves
the pages over a ledger (and a config's budgets and key store), and stops on SIGTERM."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway.conftest import free_port
from tests.gateway.ui.conftest import seed
from tollway.core.reports import spend

TOKEN = "pinned-dashboard-token-0123456789abcdef"


@pytest.fixture
def run_dashboard(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, token: str | None = None) -> tuple[str, str]:
        """Start it; returns (base URL, the login link it printed)."""
        port = free_port()
        env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
        env.pop("TOLLWAY_DASHBOARD_TOKEN", None)
        if token:
            env["TOLLWAY_DASHBOARD_TOKEN"] = token
        proc = subprocess.Popen(
            [sys.executable, "-m", "tollway.cli", "dashboard", "--port", str(port), *args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        )
        procs.append(proc)
        assert proc.stderr is not None
        link = ""
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if line.startswith("open "):
                link = line.split(" ", 1)[1].strip()
                break
            assert time.monotonic() < deadline
        assert link, "tollway dashboard printed no login link"
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(base + "/ui/login", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "it did not start"
                time.sleep(0.1)
        return base, link

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            if proc.stderr is not None:
                proc.stderr.close()


def test_the_printed_link_opens_the_spend_of_the_ledger(run_dashboard, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    seed(ledger)
    base, link = run_dashboard("--ledger", str(ledger))
    token = re.search(r"/ui/login\?token=(\S+)$", link)
    assert token and link.startswith(base)
    assert len(token.group(1)) >= 32  # random per start
    client = httpx.Client(follow_redirects=True)
    page = client.get(link)
    assert page.status_code == 200 and str(page.url) == base + "/ui/spend"
    (total,) = spend(str(ledger), group_by=[], since="7d")
    assert f'id="total-cost" data-nanos="{total.cost_nanos}"' in page.text
    assert 'href="/ui/keys"' not in page.text  # no key store named: no keys pages
    assert client.get(base + "/ui/keys").status_code == 404
    assert httpx.get(base + "/ui/spend").status_code == 303  # another browser: no session


def test_a_config_adds_its_budgets_and_its_gateway_key_store(run_dashboard,
                                                            tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    seed(ledger)
    config = tmp_path / "tollway.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"fast": "openai/gpt-4o-mini"},
        "ledger": str(ledger),
        "budget_store": {"backend": "sqlite", "path": str(tmp_path / "budgets.db")},
        "budgets": [{"name": "acme-daily", "scope": {"org": "acme"}, "limit": 3,
                     "period": "day"}],
        "gateway": {"keys": str(tmp_path / "keys.db")},
    }))
    base, link = run_dashboard("--config", str(config), token=TOKEN)
    assert link == f"{base}/ui/login?token={TOKEN}"
    client = httpx.Client(base_url=base)
    assert client.post("/ui/login", data={"secret": TOKEN}).status_code == 303
    assert "acme-daily" in client.get("/ui/budgets").text
    keys = client.get("/ui/keys")
    assert keys.status_code == 200 and "No keys yet" in keys.text
    page = client.get("/ui/spend").text  # the config's ledger, as --ledger was not given
    (total,) = spend(str(ledger), group_by=[], since="7d")
    assert f'data-nanos="{total.cost_nanos}"' in page
