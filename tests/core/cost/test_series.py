"""Spend over time: zero-filled buckets, the ``other`` line, limits, and ``tollway spend
--every`` printing exactly the series the dashboard draws."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tollway.commands import spend as spend_command
from tollway.core.cost.records import CallRecord
from tollway.core.cost.series import MAX_BUCKETS, build_series
from tollway.core.cost.spend import SpendRow
from tollway.core.errors import ConfigError
from tollway.core.reports import spend, spend_series
from tollway.core.stores.sqlite_ledger import SQLiteLedger
from tollway.core.types import Usage

T0 = datetime(2026, 11, 5, 9, 15, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    for hours, org, cost in ((0, "acme", 100), (0, "globex", 50), (3, "acme", 7), (27, "initech", 1)):
        ledger.record(CallRecord(time=T0 + timedelta(hours=hours), trace_id="t", org=org,
                                 provider="openai", model="gpt-4o", usage=Usage(10, 2),
                                 cost_nanos=cost))
    return ledger


def test_hours_between_calls_are_zero_buckets_so_the_axis_is_time(ledger: SQLiteLedger) -> None:
    series = spend_series(ledger, every="hour", stack_by="org", since=T0 - timedelta(minutes=15),
                          until=T0 + timedelta(hours=3, minutes=45))  # 13:00, exclusive
    assert series.buckets == ("2026-11-05T09", "2026-11-05T10", "2026-11-05T11",
                              "2026-11-05T12")
    acme = series.lines[0]
    assert acme.value == "acme"
    assert [p.cost_nanos for p in acme.points] == [100, 0, 0, 7]
    assert [p.group for p in acme.points][1] == {"hour": "2026-11-05T10", "org": "acme"}
    assert [r.cost_nanos for r in series.bucket_totals()] == [150, 0, 0, 7]


def test_series_totals_equal_spend_for_the_same_range_and_filters(ledger: SQLiteLedger) -> None:
    series = spend_series(ledger, every="day", stack_by="org", since="2026-11-05",
                          filters={"org": ["acme", "initech"]})
    by_org = {r.group["org"]: r.cost_nanos for r in
              spend(ledger, group_by=["org"], since="2026-11-05", filters={"org": ["acme", "initech"]})}
    assert {ln.value: ln.total.cost_nanos for ln in series.lines} == by_org == {"acme": 107,
                                                                                "initech": 1}
    assert series.buckets[0] == "2026-11-05"


def test_values_beyond_top_merge_into_one_other_line(ledger: SQLiteLedger) -> None:
    series = spend_series(ledger, every="day", stack_by="org", top=1)
    assert [(ln.value, ln.other, ln.total.cost_nanos) for ln in series.lines] == [
        ("acme", False, 107), (None, True, 51)]
    assert series.total.cost_nanos == 158


def test_unstacked_series_has_one_line_and_no_calls_means_no_buckets(ledger: SQLiteLedger) -> None:
    series = spend_series(ledger, every="day")
    assert [ln.total.calls for ln in series.lines] == [4]
    empty = spend_series(ledger, every="day", since="2030-01-01", until="2030-01-03")
    assert empty.buckets == ("2030-01-01", "2030-01-02") and empty.lines == ()


def test_too_many_buckets_and_bad_arguments_are_config_errors(ledger: SQLiteLedger) -> None:
    with pytest.raises(ConfigError, match="too many") as info:
        spend_series(ledger, every="hour", since="2026-01-01", until="2026-12-01")
    assert info.value.key == "every" and str(MAX_BUCKETS) in str(info.value)
    with pytest.raises(ConfigError, match="not a time bucket"):
        spend_series(ledger, every="day", stack_by="hour")
    with pytest.raises(ConfigError, match="hour or day"):
        build_series([SpendRow({"month": "2026-11"})], bucket="month", stack_by=None)  # type: ignore[arg-type]


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    spend_command.configure(parser)
    assert spend_command.run(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


def test_cli_every_prints_the_series_rows_in_time_order(
    ledger: SQLiteLedger, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _cli(["--ledger", ledger.path, "--every", "hour", "--by", "org", "--format", "json"],
               capsys)
    rows = json.loads(out)
    assert [(r["hour"], r["org"], r["cost_nanos"]) for r in rows] == [
        ("2026-11-05T09", "acme", 100), ("2026-11-05T09", "globex", 50),
        ("2026-11-05T12", "acme", 7), ("2026-11-06T12", "initech", 1)]
    series = spend_series(ledger, every="hour", stack_by="org")
    assert [r.as_dict() for r in series.rows()] == rows
    table = _cli(["--ledger", ledger.path, "--every", "day"], capsys)
    assert re.findall(r"\b2026-11-\d\d\b", table) == ["2026-11-05", "2026-11-06"]


def test_cli_every_takes_at_most_one_by_key(ledger: SQLiteLedger) -> None:
    parser = argparse.ArgumentParser()
    spend_command.configure(parser)
    with pytest.raises(ConfigError, match="at most one"):
        spend_command.run(parser.parse_args(["--ledger", ledger.path, "--every", "day",
                                             "--by", "org,user"]))

