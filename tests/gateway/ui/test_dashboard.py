"""The dashboard over real HTTP: login and its cookie, CSRF and cross-origin refusal,
escaping of attribution values, the numbers against ``tollway.spend``, keys created and
revoked on the page working (and stopping) on the gateway, budgets, traces."""

from __future__ import annotations

import html
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.ui.conftest import TOKEN, TRACE_ID, XSS_ORG, seed
from tollway.core.reports import spend
from tollway.core.types import Usage

ADMIN = "admin-secret-for-dashboard-tests-0123"
CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def _admin(gw: Any) -> httpx.Client:
    """A client logged in to the gateway's dashboard with the admin key."""
    client = httpx.Client(base_url=gw.url)
    assert client.post("/ui/login", data={"secret": ADMIN}).status_code == 303
    return client


def _nanos(page: str, element_id: str) -> int:
    found = re.search(rf'id="{element_id}" data-nanos="(\d+)"', page)
    assert found, f"no #{element_id} with data-nanos"
    return int(found.group(1))


# --------------------------------------------------------------------------- login


def test_pages_need_a_login_and_the_session_cookie_is_httponly_strict_and_signed(
    dashboard_server, seeded_ledger: Path
) -> None:
    ui = dashboard_server(seeded_ledger)
    anonymous = ui.client(login=False)
    reply = anonymous.get("/ui/spend")
    assert (reply.status_code, reply.headers["location"]) == (303, "/ui/login")
    assert anonymous.post("/ui/logout", data={}).status_code == 403
    wrong = anonymous.post("/ui/login", data={"secret": "guess"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert "guess" not in wrong.text

    good = anonymous.post("/ui/login", data={"secret": TOKEN})
    assert good.status_code == 303
    cookie = good.headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/ui"):
        assert flag in cookie
    assert TOKEN not in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    page = httpx.get(ui.url + "/ui/spend", cookies={"tollway_ui": value})
    assert page.status_code == 200 and "<h1>Spend</h1>" in page.text
    tampered = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert httpx.get(ui.url + "/ui/spend", cookies={"tollway_ui": tampered}).status_code == 303
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert header in page.headers
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_the_printed_link_logs_in_and_logout_ends_the_session(dashboard_server,
                                                              seeded_ledger: Path) -> None:
    ui = dashboard_server(seeded_ledger)
    client = ui.client(login=False)
    reply = client.get("/ui/login", params={"token": TOKEN})
    assert (reply.status_code, reply.headers["location"]) == (303, "/ui/spend")
    assert client.get("/ui/spend").status_code == 200
    page = client.get("/ui/budgets").text
    assert client.post("/ui/logout", data={"csrf": _csrf(page)}).status_code == 303
    assert client.get("/ui/spend").status_code == 303
    assert client.get("/ui/login", params={"token": "not-it"}).status_code == 401


def test_gateway_dashboard_is_off_without_an_admin_key(gateway_server) -> None:
    gw = gateway_server()
    reply = httpx.get(gw.url + "/ui/login")
    assert reply.status_code == 404
    assert "TOLLWAY_ADMIN_KEY" in reply.json()["error"]["message"]


def test_gateway_dashboard_logs_in_with_the_admin_key_never_through_a_link(
    gateway_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", ADMIN)
    gw = gateway_server()
    client = httpx.Client(base_url=gw.url)
    assert client.get("/ui/login", params={"token": ADMIN}).status_code == 200  # just the form
    assert "set-cookie" not in client.get("/ui/login", params={"token": ADMIN}).headers
    assert client.post("/ui/login", data={"secret": ADMIN}).status_code == 303
    assert "Admin key" in httpx.get(gw.url + "/ui/login").text
    assert client.get("/ui/keys").status_code == 200


# --------------------------------------------------------------------------- CSRF, escaping


def test_posts_without_the_csrf_token_or_from_another_origin_are_refused(
    gateway_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", ADMIN)
    gw = gateway_server()
    client = _admin(gw)
    token = _csrf(client.get("/ui/keys").text)
    assert client.post("/ui/keys", data={"org": "acme"}).status_code == 403
    assert client.post("/ui/keys", data={"org": "acme", "csrf": "0" * 32}).status_code == 403
    evil = client.post("/ui/keys", data={"org": "acme", "csrf": token},
                       headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    assert gw.gateway.keys is not None and gw.gateway.keys.store.list() == []
    ok = client.post("/ui/keys", data={"org": "acme", "csrf": token},
                     headers={"origin": gw.url})
    assert ok.status_code == 201 and len(gw.gateway.keys.store.list()) == 1


def test_attribution_values_are_shown_escaped_never_as_markup(dashboard_server,
                                                              seeded_ledger: Path) -> None:
    client = dashboard_server(seeded_ledger).client()
    for path in ("/ui/spend?stack=org", "/ui/calls", "/ui/spend?stack=org&f_project=evil"):
        page = client.get(path).text
        assert "<script>alert" not in page
        assert html.escape(XSS_ORG, quote=True) in page
    filtered = client.get("/ui/spend", params={"stack": "org", "f_org": XSS_ORG}).text
    assert 'value="&lt;script&gt;alert(&quot;org&quot;)&lt;/script&gt;&amp;&quot;x"' in filtered


# --------------------------------------------------------------------------- numbers


def test_spend_page_shows_the_numbers_of_tollway_spend(dashboard_server,
                                                       seeded_ledger: Path) -> None:
    client = dashboard_server(seeded_ledger).client()
    page = client.get("/ui/spend", params={"stack": "org", "since": "7d"}).text
    (total,) = spend(str(seeded_ledger), group_by=[], since="7d")
    assert _nanos(page, "total-cost") == total.cost_nanos
    by_org = {r.group["org"]: r.cost_nanos for r in spend(str(seeded_ledger), group_by=["org"],
                                                          since="7d")}
    shown = re.findall(r'</svg> ([^<]+)</td>(?:<td class=num>[^<]*</td>){3}'
                       r'<td class=num><span data-nanos="(\d+)"', page)
    assert {html.unescape(name): int(n) for name, n in shown} == by_org
    assert page.count("<rect") > len(by_org)  # bars were drawn
    assert "tollway spend --every day --by org --since 7d" in page

    hourly = client.get("/ui/spend", params={"every": "hour", "stack": "project", "since": "7d",
                                             "f_org": "acme", "metric": "tokens"}).text
    (acme,) = spend(str(seeded_ledger), group_by=[], since="7d", filters={"org": "acme"})
    assert _nanos(hourly, "total-cost") == acme.cost_nanos
    assert "--filter org=acme" in hourly


def test_bad_page_parameters_are_a_400_page_that_says_what_was_wrong(
    dashboard_server, seeded_ledger: Path
) -> None:
    client = dashboard_server(seeded_ledger).client()
    reply = client.get("/ui/spend", params={"stack": "colour"})
    assert reply.status_code == 400 and "stack by one of org" in reply.text
    reply = client.get("/ui/spend", params={"since": "last tuesday"})
    assert reply.status_code == 400 and "is not a time" in reply.text
    assert client.get("/ui/calls", params={"limit": "lots"}).status_code == 400


def test_calls_and_one_trace_as_a_timeline(dashboard_server, seeded_ledger: Path) -> None:
    client = dashboard_server(seeded_ledger).client()
    calls = client.get("/ui/calls", params={"f_org": "acme", "limit": "3"}).text
    assert calls.count('class="trace"') == 3  # the newest three: the trace's rows
    link = re.search(r'href="(/ui/trace\?id=run-42[^"]+)"', calls)
    assert link, calls
    page = client.get(html.unescape(link.group(1))).text
    assert re.search(r"<dt>model rounds</dt><dd>2</dd><dt>tool calls</dt><dd>1</dd>", page)
    assert "4,920 in / 140 out" in page and 'data-nanos="6000000"' in page
    assert page.count('data-kind="model"') == 2 and page.count('data-kind="tool"') == 1
    assert "tool time/get_current_time" in page
    missing = client.get("/ui/trace", params={"id": "nope"}).text
    assert "No rows for this trace" in missing
    assert TRACE_ID in page


def test_without_a_key_store_the_keys_pages_are_hidden(dashboard_server,
                                                      seeded_ledger: Path) -> None:
    client = dashboard_server(seeded_ledger).client()
    assert 'href="/ui/keys"' not in client.get("/ui/spend").text
    assert client.get("/ui/keys").status_code == 404


def test_static_assets_are_package_data(dashboard_server, seeded_ledger: Path) -> None:
    client = dashboard_server(seeded_ledger).client(login=False)
    css = client.get("/ui/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "header nav" in css.text
    assert client.get("/ui/static/dashboard.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/static/../app.py").status_code == 404


# --------------------------------------------------------------------------- keys, budgets


def test_a_key_created_on_the_page_works_on_the_gateway_until_revoked_there(
    gateway_server, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", ADMIN)
    gw = gateway_server()
    fake.default = oai.text_reply("ok")
    client = _admin(gw)
    page = client.get("/ui/keys").text
    created = client.post("/ui/keys", data={
        "csrf": _csrf(page), "name": "ci-bot", "org": "acme", "project": "search",
        "models": "fast", "budgets": "5 usd/day", "rpm": "60", "tags": "team=ml"})
    assert created.status_code == 201
    secret = re.search(r'<code id="new-secret">(sk-tw-[^<]+)</code>', created.text)
    assert secret, created.text
    secret_text = secret.group(1)
    headers = {"authorization": f"Bearer {secret_text}"}
    first = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=60)
    assert first.status_code == 200
    listing = client.get("/ui/keys").text
    assert secret_text not in listing and secret_text[:10] in listing  # the prefix only
    key_id = re.search(r'data-key="(key_[^"]+)"', listing).group(1)  # type: ignore[union-attr]

    budgets = client.get("/ui/budgets").text
    assert f"{key_id}/budget0" in budgets and "$5.000000" in budgets

    revoked = client.post(f"/ui/keys/{key_id}/revoke", data={"csrf": _csrf(listing)})
    assert revoked.status_code == 303
    assert f"revoked {key_id}" in client.get(revoked.headers["location"]).text
    deadline = time.monotonic() + 2
    while httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
    bad = client.post("/ui/keys", data={"csrf": _csrf(listing), "budgets": "ten bucks"})
    assert bad.status_code == 400 and "budget" in bad.text.lower()
    assert client.post("/ui/keys/key_nope/revoke", data={"csrf": _csrf(listing)}).status_code == 404


def test_budgets_page_shows_limit_spent_reserved_remaining_and_reset(
    gateway_server, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", ADMIN)
    gw = gateway_server(
        budgets=[{"name": "acme-daily", "scope": {"org": "acme"}, "limit": 2, "period": "day"}],
        budget_store={"backend": "sqlite", "path": str(tmp_path / "config-budgets.db")},
    )
    fake.default = oai.text_reply("ok", usage=Usage(100_000, 10))
    secret, _key = gw.create_key(org="acme")
    reply = httpx.post(gw.url + "/v1/chat/completions", json=CHAT,
                       headers={"authorization": f"Bearer {secret}"}, timeout=60)
    assert reply.status_code == 200
    spent = reply.headers["x-tollway-cost-usd"]
    client = _admin(gw)
    page = client.get("/ui/budgets").text
    row = re.search(r"<tr><td>acme-daily</td>(.*?)</tr>", page)
    assert row, page
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    assert cells[2:6] == ["$2.000000", f"${Decimal(spent):,.6f}", "$0.000000",
                          f"${2 - Decimal(spent):,.6f}"]
    assert "UTC" in cells[6] and 'role="img"' in cells[7]


def test_the_gateway_dashboard_reads_the_gateway_ledger(
    gateway_server, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", ADMIN)
    gw = gateway_server()
    seed(gw.gateway.settings.ledger_target)  # type: ignore[arg-type]
    client = _admin(gw)
    page = client.get("/ui/spend").text
    (total,) = spend(gw.gateway.settings.ledger_target, group_by=[], since="7d")  # type: ignore[arg-type]
    assert _nanos(page, "total-cost") == total.cost_nanos > 0
