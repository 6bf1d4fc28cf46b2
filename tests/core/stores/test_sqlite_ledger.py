"""The SQLite ledger: every field stored, schema migrations, many writers, crashes."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.core.cost import ledger_cases as cases
from tollway.core.cost.ledger import Ledger
from tollway.core.cost.records import CallRecord
from tollway.core.errors import ConfigError
from tollway.core.stores.open import default_ledger_path, open_ledger
from tollway.core.stores.sqlite_ledger import SCHEMA_VERSION, SQLiteLedger


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def _row(i: int = 0) -> CallRecord:
    return CallRecord(time=datetime.now(UTC), trace_id="t", request_id=f"r{i}",
                      provider="openai", model="gpt-4o", cost_nanos=i)


def test_every_call_record_field_has_a_ledger_column() -> None:
    cases.every_field_has_a_column()


def test_rows_round_trip_every_field_and_scrub_secrets(db: Path) -> None:
    with SQLiteLedger(db) as ledger:
        cases.check_round_trip(ledger)
    raw = db.read_bytes() + (db.with_name(db.name + "-wal").read_bytes()
                             if db.with_name(db.name + "-wal").exists() else b"")
    assert cases.SECRET.encode() not in raw


def test_usage_is_stored_in_integer_columns_and_money_as_integer_nanos(db: Path) -> None:
    with SQLiteLedger(db) as ledger:
        ledger.record(cases.full_row())
    conn = sqlite3.connect(db)
    row = conn.execute(
        "SELECT typeof(cost_nanos), cost_nanos, typeof(input_tokens), input_tokens, "
        "cache_write_1h_tokens, json_extract(tags, '$.env') FROM calls"
    ).fetchone()
    conn.close()
    assert row == ("integer", 4_567_891, "integer", 1200, 40, "prod")


def test_empty_fields_are_stored_as_sql_null_and_read_back(db: Path) -> None:
    """Rows with and without their optional fields, in any order (the store writes
    NULL values as literals, one statement per pattern of empty fields)."""
    bare = CallRecord(time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), trace_id="t",
                      provider="openai", model="gpt-4o")
    with SQLiteLedger(db) as ledger:
        ledger.record(bare)
        ledger.record(cases.full_row())
        ledger.record(_row(7))
        ledger.record(bare)
        rows = ledger.records()
    assert [r.request_id for r in rows] == [None, "chatcmpl-1", "r7", None]
    assert rows[0] == bare and rows[3] == bare
    assert rows[1].org == "acme" and rows[2].cost_nanos == 7
    conn = sqlite3.connect(db)
    nulls = conn.execute(
        "SELECT typeof(request_id), typeof(cost_nanos), typeof(ttft_ms), typeof(tags), "
        "typeof(service_tier), typeof(input_image_tokens) FROM calls ORDER BY id LIMIT 1"
    ).fetchone()
    conn.close()
    assert nulls == ("null", "null", "null", "null", "null", "integer")


def test_stored_time_text_is_the_utc_isoformat_in_every_case() -> None:
    """format_time reuses the text of the current second: it must still give exactly
    the isoformat of the UTC value (naive as UTC, other offsets converted, one second
    then the next, microsecond 0, years below 1000)."""
    from datetime import timedelta, timezone

    from tollway.core.cost.ledger import format_time

    def reference(value: datetime) -> str:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    start = datetime(2026, 12, 31, 23, 59, 58, 999_999, tzinfo=UTC)
    values = [start + timedelta(microseconds=step) for step in (0, 1, 2, 500_000, 1_000_001)]
    values += [start.replace(microsecond=0), start.replace(tzinfo=None),
               start.astimezone(timezone(timedelta(hours=-5))),
               start.astimezone(timezone(timedelta(hours=5, minutes=30))),
               datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
    for value in values + values[::-1]:
        assert format_time(value) == reference(value), value


def test_schema_is_created_once_and_versioned(db: Path) -> None:
    SQLiteLedger(db).close()
    SQLiteLedger(db).close()
    conn = sqlite3.connect(db)
    versions = conn.execute("SELECT version FROM schema_version").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each migration once
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_version_1_ledger_is_upgraded_and_its_rows_stay_readable(db: Path) -> None:
    from tollway.core.cost.ledger import FIRST_COLUMNS
    from tollway.core.stores.sqlite_ledger import MIGRATIONS
    from tollway.core.types import Usage

    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    names = [c.name for c in FIRST_COLUMNS]
    assert "input_image_tokens" not in names
    old = {"time": "2026-01-01T00:00:00.000000+00:00", "kind": "model", "trace_id": "old",
           "provider": "openai", "model": "gpt-4o", "input_tokens": 5, "output_tokens": 1,
           "cache_read_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0,
           "reasoning_tokens": 0, "requests": 1, "latency_ms": 1.0, "status": "ok", "stream": 0}
    conn.execute(f"INSERT INTO calls ({', '.join(old)}) VALUES ({', '.join('?' for _ in old)})",
                 list(old.values()))
    conn.commit()
    conn.close()
    with SQLiteLedger(db) as ledger:
        ledger.record(CallRecord(time=datetime.now(UTC), kind="image", trace_id="new",
                                 provider="openai", model="gpt-image-1",
                                 usage=Usage(input_tokens=10, output_tokens=272,
                                             output_image_tokens=272)))
        before, after = ledger.records()
    assert (before.trace_id, before.usage.input_tokens, before.usage.output_image_tokens) == (
        "old", 5, 0)
    assert (before.usage.input_audio_tokens, before.usage.service_tier) == (0, None)
    assert (after.kind, after.usage.output_image_tokens) == ("image", 272)


def test_an_existing_empty_database_file_is_migrated(db: Path) -> None:
    sqlite3.connect(db).execute("CREATE TABLE other (x)").connection.close()
    with SQLiteLedger(db) as ledger:
        ledger.record(_row())
        assert ledger.count() == 1


def test_spend_groups_and_filters(db: Path) -> None:
    with SQLiteLedger(db) as ledger:
        cases.populate_spend(ledger)
        cases.check_spend(ledger)


def test_spend_over_time_latest_calls_and_one_trace(db: Path) -> None:
    with SQLiteLedger(db) as ledger:
        cases.populate_spend(ledger)
        cases.check_over_time(ledger)


def test_memory_ledger_is_shared_by_threads() -> None:
    ledger = open_ledger("memory")
    assert isinstance(ledger, SQLiteLedger) and ledger.path == ":memory:"

    def work(base: int) -> None:
        for i in range(100):
            ledger.record(_row(base + i))

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.count() == 400
    cases.populate_spend(ledger)
    assert len(ledger.records()) == 400 + len(cases.SPEND_ROWS)
    ledger.close()


async def test_arecord_writes_rows_from_concurrent_tasks(db: Path) -> None:
    with SQLiteLedger(db) as ledger:
        await asyncio.gather(*(ledger.arecord(_row(i)) for i in range(50)))
        assert sorted(r.cost_nanos or 0 for r in ledger.records()) == list(range(50))


def test_a_locked_database_is_waited_for_never_reported_to_the_caller(db: Path) -> None:
    ledger = SQLiteLedger(db, busy_timeout=0.01)  # SQLite gives up fast; we retry
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO calls (time, kind, trace_id, provider, model, input_tokens, "
                   "output_tokens, cache_read_tokens, cache_write_tokens, "
                   "cache_write_1h_tokens, reasoning_tokens, requests, latency_ms, status, "
                   "stream) VALUES ('2026-01-01', 'model', 'x', 'p', 'm', 0,0,0,0,0,0,1,0,'ok',0)")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    ledger.record(_row(1))
    waited = time.monotonic() - started
    release.join()
    holder.close()
    assert waited >= 0.3  # it really waited for the other writer
    assert ledger.count() == 2
    ledger.close()


def test_eight_processes_writing_one_file_lose_nothing(db: Path) -> None:
    SQLiteLedger(db).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=cases.write_rows, args=(str(db), w, 200)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * 8
    with SQLiteLedger(db) as ledger:
        records = ledger.records()
        assert len(records) == 1600
        assert len({r.request_id for r in records}) == 1600
        totals = cases.spend(ledger, group_by=["model"])
        assert (totals[0].calls, totals[0].cost_nanos, totals[0].input_tokens) == (
            1600, 1600 * 7, 16_000
        )


def test_rows_recorded_before_a_sigkill_survive(db: Path) -> None:
    SQLiteLedger(db).close()
    acknowledged = cases.record_until_killed(str(db), 40)
    assert len(acknowledged) >= 40
    with SQLiteLedger(db) as ledger:
        stored = {r.request_id for r in ledger.records()}
    assert {f"seq-{i}" for i in acknowledged} <= stored


# --------------------------------------------------------------------------- targets


def test_open_ledger_picks_the_store_from_the_target(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_ledger("sqlite:///rel.db")
    absolute = open_ledger(f"sqlite:///{tmp_path}/abs.db")
    plain = open_ledger(str(tmp_path / "plain.db"))
    full = open_ledger(f"sqlite:///{tmp_path}/full.db?synchronous=full")
    try:
        assert Path(relative.path) == Path("rel.db")  # type: ignore[attr-defined]
        assert Path(absolute.path) == tmp_path / "abs.db"  # type: ignore[attr-defined]
        assert Path(plain.path) == tmp_path / "plain.db"  # type: ignore[attr-defined]
        assert full.synchronous == "full"  # type: ignore[attr-defined]
        assert isinstance(full, Ledger)
        assert open_ledger(full) is full
    finally:
        for ledger in (relative, absolute, plain, full):
            ledger.close()
    assert (tmp_path / "rel.db").exists() and (tmp_path / "abs.db").exists()


@pytest.mark.parametrize(
    "target", ["sqlite:///x.db?synchronus=full", "sqlite:///x.db?synchronous=sometimes",
               "mysql://host/db"],
)
def test_bad_ledger_targets_raise_config_error(tmp_path: Path, target: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        open_ledger(target)


def test_default_ledger_path_follows_env_then_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOLLWAY_LEDGER", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_ledger_path() == tmp_path / "home" / ".local/share/tollway/ledger.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_ledger_path() == tmp_path / "xdg" / "tollway" / "ledger.db"
    monkeypatch.setenv("TOLLWAY_LEDGER", str(tmp_path / "mine.db"))
    assert default_ledger_path() == tmp_path / "mine.db"
    ledger = open_ledger(None)
    ledger.record(_row())
    ledger.close()
    assert (tmp_path / "mine.db").exists()


def test_a_forked_child_writes_on_its_own_connection(db: Path) -> None:
    with SQLiteLedger(db) as ledger:
        cases.check_fork_safety(ledger)


def test_shared_ledger_returns_one_ledger_per_target(db: Path) -> None:
    from tollway.core.stores.open import shared_ledger

    first = shared_ledger(str(db))
    assert shared_ledger(str(db)) is first
    assert shared_ledger(str(db.with_name("other.db"))) is not first
    first.record(_row())
    assert first.count() == 1  # type: ignore[attr-defined]
