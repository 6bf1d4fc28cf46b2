"""Checks shared by the SQLite and PostgreSQL ledger tests (same data, same answers),
plus the helpers that run in child processes (importable, for multiprocessing spawn)."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from tollway.core.cost.ledger import COLUMN_NAMES, Ledger
from tollway.core.cost.records import CallRecord
from tollway.core.cost.spend import SpendRow
from tollway.core.reports import calls, spend, spend_series, trace
from tollway.core.stores.open import open_ledger
from tollway.core.types import Usage

SECRET = "sk-proj-abcdefghijklmnop0123456789"


def full_row(**overrides: Any) -> CallRecord:
    """A row with every field set to a non-default value."""
    row = CallRecord(
        time=datetime(2026, 11, 5, 9, 30, 15, 123456, tzinfo=UTC),
        kind="model",
        trace_id="trace-1",
        request_id="chatcmpl-1",
        org="acme",
        project="search",
        user="u1",
        key="key-ops",
        tags={"env": "prod", "team": "ranking"},
        framework="langgraph",
        agent="planner",
        node="plan",
        attribution={"run_id": "r-1", "step": 3},
        provider="openai",
        model="gpt-4o",
        deployment="openai-east",
        alias="smart",
        usage=Usage(1200, 340, 200, 100, 40, 120, 1, {"web_search": 2}, input_image_tokens=90,
                    input_audio_tokens=300, input_video_tokens=20, cache_audio_read_tokens=80,
                    cache_image_read_tokens=10, output_audio_tokens=60, output_video_tokens=5,
                    service_tier="priority"),
        cost_nanos=4_567_891,
        latency_ms=812.5,
        ttft_ms=120.25,
        status="RateLimitError",
        error=f"429 from provider, key {SECRET} rejected",
        stream=True,
        tool_server="time",
        tool_name="get_time",
    )
    for name, value in overrides.items():
        setattr(row, name, value)
    return row


def every_field_has_a_column() -> None:
    """A CallRecord field added without a ledger column (and migration) fails here."""
    names = {f.name for f in fields(CallRecord)} - {"usage"} | {f.name for f in fields(Usage)}
    assert names == set(COLUMN_NAMES)


def check_round_trip(ledger: Any) -> None:
    """Every field comes back as written; the error text is scrubbed of secrets."""
    row = full_row()
    ledger.record(row)
    ledger.record(full_row(org=None, tags={}, attribution={}, cost_nanos=None, ttft_ms=None,
                           error=None, stream=False, usage=Usage(5, 6)))
    first, second = ledger.records()[-2:]
    assert first.time == row.time
    assert first.usage == row.usage
    assert SECRET not in (first.error or "") and "***" in (first.error or "")
    expected = {f.name: getattr(row, f.name) for f in fields(CallRecord)}
    got = {f.name: getattr(first, f.name) for f in fields(CallRecord)}
    expected["error"] = got["error"]
    assert got == expected
    assert (second.org, second.tags, second.cost_nanos, second.ttft_ms, second.stream) == (
        None, {}, None, None, False
    )


# --------------------------------------------------------------------------- spend

NOV1 = datetime(2026, 11, 1, tzinfo=UTC)


def _row(when: datetime, **kw: Any) -> CallRecord:
    usage = kw.pop("usage", Usage())
    return CallRecord(time=when, trace_id="t", usage=usage, **kw)


SPEND_ROWS = [
    _row(NOV1 + timedelta(hours=10), org="acme", project="search", user="u1",
         provider="openai", model="gpt-4o", tags={"env": "prod"},
         usage=Usage(1000, 100, 200, 0, 0, 30), cost_nanos=3_500_000),
    _row(NOV1 + timedelta(hours=23, minutes=59, seconds=59), org="acme", project="search",
         user="u2", provider="openai", model="gpt-4o", tags={"env": "dev"},
         usage=Usage(2000, 200), cost_nanos=7_000_000),
    _row(NOV1 + timedelta(days=1), org="acme", project="ads", user="u1",
         provider="anthropic", model="claude-sonnet-4-5", tags={"env": "prod", "team": "x"},
         usage=Usage(500, 50, 0, 100, 0, 20), cost_nanos=2_250_000),
    _row(NOV1 + timedelta(days=1, hours=12), org="globex", user="u3", provider="ollama",
         model="llama3", usage=Usage(300, 30), cost_nanos=None),
    # a failed call with no cost is not an unpriced call
    _row(NOV1 + timedelta(days=2, hours=8), org="globex", user="u3", provider="openai",
         model="gpt-4o", status="RateLimitError", cost_nanos=None),
    _row(NOV1 - timedelta(hours=1), org="acme", project="search", user="u1",
         provider="openai", model="gpt-4o", tags={"env": "prod"}, usage=Usage(100, 10),
         cost_nanos=1_000_000),
]


def populate_spend(ledger: Ledger) -> None:
    for row in SPEND_ROWS:
        ledger.record(row)


def _groups(rows: list[SpendRow]) -> list[tuple[Any, ...]]:
    return [(*r.group.values(), r.calls, r.cost_nanos, r.unpriced_calls) for r in rows]


def check_spend(ledger: Ledger) -> None:
    """The answers every store must give for SPEND_ROWS."""
    by_model = spend(ledger, group_by=["model"], since="2026-11-01")
    assert _groups(by_model) == [
        ("gpt-4o", 3, 10_500_000, 0),
        ("claude-sonnet-4-5", 1, 2_250_000, 0),
        ("llama3", 1, 0, 1),
    ]
    gpt = by_model[0]
    assert (gpt.input_tokens, gpt.output_tokens, gpt.cache_read_tokens,
            gpt.reasoning_tokens) == (3000, 300, 200, 30)
    assert str(gpt.cost) == "0.0105"

    assert _groups(spend(ledger, group_by="org,project", since=NOV1)) == [
        ("acme", "search", 2, 10_500_000, 0),
        ("acme", "ads", 1, 2_250_000, 0),
        ("globex", None, 2, 0, 1),
    ]
    # days are UTC calendar days; 23:59:59 belongs to its own day
    assert _groups(spend(ledger, group_by=["day"])) == [
        ("2026-11-01", 2, 10_500_000, 0),
        ("2026-11-02", 2, 2_250_000, 1),
        ("2026-10-31", 1, 1_000_000, 0),
        ("2026-11-03", 1, 0, 0),
    ]
    assert _groups(spend(ledger, group_by=["month"])) == [
        ("2026-11", 5, 12_750_000, 1),
        ("2026-10", 1, 1_000_000, 0),
    ]
    assert _groups(spend(ledger, group_by=["tag:env"])) == [
        ("dev", 1, 7_000_000, 0),
        ("prod", 3, 6_750_000, 0),
        (None, 2, 0, 1),
    ]
    # since inclusive / until exclusive; an aware time in another zone is the same instant
    assert _groups(spend(ledger, group_by=["user"], since="2026-11-01T01:00:00+01:00",
                         until="2026-11-02")) == [
        ("u2", 1, 7_000_000, 0),
        ("u1", 1, 3_500_000, 0),
    ]
    # filters: equality, one of several values, unset (None), a tag, combined
    assert _groups(spend(ledger, group_by=["user"], filters={"org": "acme"})) == [
        ("u2", 1, 7_000_000, 0),
        ("u1", 3, 6_750_000, 0),
    ]
    assert _groups(spend(ledger, group_by=["model"], filters={"project": None})) == [
        ("gpt-4o", 1, 0, 0),
        ("llama3", 1, 0, 1),
    ]
    assert _groups(spend(ledger, group_by=["project"],
                         filters={"tag:team": "x", "org": ["acme", "initech"]})) == [
        ("ads", 1, 2_250_000, 0),
    ]
    assert _groups(spend(ledger, group_by=["status"], filters={"tag:env": [None, "dev"]})) == [
        ("ok", 2, 7_000_000, 1),
        ("RateLimitError", 1, 0, 0),
    ]
    assert _groups(spend(ledger, group_by=["provider", "tag:env"],
                         filters={"provider": "openai", "tag:env": "prod"})) == [
        ("openai", "prod", 2, 4_500_000, 0),
    ]
    # no group: one grand total; nothing in range: no rows
    total = spend(ledger, group_by=[])
    assert _groups(total) == [(6, 13_750_000, 1)]
    assert spend(ledger, group_by=[], since="2030-01-01") == []


def check_over_time(ledger: Ledger) -> None:
    """Hour buckets, the series built on them, the rows themselves and one trace: the
    same answers from every store."""
    assert _groups(spend(ledger, group_by=["hour"], since=NOV1, until="2026-11-02")) == [
        ("2026-11-01T23", 1, 7_000_000, 0),
        ("2026-11-01T10", 1, 3_500_000, 0),
    ]
    series = spend_series(ledger, every="day", stack_by="org", since=NOV1,
                          until="2026-11-04")
    assert series.buckets == ("2026-11-01", "2026-11-02", "2026-11-03")
    assert [(ln.value, [p.cost_nanos for p in ln.points]) for ln in series.lines] == [
        ("acme", [10_500_000, 2_250_000, 0]),
        ("globex", [0, 0, 0]),
    ]
    assert [p.calls for p in series.lines[1].points] == [0, 1, 1]
    assert series.total.cost_nanos == spend(ledger, group_by=[], since=NOV1)[0].cost_nanos

    newest = calls(ledger, limit=2)
    assert [r.model for r in newest] == ["gpt-4o", "llama3"]  # Nov 3 08:00, Nov 2 12:00
    assert newest[0].status == "RateLimitError"
    acme = calls(ledger, filters={"org": "acme", "tag:env": "prod"}, since=NOV1)
    assert [(r.project, r.cost_nanos) for r in acme] == [("ads", 2_250_000),
                                                         ("search", 3_500_000)]

    run = [
        CallRecord(time=NOV1 + timedelta(days=9, seconds=s), kind=kind, trace_id="run-7",
                   provider="openai", model=model, usage=Usage(10 * s, s), cost_nanos=cost,
                   tool_server="time" if kind == "tool" else None)
        for s, kind, model, cost in ((2, "model", "gpt-4o", 40), (3, "tool", "get_time", None),
                                     (4, "model", "gpt-4o", 90))
    ]
    for row in reversed(run):  # written out of order: read back in time order
        ledger.record(row)
    got = trace(ledger, "run-7")
    assert [(r.kind, r.model, r.cost_nanos) for r in got] == [
        ("model", "gpt-4o", 40), ("tool", "get_time", None), ("model", "gpt-4o", 90)]
    assert [r.kind for r in trace(ledger, "run-7", around=run[0].time)] == [
        "model", "tool", "model"]
    assert trace(ledger, "run-7", around=NOV1) == []  # a day either side only
    assert trace(ledger, "no-such-trace") == []


# --------------------------------------------------------------------------- processes


def write_rows(target: str, worker: int, count: int) -> None:
    """Child process body: ``count`` records from one worker into one ledger."""
    ledger = open_ledger(target)
    for i in range(count):
        ledger.record(CallRecord(time=datetime.now(UTC), trace_id=f"w{worker}",
                                 request_id=f"w{worker}-{i}", provider="p", model="m",
                                 usage=Usage(10, 1), cost_nanos=7))
    ledger.close()


_CRASH_CHILD = r"""
import sys
from datetime import UTC, datetime
from tollway.core.stores.open import open_ledger
from tollway.core.cost.records import CallRecord

ledger = open_ledger(sys.argv[1])
i = 0
while True:
    ledger.record(CallRecord(time=datetime.now(UTC), trace_id="crash",
                             request_id=f"seq-{i}", provider="p", model="m"))
    print(i, flush=True)  # only after record() returned
    i += 1
"""


def record_until_killed(target: str, n: int) -> list[int]:
    """Run a child that records rows without pause and prints each sequence number once
    its ``record`` returned; SIGKILL it as soon as the n-th is printed. Returns every
    sequence number the child acknowledged before it died."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, target],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[int] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= n:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=30)
        acknowledged += [int(x) for x in proc.stdout.read().split()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    return acknowledged


def _connections(ledger: Any) -> Any:
    """What holds a ledger's connections in this process: SQLite's one connection, the
    PostgreSQL ledger's sync pool."""
    pools = getattr(ledger, "_pools", None)
    return ledger._conn if pools is None else pools._pool


def check_fork_safety(ledger: Any) -> None:
    """A forked child (gunicorn --preload, multiprocessing 'fork') gets its own
    connection on first use, and the parent's connection keeps working afterwards."""
    import gc
    import os

    ledger.record(full_row(request_id="parent-1"))
    connection = _connections(ledger)  # the parent's own must survive, not be replaced
    pid = os.fork()
    if pid == 0:  # child: write, then free what it inherited, as a normal exit would
        code = 1
        try:
            ledger.record(full_row(request_id="child-1"))
            connection = None
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ledger.record(full_row(request_id="parent-2"))
    assert _connections(ledger) is connection
    ids = [r.request_id for r in ledger.records()]
    assert sorted(ids) == ["child-1", "parent-1", "parent-2"]
