"""The end of a paid call (``core/effects.py`` SettleAndWrite): once the provider has
answered, the caller gets the answer and the ledger has its row, whatever the budget
store does; a store that fails then leaves its hold to expire with a
BudgetSettleWarning. Real stores that really fail: a SQLite budget file whose write lock
another connection holds while the provider answers, a Redis server stopped mid-call.
Both drivers, non-streamed and streamed calls.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Driver
from tests.core.cost.budgets import support
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Received, Reply
from tollway import errors
from tollway.core.cost.budgets import Budgets
from tollway.core.model import Model
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore
from tollway.core.stores.sqlite_ledger import SQLiteLedger
from tollway.core.types import Usage

USAGE = Usage(input_tokens=10, output_tokens=5)
CALL_NANOS = 5_000  # support.PRICE: output $1 per million, input free
TTL = 30.0


def _model(fake: FakeProvider, store: Any, ledger: SQLiteLedger) -> tuple[Model, Budgets]:
    guard = Budgets([support.usd_budget("1")], store=store, prices=support.pricebook(),
                    reservation_ttl=TTL)
    model = Model(support.MODEL, api_key=support.KEY, api_base=fake.url, guards=[guard],
                  ledger=ledger, prices=support.pricebook(), config=False)
    return model, guard


def _call(driver: Driver, model: Model, streamed: bool) -> Any:
    if streamed:
        return driver.stream_collect(model, "hi", max_tokens=5).response
    return driver.complete(model, "hi", max_tokens=5)


def _reply(streamed: bool) -> Reply:
    return oai.text_stream(["o", "k"], usage=USAGE) if streamed else oai.text_reply("ok", usage=USAGE)


def _answer_after(action: Callable[[], None], reply: Reply) -> Callable[[Received], Reply]:
    """The fake's answer: run ``action`` (break the store) while the call is in flight."""
    def answer(received: Received) -> Reply:
        action()
        return reply
    return answer


def _settle_warnings(caught: list[warnings.WarningMessage]) -> list[errors.BudgetSettleWarning]:
    return [w.message for w in caught if isinstance(w.message, errors.BudgetSettleWarning)]


# --------------------------------------------------------------------------- SQLite


class _WriteLock:
    """Another connection holding the write lock of a SQLite file (what a long writer in
    another process does), released by :meth:`release` or after ``for_seconds``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.timer: threading.Timer | None = None

    def take(self, for_seconds: float | None = None) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        self.conn = conn
        if for_seconds is not None:
            self.timer = threading.Timer(for_seconds, self.release)
            self.timer.start()

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.execute("ROLLBACK")
            conn.close()

    def __enter__(self) -> _WriteLock:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()
        self.release()


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_a_budget_file_locked_on_settle_keeps_the_settle_in_the_spool_until_it_is_free(
    fake: FakeProvider, driver: Driver, tmp_path: Path, streamed: bool,
) -> None:
    """Another process holds the budget file's write lock (past the store's busy
    timeout) while the provider answers: the settle is one write to the spool, so the
    caller gets the answer with no warning, the row is in the ledger, and the spend
    lands in the counter once the file is free."""
    store = SQLiteBudgetStore(tmp_path / "budgets.db", busy_timeout=0.2)
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    model, _ = _model(fake, store, ledger)
    with _WriteLock(tmp_path / "budgets.db") as lock:
        fake.default = _answer_after(lock.take, _reply(streamed))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            response = _call(driver, model, streamed)
    assert response.text == "ok" and response.cost_nanos == CALL_NANOS
    assert len(fake.requests) == 1
    (row,) = ledger.records()
    assert (row.status, row.cost_nanos, row.trace_id) == ("ok", CALL_NANOS, response.trace_id)
    assert _settle_warnings(caught) == []
    (counter,) = store.counters(time.time())
    assert (counter.spent, counter.reserved) == (CALL_NANOS, 0)
    assert counter.released_total + counter.spent == counter.reserved_total


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_sharing_the_ledger_file_a_locked_file_delays_settle_and_row_together(
    fake: FakeProvider, driver: Driver, tmp_path: Path, streamed: bool,
) -> None:
    """Budgets in the ledger's file: settle and row are one spool record. The lock held
    past the busy timeout delays both, loses neither: a read after it is free sees the
    row, and the counter its spend."""
    db = tmp_path / "tollway.db"
    ledger = SQLiteLedger(db)
    store = SQLiteBudgetStore(db, busy_timeout=0.2)
    assert store.shares_database(ledger)
    model, _ = _model(fake, store, ledger)
    with _WriteLock(db) as lock:
        fake.default = _answer_after(lock.take, _reply(streamed))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            response = _call(driver, model, streamed)
        assert _plain_count(db) == 0  # nothing could be written to the table yet
    assert response.text == "ok" and len(fake.requests) == 1
    assert _settle_warnings(caught) == []
    (row,) = ledger.records()
    assert (row.status, row.cost_nanos, row.trace_id) == ("ok", CALL_NANOS, response.trace_id)
    (counter,) = store.counters(time.time())
    assert (counter.spent, counter.reserved) == (CALL_NANOS, 0)


def _plain_count(db: Path) -> int:
    """Rows in the calls table as a plain SQLite reader sees them (no spool applied)."""
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute('SELECT COUNT(*) FROM "calls"').fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_a_spool_that_cannot_be_written_and_a_locked_file_still_write_the_row(
    fake: FakeProvider, driver: Driver, tmp_path: Path, streamed: bool,
) -> None:
    """The worst case: the spool file fails (its descriptor turned read-only: writes
    fail as on a full disk) and the file is locked past the busy timeout, so the settle cannot
    be made at all. The caller still gets the answer, the ledger gets the row alone once
    it gets the file, a BudgetSettleWarning says so, and the hold is left to expire."""
    db = tmp_path / "tollway.db"
    ledger = SQLiteLedger(db)
    store = SQLiteBudgetStore(db, busy_timeout=0.2)
    model, guard = _model(fake, store, ledger)
    fake.default = _reply(streamed)
    _call(driver, model, streamed)  # the spool exists

    with _WriteLock(db) as lock:
        def break_both() -> None:
            assert store._side is not None  # the spool's descriptor, now read-only
            spool = store._side.file
            read_only = os.open(spool.path, os.O_RDONLY)
            os.dup2(read_only, spool.fd)
            os.close(read_only)
            lock.take(for_seconds=1.5)

        fake.default = _answer_after(break_both, _reply(streamed))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            response = _call(driver, model, streamed)
    assert response.text == "ok" and len(fake.requests) == 2
    (warning,) = _settle_warnings(caught)
    assert warning.trace_id == response.trace_id and "locked" in warning.error
    assert warning.budgets == (guard._rules[0].id,)
    rows = ledger.records()
    assert len(rows) == 2 and response.trace_id in {r.trace_id for r in rows}
    (counter,) = store.counters(time.time())
    assert counter.spent == CALL_NANOS and counter.reserved > 0  # left to expire
    (counter,) = store.counters(time.time() + TTL + 1)
    assert counter.reserved == 0


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_sharing_the_ledger_file_calls_from_a_lease_commit_nothing_on_the_callers_thread(
    fake: FakeProvider, driver: Driver, tmp_path: Path, streamed: bool,
) -> None:
    """After the first call's lease, a call's reserve, settle and row are two spool
    writes: no transaction on the calling thread (the flusher applies them in batches),
    and the books are exact."""
    db = tmp_path / "tollway.db"
    ledger = SQLiteLedger(db)
    store = SQLiteBudgetStore(db)
    model, _ = _model(fake, store, ledger)
    fake.default = _reply(streamed)
    _call(driver, model, streamed)  # schema, first counter, the lease
    statements: list[str] = []
    for wait in (True, False):
        store._conn(wait=wait).connection.set_trace_callback(statements.append)
    responses = [_call(driver, model, streamed) for _ in range(20)]
    assert [s for s in statements if s.strip().upper() in ("BEGIN IMMEDIATE", "COMMIT")] == []
    rows = ledger.records()
    assert [r.status for r in rows] == ["ok"] * 21
    assert [r.trace_id for r in rows[1:]] == [r.trace_id for r in responses]
    (counter,) = store.counters(time.time())
    assert (counter.spent, counter.reserved) == (21 * CALL_NANOS, 0)
    assert counter.spent + counter.released_total == counter.reserved_total


def test_sharing_the_ledger_file_soft_thresholds_still_see_the_spent_counter(
    fake: FakeProvider, driver: Driver, tmp_path: Path,
) -> None:
    """The joint settle skips reading the counter back when no budget has a soft
    threshold; one that has gets the spent it needs: its event fires exactly once, on
    the settle that crosses it, and every counter's books close."""
    from tollway.core.cost.policy import SoftLimitEvent

    db = tmp_path / "tollway.db"
    ledger = SQLiteLedger(db)
    store = SQLiteBudgetStore(db)
    events: list[SoftLimitEvent] = []
    soft = support.usd_budget("0.00002", name="soft", soft_threshold=0.5,
                              on_soft_limit=events.append)
    guard = Budgets([soft, support.usd_budget("1", name="plain")], store=store,
                    prices=support.pricebook())
    model = Model(support.MODEL, api_key=support.KEY, api_base=fake.url, guards=[guard],
                  ledger=ledger, prices=support.pricebook(), config=False)
    fake.default = _reply(False)
    _call(driver, model, False)
    assert events == []
    _call(driver, model, False)  # 10,000 of 20,000 nano-USD: crosses 50%
    _call(driver, model, False)
    assert [e.budget for e in events] == ["soft"] and events[0].spent == 0.00001
    assert len(ledger.records()) == 3
    for counter in store.counters(time.time()):
        assert (counter.spent, counter.reserved) == (3 * CALL_NANOS, 0), counter.budget
        assert counter.reserved_total == (
            counter.spent - counter.overrun_total + counter.released_total + counter.reserved
        )

    plain = Budgets([support.usd_budget("1", name="plain2")], store=store,
                    prices=support.pricebook())
    assert not plain._soft  # this guard's joint settle does not read spent back
    quiet = Model(support.MODEL, api_key=support.KEY, api_base=fake.url, guards=[plain],
                  ledger=ledger, prices=support.pricebook(), config=False)
    _call(driver, quiet, False)
    (row,) = [r for r in plain.status() if r.budget == "plain2"]
    assert (row.spent, row.reserved) == (Decimal(CALL_NANOS) / 10**9, 0)
    assert len(ledger.records()) == 4


def test_by_default_the_sqlite_budget_store_lives_in_the_ledger_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tollway.core.stores.open import open_budget_store, shared_ledger

    monkeypatch.delenv("TOLLWAY_BUDGETS_DB", raising=False)
    monkeypatch.setenv("TOLLWAY_LEDGER", str(tmp_path / "default.db"))
    store = open_budget_store({"backend": "sqlite"})
    assert isinstance(store, SQLiteBudgetStore) and store.shares_database(shared_ledger(None))
    configured = open_budget_store(None, ledger=f"sqlite:///{tmp_path / 'mine.db'}")
    assert configured.shares_database(SQLiteLedger(tmp_path / "mine.db"))  # type: ignore[attr-defined]
    assert not configured.shares_database(SQLiteLedger(tmp_path / "other.db"))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- Redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RedisServer:
    """A throwaway redis-server on a free loopback port, stopped by the test."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[_RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    pytest.importorskip("redis")
    server = _RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _redis_store(url: str) -> Any:
    from tollway.core.stores.redis_budgets import RedisBudgetStore

    return RedisBudgetStore(url)


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
def test_a_redis_store_stopped_mid_call_still_returns_the_answer_and_its_row(
    fake: FakeProvider, driver: Driver, tmp_path: Path, redis_server: _RedisServer,
    streamed: bool,
) -> None:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    model, _ = _model(fake, _redis_store(redis_server.url), ledger)
    fake.default = _answer_after(redis_server.stop, _reply(streamed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = _call(driver, model, streamed)
    assert response.text == "ok" and response.cost_nanos == CALL_NANOS
    assert len(fake.requests) == 1
    (row,) = ledger.records()
    assert (row.status, row.cost_nanos) == ("ok", CALL_NANOS)
    (warning,) = _settle_warnings(caught)
    assert warning.trace_id == response.trace_id and "Connection" in warning.error


def test_a_redis_store_stopped_mid_call_on_a_failing_call_raises_the_provider_error(
    fake: FakeProvider, driver: Driver, tmp_path: Path, redis_server: _RedisServer,
) -> None:
    """Release on failure: the caller sees the provider's error, never the store's."""
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    model, _ = _model(fake, _redis_store(redis_server.url), ledger)
    fake.default = _answer_after(redis_server.stop, oai.error_reply(400, "bad request"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(errors.BadRequestError):
            driver.complete(model, "hi", max_tokens=5)
    (row,) = ledger.records()
    assert row.status == "BadRequestError"
    assert len(_settle_warnings(caught)) == 1


def test_a_redis_store_down_before_the_call_is_a_typed_error_with_a_row(
    fake: FakeProvider, driver: Driver, tmp_path: Path, redis_server: _RedisServer,
) -> None:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    model, _ = _model(fake, _redis_store(redis_server.url), ledger)
    redis_server.stop()
    with pytest.raises(errors.StoreUnavailableError) as caught:
        driver.complete(model, "hi", max_tokens=5)
    assert caught.value.operation == "reserve" and "RedisBudgetStore" in str(caught.value)
    assert fake.requests == []  # the provider was never called
    (row,) = ledger.records()
    assert row.status == "StoreUnavailableError"


@pytest.mark.parametrize("telemetry", [False, True], ids=["plain", "telemetry"])
def test_a_stream_opened_and_closed_unread_is_recorded_and_frees_its_hold(
    fake: FakeProvider, driver: Driver, tmp_path: Path, telemetry: bool,
    request: pytest.FixtureRequest,
) -> None:
    """``with model.stream(...): pass`` sent the request (the provider is generating):
    the attempt is a ``cancelled`` row and the budget is not left reserved."""
    if telemetry:
        request.getfixturevalue("otel")  # the SDK's in-memory exporter, telemetry on
    db = tmp_path / "tollway.db"
    ledger = SQLiteLedger(db)
    store = SQLiteBudgetStore(db)
    model, _ = _model(fake, store, ledger)
    fake.default = oai.text_stream(["o"] * 50, usage=USAGE)

    if driver.is_async:
        import asyncio

        async def open_and_leave() -> None:
            async with model.astream("hi", max_tokens=5):
                pass

        asyncio.run(open_and_leave())
    else:
        with model.stream("hi", max_tokens=5):
            pass

    assert len(fake.requests) == 1
    [row] = ledger.records()
    assert (row.status, row.stream) == ("cancelled", True)
    (counter,) = store.counters(time.time())
    assert counter.reserved == 0
