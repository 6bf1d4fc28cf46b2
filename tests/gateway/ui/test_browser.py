"""The dashboard in a real browser: Playwright driving Debian's Chromium
(``/usr/bin/chromium``; nothing is downloaded) against ``tollway gateway``'s ``/ui``.

Log in with the admin key, read the chart's totals off the page and compare them with
``tollway.spend()``, filter, create and revoke a key, open a trace. Each page is saved
as a screenshot under ``test-output/screenshots/`` at the repository root (gitignored)
for a reviewer to look at. Skipped when Chromium or Playwright is missing, except under
``CI=true``, where ``.ci/run`` installs Chromium and a missing one is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.ui.conftest import TRACE_ID, XSS_ORG, seed
from tollway.core.reports import spend

ADMIN = "admin-secret-for-the-browser-0123456"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-output" / "screenshots"


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing under CI (.ci/run installs it: apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("the playwright package is missing under CI (dev group)")
        pytest.skip("the playwright package is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, headless=True,
                                      args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _nanos(page: Any, selector: str) -> int:
    return int(page.locator(selector).get_attribute("data-nanos"))


def test_dashboard_in_chromium_login_chart_filter_keys_and_a_trace(
    browser: Any, gateway_server, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", ADMIN)
    gw = gateway_server(budgets=[{"name": "acme-monthly", "scope": {"org": "acme"},
                                  "limit": 25, "period": "month"}])
    ledger = gw.gateway.settings.ledger_target
    assert isinstance(ledger, str)
    seed(ledger)
    fake.default = oai.text_reply("ok")
    dialogs: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))

    # log in
    page.goto(gw.url + "/ui/spend")
    assert page.url.endswith("/ui/login")
    _shot(page, "1-login")
    page.fill("input[name=secret]", "not the admin key")
    page.click("button[type=submit]")
    assert "that is not the admin key" in page.locator(".error").inner_text()
    page.fill("input[name=secret]", ADMIN)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/spend")
    cookie = next(c for c in page.context.cookies() if c["name"] == "tollway_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # the chart and its totals: the numbers of tollway.spend()
    (total,) = spend(ledger, group_by=[], since="7d")
    assert _nanos(page, "#total-cost") == total.cost_nanos
    assert page.locator("#total-cost").inner_text() == f"${total.cost:,.6f}"
    assert page.locator("#spend-chart svg rect").count() >= 4
    by_org = {r.group["org"]: r for r in spend(ledger, group_by=["org"], since="7d")}
    legend = page.locator("#spend-table tbody tr")
    shown = {legend.nth(i).locator("td").first.inner_text().strip():
             int(legend.nth(i).locator("[data-nanos]").get_attribute("data-nanos"))
             for i in range(legend.count())}
    assert shown == {org: row.cost_nanos for org, row in by_org.items()}
    assert XSS_ORG in shown  # shown as text, never run
    _shot(page, "2-spend")

    # filter: org acme, stacked by project, hourly
    page.select_option("#every", "hour")
    page.select_option("#stack", "project")
    page.fill("input[name=since]", "7d")
    page.fill("input[name=f_org]", "acme")
    page.click("#spend-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*f_org=acme.*"))
    (acme,) = spend(ledger, group_by=[], since="7d", filters={"org": "acme"})
    assert _nanos(page, "#total-cost") == acme.cost_nanos < total.cost_nanos
    projects = page.locator("#spend-table tbody tr td:first-child").all_inner_texts()
    assert sorted(p.strip() for p in projects) == ["ads", "search"]
    _shot(page, "3-spend-filtered")

    # keys: create (shown once), use it, revoke it
    page.click("nav >> text=Keys")
    page.fill("#create-key input[name=name]", "browser-bot")
    page.fill("#create-key input[name=org]", "acme")
    page.fill("#create-key input[name=budgets]", "3 usd/day")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("sk-tw-")
    _shot(page, "5-key-created")
    headers = {"authorization": f"Bearer {secret}"}
    chat = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    # the gateway's first call builds its Model (seconds on a loaded 2-core machine)
    reply = httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers, timeout=60)
    assert reply.status_code == 200
    cost = Decimal(reply.headers["x-tollway-cost-usd"])

    # budgets: the config's and the new key's, each with what that call spent
    page.click("nav >> text=Budgets")
    for name, limit in (("acme-monthly", "$25.000000"), ("/budget0", "$3.000000")):
        cells = page.locator("#budgets-table tbody tr", has_text=name).locator("td")
        assert cells.nth(3).inner_text() == limit
        assert cells.nth(4).inner_text() == f"${cost:,.6f}"
    _shot(page, "4-budgets")
    page.click("nav >> text=Keys")
    assert secret not in page.content()
    key_row = page.locator("#keys-table tbody tr", has_text="browser-bot")
    key_row.locator("button.danger").click()
    page.wait_for_url(re.compile(r".*revoked=.*"))
    assert dialogs and dialogs[-1].startswith("Revoke key_")
    assert page.locator("#keys-table tbody tr", has_text="browser-bot").locator(
        ".state").inner_text() == "revoked"
    _shot(page, "6-key-revoked")

    # calls, then one trace as a timeline
    page.click("nav >> text=Calls")
    assert page.locator("#calls-table tbody tr").count() >= 10
    _shot(page, "7-calls")
    page.locator(f"#calls-table a.trace >> text={TRACE_ID}").first.click()
    page.wait_for_url(re.compile(r".*/ui/trace\?id=run-42.*"))
    assert page.locator("#trace-timeline rect[data-kind=model]").count() == 2
    assert page.locator("#trace-timeline rect[data-kind=tool]").count() == 1
    assert "$0.006000" in page.locator("#trace-summary").inner_text()
    _shot(page, "8-trace")
    assert [d for d in dialogs if "org" in d] == []  # the XSS org never ran
    assert sorted(p.name for p in SCREENSHOTS.glob("*.png"))[:8] == [
        "1-login.png", "2-spend.png", "3-spend-filtered.png", "4-budgets.png",
        "5-key-created.png", "6-key-revoked.png", "7-calls.png", "8-trace.png"]
