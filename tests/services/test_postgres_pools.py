"""PostgreSQL under more concurrent calls than the server has connections.

A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temporary directory, on a
free port, ``max_connections=100``: the shared test server is used by other suites at
the same time, so its free connections are not ours to count) serves the ledger and a
USD budget store. Four processes make 100 concurrent calls each against the loopback
fake provider (two with 100 threads on the sync driver, two with 100 tasks on the async
driver). Every call ends either ok with a ledger row or with a typed tollway error with
a ledger row; none sees a raw psycopg error; the budget never overshoots.

Runs when TOLLWAY_TEST_POSTGRES_URL is set (the service tests' switch) and PostgreSQL's
server binaries are installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Reply
from tollway.core.types import Usage

PROCESSES = 4
CONCURRENT = 100
ROOM_CALLS = 150
CALL_NANOS = 5_000  # support.PRICE: 5 output tokens at $1 per million, input free
LIMIT_USD = f"{ROOM_CALLS * CALL_NANOS / 1e9:.9f}"

CHILD = r"""
import asyncio, json, sys, threading
import tollway
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.policy import BudgetPolicy
from tollway.core.cost.pricing import PriceBook
from tollway.core.stores.postgres_budgets import PostgresBudgetStore

url, fake, mode, n, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
book = PriceBook({"openai/gpt-4o-mini": {"input": 0, "output": 1}})
guard = Budgets([BudgetPolicy(name="shared", limit=limit, period="day")],
                store=PostgresBudgetStore(url, schema="budgets"), prices=book)
model = tollway.Model("openai/gpt-4o-mini", api_key="sk-test-budget-key-0123456789",
                      api_base=fake, guards=[guard], ledger=url + "?schema=ledger",
                      prices=book, config=False)
outcomes = []

def outcome(exc):
    if exc is None:
        return "ok"
    kind = "typed" if isinstance(exc, tollway.TollwayError) else "RAW"
    return f"{kind}:{type(exc).__name__}"

if mode == "sync":
    barrier = threading.Barrier(n)
    lock = threading.Lock()
    def work():
        barrier.wait()
        try:
            model.complete("hi", max_tokens=5)
            result = outcome(None)
        except BaseException as exc:
            result = outcome(exc)
        with lock:
            outcomes.append(result)
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
else:
    async def one():
        try:
            await model.acomplete("hi", max_tokens=5)
            return outcome(None)
        except BaseException as exc:
            return outcome(exc)
    async def main():
        return await asyncio.gather(*(one() for _ in range(n)))
    outcomes = asyncio.run(main())
print(json.dumps(outcomes))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> list[str]:
    """Run a server binary as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return list(cmd)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    if not os.environ.get("TOLLWAY_TEST_POSTGRES_URL"):
        pytest.skip("TOLLWAY_TEST_POSTGRES_URL is not set")
    pytest.importorskip("psycopg_pool")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's initdb / pg_ctl are not installed")
    work = Path(tempfile.mkdtemp(prefix="tollway-pg-"))
    data = work / "data"
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    port = _free_port()
    subprocess.run(_as_postgres(initdb, "-D", str(data), "-A", "trust", "-U", "postgres"),
                   check=True, capture_output=True)
    options = (f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c max_connections=100 "
               "-c shared_buffers=16MB -c fsync=off")
    subprocess.run(_as_postgres(pg_ctl, "-D", str(data), "-o", options, "-l",
                                str(work / "log"), "-w", "start"),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(pg_ctl, "-D", str(data), "-m", "immediate", "stop"),
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def test_four_processes_of_100_concurrent_calls_on_100_connections_no_raw_error_no_overshoot(
    cluster: str,
) -> None:
    import psycopg

    with psycopg.connect(cluster) as conn:
        assert conn.execute("SHOW max_connections").fetchone() == ("100",)
    with FakeProvider() as fake:
        usage = Usage(input_tokens=3, output_tokens=5)
        fake.default = Reply(**{**oai.text_reply("ok", usage=usage).__dict__, "hang": 0.02})
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2] / "src"),
             str(Path(__file__).resolve().parents[2])])}
        started = time.monotonic()
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, cluster, fake.url,
                 "sync" if i % 2 == 0 else "async", str(CONCURRENT), LIMIT_USD],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
            for i in range(PROCESSES)
        ]
        outcomes: Counter[str] = Counter()
        for child in children:
            out, err = child.communicate(timeout=300)
            assert child.returncode == 0, err[-2000:]
            outcomes.update(json.loads(out.strip().splitlines()[-1]))
        elapsed = time.monotonic() - started
        reached = len(fake.requests)
    total = PROCESSES * CONCURRENT
    assert sum(outcomes.values()) == total
    assert not [k for k in outcomes if k.startswith("RAW")], outcomes
    assert "typed:StoreUnavailableError" not in outcomes, (outcomes, elapsed)
    assert outcomes["ok"] == ROOM_CALLS, outcomes  # exactly the room the budget had
    assert outcomes["typed:BudgetExceededError"] == total - ROOM_CALLS
    assert reached == ROOM_CALLS  # denied calls never reached the provider
    with psycopg.connect(cluster) as conn:
        rows = dict(conn.execute(
            'SELECT status, count(*) FROM ledger.calls GROUP BY status').fetchall())
        ok_cost = conn.execute(
            "SELECT COALESCE(sum(cost_nanos), 0) FROM ledger.calls WHERE status = 'ok'"
        ).fetchone()[0]
        spent, reserved, limit = conn.execute(
            "SELECT spent, reserved, lim FROM budgets.budget_counters").fetchone()
    assert rows == {"ok": ROOM_CALLS, "BudgetExceededError": total - ROOM_CALLS}
    assert ok_cost == spent == ROOM_CALLS * CALL_NANOS <= limit  # 0 overshoot
    assert reserved == 0  # every hold settled or released
