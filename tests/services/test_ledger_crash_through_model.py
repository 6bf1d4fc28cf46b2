"""Crash test through the whole call path: a child process makes N ``Model.complete``
calls against the loopback fake provider and is SIGKILLed right after the N-th returns;
the ledger holds all N rows (SQLite always; PostgreSQL when TOLLWAY_TEST_POSTGRES_URL
is set)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import replies_openai
from tests.fakes.server import FakeProvider
from tollway.core.reports import spend
from tollway.core.stores.open import open_ledger

CALLS = 25
CHILD = """
import sys, tollway
url, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = tollway.Model("openai/gpt-4o-mini", api_key="sk-child-key-123456", api_base=url,
                      ledger=target, config=False)
for i in range(n):
    model.complete(f"call {i}")
    print(i + 1, flush=True)
sys.stdin.read()  # wait to be killed
"""


def _kill_after_calls(url: str, target: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, target, str(CALLS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if int(line) == CALLS:
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def _fake() -> FakeProvider:
    fake = FakeProvider()
    fake.default = replies_openai.text_reply("ok")
    return fake


def test_sigkill_after_the_nth_call_loses_no_row_sqlite(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'ledger.db'}"
    with _fake() as fake:
        _kill_after_calls(fake.url, target)
    (row,) = spend(open_ledger(target), group_by=["status"])
    assert (row.group["status"], row.calls) == ("ok", CALLS)
    assert row.input_tokens == CALLS * replies_openai.DEFAULT_USAGE.input_tokens


@pytest.fixture
def postgres_target() -> Iterator[str]:
    url = os.environ.get("TOLLWAY_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TOLLWAY_TEST_POSTGRES_URL is not set")
    psycopg = pytest.importorskip("psycopg")
    schema = f"tollway_crash_{uuid.uuid4().hex[:10]}"
    yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_sigkill_after_the_nth_call_loses_no_row_postgres(postgres_target: str) -> None:
    with _fake() as fake:
        _kill_after_calls(fake.url, postgres_target)
    (row,) = spend(open_ledger(postgres_target), group_by=["status"])
    assert (row.group["status"], row.calls) == ("ok", CALLS)
