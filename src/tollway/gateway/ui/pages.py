"""The dashboard's pages: one handler per route, each reading through
:mod:`tollway.core.reports` (spend, budgets, calls, traces) or the key store functions
``tollway keys`` uses (``new_key`` + ``store.add``, ``store.revoke``).

Handlers run the (synchronous) ledger and store reads in a thread so the gateway's
event loop never waits on them, and escape every value they print.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tollway.core import reports
from tollway.core.cost.budgets import BudgetRow
from tollway.core.cost.records import CallRecord
from tollway.core.cost.series import SERIES_BUCKETS, SpendSeries
from tollway.core.cost.spend import parse_time
from tollway.core.errors import ConfigError
from tollway.gateway.admin_routes import key_options
from tollway.gateway.errors import GatewayError
from tollway.gateway.key_store import KeyNotFoundError
from tollway.gateway.keys import VirtualKey, new_key
from tollway.gateway.ui.charts import METRICS, budget_bar, colour, spend_chart, swatch, timeline
from tollway.gateway.ui.html import attrs, esc, form_token, nanos_usd, number, table, when
from tollway.gateway.ui.http import UIReply, UIRequest, redirect

if TYPE_CHECKING:
    from tollway.gateway.ui.app import Dashboard

__all__ = ["budgets", "calls", "create_key", "home", "keys", "login", "login_form", "logout",
           "revoke_key", "spend", "trace"]

DIMENSIONS = ("org", "project", "user", "key", "agent", "node", "alias", "model", "status")
"""What the chart stacks by and the pages filter on (spend group keys)."""
TOP_LINES = 8


# --------------------------------------------------------------------------- login


async def home(ui: Dashboard, req: UIRequest) -> UIReply:
    return redirect("/ui/spend")


def _login_body(ui: Dashboard) -> str:
    what = "dashboard token" if ui.link_login else "admin key"
    return (
        '<form method="post" action="/ui/login" class="login">'
        f'<label>{esc(what.capitalize())} <input type="password" name="secret" '
        'autocomplete="current-password" required autofocus></label>'
        '<button type="submit">Log in</button></form>'
    )


async def login_form(ui: Dashboard, req: UIRequest) -> UIReply:
    token = req.arg("token")
    if token and ui.link_login:
        if ui.sessions.login(token):
            return redirect("/ui/spend", ui.session_cookie(req))
        await asyncio.sleep(0.5)
        return ui.page("Log in", _login_body(ui), req, status=401,
                       error="that link's token is not this dashboard's")
    if req.session is not None:
        return redirect("/ui/spend")
    return ui.page("Log in", _login_body(ui), req)


async def login(ui: Dashboard, req: UIRequest) -> UIReply:
    if ui.sessions.login(req.arg("secret")):
        return redirect("/ui/spend", ui.session_cookie(req))
    await asyncio.sleep(0.5)  # a guess costs time
    what = "dashboard token" if ui.link_login else "admin key"
    return ui.page("Log in", _login_body(ui), req, status=401, error=f"that is not the {what}")


async def logout(ui: Dashboard, req: UIRequest) -> UIReply:
    return redirect("/ui/login", ui.clear_cookie(req))


# --------------------------------------------------------------------------- filters


def _filters(req: UIRequest) -> dict[str, str]:
    return {key: req.arg(f"f_{key}") for key in DIMENSIONS if req.arg(f"f_{key}")}


def _select(name: str, options: Sequence[tuple[str, str]], chosen: str) -> str:
    items = "".join(f"<option{attrs(value=value, selected=value == chosen)}>{esc(label)}</option>"
                    for value, label in options)
    return f"<select{attrs(name=name, id=name)}>{items}</select>"


def _filter_inputs(filters: dict[str, str], since: str, until: str) -> str:
    fields = "".join(
        f'<label>{esc(key)} <input{attrs(name=f"f_{key}", value=filters.get(key, ""), size=10)}></label>'
        for key in DIMENSIONS
    )
    return (
        f'<label>since <input{attrs(name="since", value=since, size=12, placeholder="7d, 2026-11-01")}></label>'
        f'<label>until <input{attrs(name="until", value=until, size=12, placeholder="exclusive")}></label>'
        f'<fieldset><legend>filters</legend>{fields}</fieldset>'
    )


def _cli(every: str, stack: str, since: str, until: str, filters: dict[str, str]) -> str:
    """The ``tollway spend`` command that prints this page's numbers (shell-quoted)."""
    parts = ["tollway spend", f"--every {every}"]
    if stack:
        parts.append(f"--by {stack}")
    if since:
        parts.append(f"--since {shlex.quote(since)}")
    if until:
        parts.append(f"--until {shlex.quote(until)}")
    parts += [f"--filter {shlex.quote(f'{k}={v}')}" for k, v in filters.items()]
    return " ".join(parts)


# --------------------------------------------------------------------------- spend


async def spend(ui: Dashboard, req: UIRequest) -> UIReply:
    every = req.arg("every", "day")
    stack = req.arg("stack", "org")
    metric = req.arg("metric", "cost")
    since = req.arg("since", "7d" if every == "day" else "24h")
    until = req.arg("until")
    filters = _filters(req)
    if every not in SERIES_BUCKETS:
        raise ConfigError(f"every must be hour or day; got {every!r}", key="every")
    if stack not in (*DIMENSIONS, "none"):
        raise ConfigError(f"stack by one of {', '.join(DIMENSIONS)} or none; got {stack!r}",
                          key="stack")
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}",
                          key="metric")
    stack_by = None if stack == "none" else stack
    series = await asyncio.to_thread(
        reports.spend_series, ui.source.ledger, every=every,  # type: ignore[arg-type]
        stack_by=stack_by, since=since, until=until, filters=filters, top=TOP_LINES,
    )
    form = (
        '<form method="get" action="/ui/spend" class="filters" id="spend-filters">'
        f'<label>every {_select("every", [(b, b) for b in SERIES_BUCKETS], every)}</label>'
        f'<label>stack by {_select("stack", [(d, d) for d in (*DIMENSIONS, "none")], stack)}</label>'
        f'<label>show {_select("metric", [(m, m) for m in METRICS], metric)}</label>'
        f"{_filter_inputs(filters, since, until)}"
        '<button type="submit">Apply</button></form>'
    )
    body = (form + f'<figure id="spend-chart">{spend_chart(series, metric)}</figure>'
            + _series_table(series, stack_by)
            + f'<p class="cli">Same numbers on the command line: <code>'
            f"{esc(_cli(every, stack if stack_by else '', since, until, filters))}</code></p>")
    return ui.page("Spend", body, req, active="spend")


def _series_table(series: SpendSeries, stack_by: str | None) -> str:
    rows = []
    for index, line in enumerate(series.lines):
        total = line.total
        name = "other" if line.other else ("(unset)" if line.value is None else line.value)
        rows.append([
            f"{swatch(colour(index, line.other))} {esc(name)}",
            f"{total.calls:,}", f"{total.input_tokens:,}", f"{total.output_tokens:,}",
            f'<span{attrs(data_nanos=total.cost_nanos)}>{esc(nanos_usd(total.cost_nanos))}</span>',
            f"{total.unpriced_calls:,}",
        ])
    t = series.total
    foot = ["total", f"{t.calls:,}", f"{t.input_tokens:,}", f"{t.output_tokens:,}",
            f'<span id="total-cost"{attrs(data_nanos=t.cost_nanos)}>{esc(nanos_usd(t.cost_nanos))}</span>',
            f"{t.unpriced_calls:,}"]
    return table([stack_by or "all calls", "calls", "input tokens", "output tokens", "cost",
                  "unpriced"], rows, id_="spend-table", numeric=range(1, 6), foot=foot)


# --------------------------------------------------------------------------- budgets


def _amount(value: Decimal | int, unit: str) -> str:
    if unit == "usd":
        return f"${Decimal(value):,.6f}"
    return f"{int(value):,} {unit}"


async def budgets(ui: Dashboard, req: UIRequest) -> UIReply:
    rows: list[BudgetRow] = await asyncio.to_thread(ui.source.budgets)
    if not rows:
        body = ('<p class="empty">No budgets or rate limits with counters. Budgets come from '
                "tollway.yaml (<code>budgets:</code>, <code>rate_limits:</code>) and from keys "
                "(<code>--budget</code>, <code>--rpm</code>).</p>")
        return ui.page("Budgets", body, req, active="budgets")
    lines = [[
        esc(r.budget), esc(r.scope), esc(r.period), esc(_amount(r.limit, r.unit)),
        esc(_amount(r.spent, r.unit)), esc(_amount(r.reserved, r.unit)),
        esc(_amount(r.remaining, r.unit)),
        esc("never" if r.resets_at is None else f"{r.resets_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"),
        budget_bar(r),
    ] for r in rows]
    body = table(["budget", "scope", "period", "limit", "spent", "reserved", "remaining",
                  "resets", "used"], lines, id_="budgets-table", numeric=range(3, 7))
    return ui.page("Budgets", body, req, active="budgets")


# --------------------------------------------------------------------------- keys


def _state(key: VirtualKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expired():
        return "expired"
    return "active"


def _key_row(key: VirtualKey, csrf: str) -> list[str]:
    limits = [*key.budgets, *([f"{key.rpm} rpm"] if key.rpm is not None else []),
              *([f"{key.tpm} tpm"] if key.tpm is not None else []),
              *([key.hours] if key.hours else [])]
    state = _state(key)
    action = ""
    if state == "active":
        action = (f'<form method="post"{attrs(action=f"/ui/keys/{key.id}/revoke")}>'
                  f'{form_token(csrf)}<button type="submit" class="danger"'
                  f'{attrs(data_key=key.id)}>Revoke</button></form>')
    who = "/".join(v or "-" for v in (key.org, key.project, key.user))
    models = "all aliases" if key.models is None else ", ".join(key.models)
    created = datetime.fromtimestamp(key.created_at).astimezone()
    return [f"<code>{esc(key.id)}</code>", f"<code>{esc(key.prefix)}…</code>", esc(key.name),
            esc(who), esc(models), esc("; ".join(limits) or "-"),
            f'<span{attrs(class_=f"state {state}")}>{esc(state)}</span>', esc(when(created)),
            action]


_CREATE_FIELDS = (
    ("name", "label", "ci-bot"), ("org", "org", "acme"), ("project", "project", "search"),
    ("user", "user", "alice"), ("models", "models", "fast,smart (empty: all)"),
    ("budgets", "budgets", "10 usd/day, 1000 requests/hour"), ("rpm", "rpm", "60"),
    ("tpm", "tpm", "100000"), ("hours", "hours", "mon-fri 08:00-19:00 Europe/Berlin"),
    ("expires", "expires", "30d or 2026-12-31"), ("tags", "tags", "team=ml, env=prod"),
)


def _keys_page(ui: Dashboard, req: UIRequest, keys: list[VirtualKey], *,
               created: tuple[str, VirtualKey] | None = None, message: str | None = None,
               error: str | None = None, status: int = 200) -> UIReply:
    assert req.session is not None
    shown = ""
    if created is not None:
        secret, key = created
        shown = (f'<section class="secret" id="new-key"><h2>Key {esc(key.id)} created</h2>'
                 "<p>Copy the secret now: it is shown once and the store keeps only its hash."
                 f'</p><p><code id="new-secret">{esc(secret)}</code> '
                 '<button type="button" class="copy" data-copy="new-secret">Copy</button></p>'
                 "</section>")
    values = {name: req.arg(name) for name, _, _ in _CREATE_FIELDS} if error else {}
    inputs = "".join(
        f'<label>{esc(label)} <input{attrs(name=name, placeholder=hint, value=values.get(name))}></label>'
        for name, label, hint in _CREATE_FIELDS
    )
    form = (f'<details class="create" open><summary>Create a key</summary>'
            f'<form method="post" action="/ui/keys" id="create-key">{form_token(req.session.csrf)}'
            f'{inputs}<button type="submit">Create key</button></form></details>')
    listing = (table(["id", "prefix", "label", "org/project/user", "models", "limits", "state",
                      "created", ""], [_key_row(k, req.session.csrf) for k in keys],
                     id_="keys-table")
               if keys else '<p class="empty">No keys yet.</p>')
    return ui.page("Keys", shown + form + listing, req, active="keys", message=message,
                   error=error, status=status)


def _store(ui: Dashboard) -> Any:
    store = ui.source.keys
    assert store is not None  # the route is hidden without a key store
    return store


async def keys(ui: Dashboard, req: UIRequest) -> UIReply:
    listing = await asyncio.to_thread(_store(ui).list)
    revoked = req.arg("revoked")
    return _keys_page(ui, req, listing, message=f"revoked {revoked}" if revoked else None)


def _form_body(req: UIRequest) -> dict[str, Any]:
    """The create form as the admin API's JSON body (same validation, same errors)."""
    body: dict[str, Any] = {}
    for name in ("name", "org", "project", "user", "models", "hours", "expires"):
        if req.arg(name):
            body[name] = req.arg(name)
    for name in ("rpm", "tpm"):
        text = req.arg(name)
        if text:
            if not text.isdigit():
                raise ConfigError(f"{name} must be a whole number; got {text!r}", key=name)
            body[name] = int(text)
    budgets_text = req.arg("budgets")
    if budgets_text:
        body["budgets"] = [b.strip() for b in budgets_text.split(",") if b.strip()]
    tags_text = req.arg("tags")
    if tags_text:
        tags = {}
        for item in tags_text.split(","):
            name, sep, value = item.strip().partition("=")
            if not sep or not name:
                raise ConfigError(f"a tag is NAME=VALUE; got {item.strip()!r}", key="tags")
            tags[name.strip()] = value.strip()
        body["tags"] = tags
    return body


async def create_key(ui: Dashboard, req: UIRequest) -> UIReply:
    store = _store(ui)
    try:
        secret, key, digest = new_key(**key_options(_form_body(req)))
        await asyncio.to_thread(store.add, key, digest)
    except (ConfigError, GatewayError) as exc:  # the admin API's messages, as a 400 page
        listing = await asyncio.to_thread(store.list)
        return _keys_page(ui, req, listing, error=str(exc), status=400)
    listing = await asyncio.to_thread(store.list)
    return _keys_page(ui, req, listing, created=(secret, key), status=201)


async def revoke_key(ui: Dashboard, req: UIRequest) -> UIReply:
    store = _store(ui)
    try:
        key = await asyncio.to_thread(store.revoke, req.params["id"])
    except KeyNotFoundError as exc:
        listing = await asyncio.to_thread(store.list)
        return _keys_page(ui, req, listing, error=str(exc), status=404)
    return redirect("/ui/keys?" + urlencode({"revoked": key.id}))


# --------------------------------------------------------------------------- calls


def _trace_link(record: CallRecord) -> str:
    if not record.trace_id:
        return ""
    query = urlencode({"id": record.trace_id, "at": record.time.isoformat()})
    return f'<a{attrs(href=f"/ui/trace?{query}", class_="trace")}>{esc(record.trace_id[:12])}</a>'


def _who(record: CallRecord) -> str:
    return "/".join(v or "-" for v in (record.org, record.project, record.user))


def _what(record: CallRecord) -> str:
    if record.kind == "tool":
        return f"tool {record.tool_server or '?'}/{record.tool_name or record.model}"
    return f"{record.alias or '-'} → {record.provider}/{record.model}"


def _call_row(record: CallRecord, *, trace_link: bool = True) -> list[str]:
    row = [esc(when(record.time)), esc(_who(record)), esc(record.agent or record.node or "-"),
           esc(_what(record)), f"{record.usage.input_tokens:,}", f"{record.usage.output_tokens:,}",
           f'<span{attrs(data_nanos=record.cost_nanos)}>{esc(nanos_usd(record.cost_nanos))}</span>',
           f"{number(record.latency_ms)} ms",
           f'<span{attrs(class_="status ok" if record.status == "ok" else "status failed", title=record.error)}>'
           f"{esc(record.status)}</span>"]
    if trace_link:
        row.append(_trace_link(record))
    return row


_CALL_HEADERS = ["time", "org/project/user", "agent/node", "model", "input", "output", "cost",
                 "latency", "status"]


async def calls(ui: Dashboard, req: UIRequest) -> UIReply:
    since, until = req.arg("since"), req.arg("until")
    filters = _filters(req)
    limit_text = req.arg("limit", "100")
    if not limit_text.isdigit():
        raise ConfigError(f"limit must be a whole number; got {limit_text!r}", key="limit")
    records = await asyncio.to_thread(
        reports.calls, ui.source.ledger, since=since or None, until=until or None,
        filters=filters, limit=int(limit_text),
    )
    form = ('<form method="get" action="/ui/calls" class="filters" id="calls-filters">'
            f"{_filter_inputs(filters, since, until)}"
            f'<label>rows <input{attrs(name="limit", value=limit_text, size=5)}></label>'
            '<button type="submit">Apply</button></form>')
    listing = (table([*_CALL_HEADERS, "trace"], [_call_row(r) for r in records], id_="calls-table",
                     numeric=(4, 5, 6, 7))
               if records else '<p class="empty">No calls match.</p>')
    return ui.page("Calls", form + listing, req, active="calls")


async def trace(ui: Dashboard, req: UIRequest) -> UIReply:
    trace_id = req.arg("id")
    if not trace_id:
        raise ConfigError("which trace? open one from the calls page (/ui/trace?id=...)",
                          key="id")
    at_text = req.arg("at")
    around = parse_time(at_text, "at") if at_text else None
    records = await asyncio.to_thread(reports.trace, ui.source.ledger, trace_id, around=around)
    rounds = [r for r in records if r.kind == "model"]
    tools = [r for r in records if r.kind == "tool"]
    cost = sum(r.cost_nanos or 0 for r in records)
    summary = (
        f'<dl class="summary" id="trace-summary"><dt>trace</dt><dd><code>{esc(trace_id)}</code></dd>'
        f"<dt>model rounds</dt><dd>{len(rounds)}</dd><dt>tool calls</dt><dd>{len(tools)}</dd>"
        f"<dt>tokens</dt><dd>{sum(r.usage.input_tokens for r in rounds):,} in / "
        f"{sum(r.usage.output_tokens for r in rounds):,} out</dd>"
        f'<dt>cost</dt><dd{attrs(data_nanos=cost)}>{esc(nanos_usd(cost))}</dd></dl>'
    )
    listing = table(_CALL_HEADERS, [_call_row(r, trace_link=False) for r in records],
                    id_="trace-table", numeric=(4, 5, 6, 7)) if records else ""
    body = summary + f'<figure id="trace-timeline">{timeline(records)}</figure>' + listing
    return ui.page("Trace", body, req, active="calls")
