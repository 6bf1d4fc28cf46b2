"""A script that makes its PostgreSQL calls inside ``asyncio.run`` must exit.

psycopg_pool's AsyncConnectionPool (3.3) swallows the ``CancelledError`` that
``asyncio.run`` sends every task at the end when a pool worker is still opening a
connection, and the program then hangs forever on exit: here 6 runs in 10 hung. tollway's
async connections are made by the caller's own task, so nothing is left to cancel. Each
child below runs four short ``asyncio.run`` over the ledger and the budget store and must
exit promptly with both rows and the settled spend written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

URL = os.environ.get("TOLLWAY_TEST_POSTGRES_URL")
if not URL:
    pytest.skip("TOLLWAY_TEST_POSTGRES_URL is not set", allow_module_level=True)

psycopg = pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, sys
from datetime import UTC, datetime
from tollway.core.cost.budgets.contract import Charge
from tollway.core.cost.records import CallRecord
from tollway.core.stores.open import open_ledger
from tollway.core.stores.postgres_budgets import PostgresBudgetStore

url, schema = sys.argv[1], sys.argv[2]
ledger = open_ledger(f"{url}?schema={schema}")
store = PostgresBudgetStore(url, schema=schema + "_b")
charge = Charge("b|all|0", "b", "all", 0, None, 1_000, 10)

async def record(i):
    await ledger.arecord(CallRecord(time=datetime.now(UTC), trace_id="t", request_id=f"r{i}",
                                    provider="openai", model="gpt-4o", cost_nanos=i))

async def spend(i):
    assert await store.areserve(f"h{i}", [charge], 2e9, 1e9) is None
    await store.asettle(f"h{i}", [charge], [3], 1e9)

# each loop ends right after a pool's first connection: the moment the hang needed
for i in (1, 2):
    asyncio.run(record(i))
    asyncio.run(spend(i))
(c,) = store.counters(1e9)
print(ledger.count(), c.spent, c.reserved)
ledger.close()
store.drop()
"""


def test_scripts_using_asyncio_run_exit_with_their_rows_written() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    for _ in range(5):
        schema = f"tollway_test_{uuid.uuid4().hex[:12]}"
        try:
            done = subprocess.run([sys.executable, "-c", CHILD, URL or "", schema], env=env,
                                  capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("a script whose asyncio.run made PostgreSQL calls hung at exit")
        finally:
            with psycopg.connect(URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_b" CASCADE')
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["2", "6", "0"]
