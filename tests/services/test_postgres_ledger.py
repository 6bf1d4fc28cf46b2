"""The PostgreSQL ledger against a real server (TOLLWAY_TEST_POSTGRES_URL; skipped when
unset). Each test works in its own schema, dropped afterwards."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.core.cost import ledger_cases as cases
from tollway.core.cost.records import CallRecord
from tollway.core.reports import spend
from tollway.core.stores.open import open_ledger

pytestmark = pytest.mark.services

URL = os.environ.get("TOLLWAY_TEST_POSTGRES_URL")
if not URL:
    pytest.skip("TOLLWAY_TEST_POSTGRES_URL is not set", allow_module_level=True)

psycopg = pytest.importorskip("psycopg")


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"tollway_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def target(schema: str) -> str:
    assert URL is not None
    return _with_schema(URL, schema)


def _row(i: int) -> CallRecord:
    return CallRecord(time=datetime.now(UTC), trace_id="t", request_id=f"r{i}",
                      provider="openai", model="gpt-4o", cost_nanos=i)


def test_schema_is_created_in_its_own_namespace_with_bigint_money(target: str,
                                                                  schema: str) -> None:
    open_ledger(target).close()
    open_ledger(target).close()  # second open: nothing to migrate
    with psycopg.connect(URL) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_version').fetchall()
        types = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'calls'", (schema,)
        ).fetchall())
    assert versions == [(1,), (2,), (3,)]  # each migration once
    assert types["cost_nanos"] == "bigint"
    assert types["output_image_tokens"] == "bigint"
    assert types["input_audio_tokens"] == "bigint"
    assert types["service_tier"] == "text"
    assert types["input_tokens"] == "bigint"
    assert types["time"] == "timestamp with time zone"
    assert types["tags"] == "jsonb"


def test_rows_round_trip_every_field_and_scrub_secrets(target: str) -> None:
    ledger = open_ledger(target)
    try:
        cases.check_round_trip(ledger)
    finally:
        ledger.close()


def test_spend_groups_filters_hours_calls_and_traces_like_sqlite(target: str) -> None:
    ledger = open_ledger(target)
    try:
        cases.populate_spend(ledger)
        cases.check_spend(ledger)
        # and through a URL string, as the CLI does
        rows = spend(target, group_by=["model"], since="2026-11-01")
        assert [r.group["model"] for r in rows] == ["gpt-4o", "claude-sonnet-4-5", "llama3"]
        cases.check_over_time(ledger)
    finally:
        ledger.close()


async def test_arecord_uses_an_async_connection_per_loop(target: str) -> None:
    ledger = open_ledger(target)
    try:
        await asyncio.gather(*(ledger.arecord(_row(i)) for i in range(30)))
        assert sorted(r.cost_nanos or 0 for r in ledger.records()) == list(range(30))
    finally:
        await ledger.aclose()  # type: ignore[attr-defined]


def test_arecord_works_again_on_a_new_event_loop(target: str) -> None:
    ledger = open_ledger(target)
    try:
        asyncio.run(ledger.arecord(_row(1)))
        asyncio.run(ledger.arecord(_row(2)))
        assert ledger.count() == 2  # type: ignore[attr-defined]
    finally:
        ledger.close()


def test_processes_writing_concurrently_lose_nothing(target: str) -> None:
    open_ledger(target).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=cases.write_rows, args=(target, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * 4
    ledger = open_ledger(target)
    try:
        assert len({r.request_id for r in ledger.records()}) == 100
    finally:
        ledger.close()


def test_rows_recorded_before_a_sigkill_survive(target: str) -> None:
    open_ledger(target).close()
    acknowledged = cases.record_until_killed(target, 20)
    assert len(acknowledged) >= 20
    ledger = open_ledger(target)
    try:
        stored = {r.request_id for r in ledger.records()}
    finally:
        ledger.close()
    assert {f"seq-{i}" for i in acknowledged} <= stored


def test_a_forked_child_does_not_break_the_parents_connection(target: str) -> None:
    ledger = open_ledger(target)
    try:
        cases.check_fork_safety(ledger)
    finally:
        ledger.close()
