"""spend(): query validation, and the ``tollway spend`` command's json / csv / table."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.core.cost import ledger_cases as cases
from tollway.commands import spend as spend_command
from tollway.core.cost.spend import SpendQuery, SpendRow, parse_time
from tollway.core.errors import ConfigError
from tollway.core.reports import spend
from tollway.core.stores.sqlite_ledger import SQLiteLedger


@pytest.fixture
def ledger_path(tmp_path: Path) -> str:
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as ledger:
        cases.populate_spend(ledger)
    return str(path)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    spend_command.configure(parser)
    code = spend_command.run(parser.parse_args(argv))
    return code, capsys.readouterr().out


def test_spend_accepts_a_target_string_and_closes_what_it_opened(ledger_path: str) -> None:
    rows = spend(ledger_path, group_by="model", since=date(2026, 11, 1))
    assert [r.group["model"] for r in rows] == ["gpt-4o", "claude-sonnet-4-5", "llama3"]


def test_spend_row_cost_is_an_exact_decimal() -> None:
    row = SpendRow({"model": "m"}, calls=3, cost_nanos=1_234_567_891)
    assert row.cost == Decimal("1.234567891")
    assert row.as_dict()["cost"] == "1.234567891"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"group_by": ["model", "colour"]}, "group_by"),
        ({"group_by": ["tag:bad name"]}, "group_by"),
        ({"group_by": ["model", "model"]}, "group_by"),
        ({"filters": {"nope": "x"}}, "filters"),
        ({"filters": {"org": []}}, "filters"),
        ({"since": "last tuesday"}, "since"),
    ],
)
def test_bad_queries_raise_config_error_naming_the_argument(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SpendQuery.build(**kwargs)
    assert info.value.key == key


def test_times_parse_dates_iso_and_relative_forms_as_utc() -> None:
    assert parse_time("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_time("2026-11-01T08:00:00+02:00") == datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert parse_time("2026-11-01T08:00:00Z") == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert parse_time(datetime(2026, 11, 1, 8)) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    week_ago = parse_time("7d")
    assert week_ago is not None
    assert abs(datetime.now(UTC) - timedelta(days=7) - week_ago) < timedelta(seconds=5)


def test_cli_json_output_lists_groups_metrics_and_exact_cost(
    ledger_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(["--ledger", ledger_path, "--by", "org,project", "--since", "2026-11-01",
                      "--format", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data[0] == {
        "org": "acme", "project": "search", "calls": 2, "input_tokens": 3000,
        "output_tokens": 300, "cache_read_tokens": 200, "cache_write_tokens": 0,
        "reasoning_tokens": 30, "cost_nanos": 10_500_000, "unpriced_calls": 0,
        "cost": "0.0105",
    }
    assert [(d["org"], d["project"], d["unpriced_calls"]) for d in data] == [
        ("acme", "search", 0), ("acme", "ads", 0), ("globex", None, 1)
    ]


def test_cli_csv_output_with_filters_and_until(
    ledger_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(["--ledger", ledger_path, "--by", "day,tag:env", "--format", "csv",
                      "--filter", "org=acme", "--until", "2026-11-02"], capsys)
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["day", "tag:env", "calls", "input_tokens", "output_tokens",
                       "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
                       "cost_nanos", "unpriced_calls", "cost"]
    assert [(r[0], r[1], r[2], r[8], r[10]) for r in rows[1:]] == [
        ("2026-11-01", "dev", "1", "7000000", "0.007"),
        ("2026-11-01", "prod", "1", "3500000", "0.0035"),
        ("2026-10-31", "prod", "1", "1000000", "0.001"),
    ]


def test_cli_filter_dash_matches_unset_values(
    ledger_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _run(["--ledger", ledger_path, "--by", "model", "--filter", "project=-",
                   "--format", "json"], capsys)
    assert [(d["model"], d["calls"]) for d in json.loads(out)] == [("gpt-4o", 1), ("llama3", 1)]


def test_cli_table_shows_rows_and_a_total(
    ledger_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(["--ledger", ledger_path, "--by", "model"], capsys)
    assert code == 0
    assert "gpt-4o" in out and "claude-sonnet-4-5" in out and "llama3" in out
    assert "0.011500" in out  # gpt-4o: 3.5 + 7 + 1 (Oct 31) + 0 milli-USD
    assert "total" in out and "0.013750" in out


def test_plain_table_fallback_aligns_columns_with_a_total() -> None:
    out = io.StringIO()
    spend_command._plain_table(
        ["model", "calls"], [["gpt-4o", "3"], ["llama3", "12"]], ["total", "15"], {1}, out
    )
    assert out.getvalue().splitlines() == [
        "model   calls", "------  -----", "gpt-4o      3", "llama3     12", "------  -----",
        "total      15",
    ]


def test_cli_rejects_a_malformed_filter(ledger_path: str) -> None:
    parser = argparse.ArgumentParser()
    spend_command.configure(parser)
    with pytest.raises(ConfigError):
        spend_command.run(parser.parse_args(["--ledger", ledger_path, "--filter", "orgacme"]))


def test_tool_rows_and_failures_count_as_calls_but_never_as_unpriced() -> None:
    from datetime import datetime

    from tollway.core.cost.records import CallRecord
    from tollway.core.stores.open import open_ledger

    ledger = open_ledger("memory")
    now = datetime.now(UTC)
    ledger.record(CallRecord(time=now, kind="tool", tool_server="time", tool_name="now"))
    ledger.record(CallRecord(time=now, model="m", status="TimeoutError"))
    ledger.record(CallRecord(time=now, model="m"))  # ok, price unknown
    rows = spend(ledger, group_by=["kind", "status"])
    assert sorted((*r.group.values(), r.calls, r.unpriced_calls) for r in rows) == [
        ("model", "TimeoutError", 1, 0), ("model", "ok", 1, 1), ("tool", "ok", 1, 0),
    ]
    ledger.close()
