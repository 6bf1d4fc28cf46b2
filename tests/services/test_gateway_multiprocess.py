"""Two gateway processes x two workers sharing PostgreSQL (keys, ledger) and Redis (key
budgets): under concurrent load a key's USD budget is never overshot, and a revoked key
stops working on every instance within a second (measured).

Needs TOLLWAY_TEST_POSTGRES_URL and TOLLWAY_TEST_REDIS_URL (skipped otherwise); each run
uses its own PostgreSQL schema and Redis prefix and removes them afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.conftest import UPSTREAM_KEY, free_port
from tollway.core.types import NANOS_PER_USD, Usage

PG = os.environ.get("TOLLWAY_TEST_POSTGRES_URL")
REDIS = os.environ.get("TOLLWAY_TEST_REDIS_URL")
pytestmark = [pytest.mark.services,
              pytest.mark.skipif(not (PG and REDIS), reason="needs PostgreSQL and Redis URLs")]

BUDGET_USD = Decimal("0.0004")
REPLY_USAGE = Usage(input_tokens=20, output_tokens=10)
"""What the fake provider bills per call: less than the reservation of the prompt below
(about 40 input tokens by estimate, max_tokens 10), so the budget's bound is exact and
any overshoot could only come from concurrency."""
PROMPT = "Please answer with one short sentence about the weather in Paris today."
CALLS = 160


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[str, str]]:
    schema = f"tollway_gw_{uuid.uuid4().hex[:10]}"
    prefix = f"{{tollway-gw-{uuid.uuid4().hex[:10]}}}:"
    yield schema, prefix
    import psycopg
    import redis

    with psycopg.connect(PG, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    client = redis.Redis.from_url(REDIS)  # type: ignore[arg-type]
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def _start(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tollway.cli", "gateway", "--config", str(config), "--port",
         str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 40
    while True:
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()
        assert time.monotonic() < deadline, "a gateway did not come up"
        time.sleep(0.1)


async def _load(urls: list[str], secret: str) -> list[int]:
    body = {"model": "fast", "max_tokens": 10, "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"authorization": f"Bearer {secret}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        async def one(i: int) -> int:
            response = await client.post(urls[i % len(urls)] + "/v1/chat/completions",
                                         json=body, headers=headers)
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(CALLS))))


def test_two_gateways_share_budgets_and_revocations(tmp_path: Path, fake: FakeProvider,
                                                    shared: tuple[str, str]) -> None:
    schema, prefix = shared
    keys_url = _with_schema(PG or "", schema)
    config = tmp_path / "tollway.yaml"
    config.write_text(
        "models:\n  fast:\n    model: openai/gpt-4o-mini\n"
        f"    api_base: {fake.url}\n    api_key: env:TOLLWAY_TEST_UPSTREAM_KEY\n"
        f"ledger: '{keys_url}'\n"
        "gateway:\n"
        f"  keys: '{keys_url}'\n"
        f"  budget_store: {{backend: redis, url: '{REDIS}', prefix: '{prefix}'}}\n"
    )
    fake.default = oai.text_reply("Sunny.", usage=REPLY_USAGE)
    env = {**os.environ, "TOLLWAY_TEST_UPSTREAM_KEY": UPSTREAM_KEY, "XDG_DATA_HOME": str(tmp_path)}
    env.pop("TOLLWAY_CONFIG", None)
    created = subprocess.run(
        [sys.executable, "-m", "tollway.cli", "keys", "--config", str(config), "create",
         "--org", "acme", "--budget", f"{BUDGET_USD} usd/day"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    key_id, secret = created[0].removeprefix("created "), created[1]

    ports = [free_port(), free_port()]
    procs = [_start(config, port, env) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, proc in zip(urls, procs, strict=True):
            _wait_up(url, proc)

        statuses = asyncio.run(_load(urls, secret))

        import psycopg

        with psycopg.connect(PG, autocommit=True) as conn:  # type: ignore[arg-type]
            rows = conn.execute(
                f'SELECT status, cost_nanos FROM "{schema}"."calls" WHERE key = %s', (key_id,)
            ).fetchall()
        ok = [cost for status, cost in rows if status == "ok"]
        spent = sum(ok)
        assert statuses.count(200) == len(ok) == len(fake.requests)
        assert set(statuses) == {200, 429}
        assert spent <= BUDGET_USD * NANOS_PER_USD, f"overshoot: {spent} nano-USD"
        # the budget was really used up (each call costs ~9e-6 USD, reserves ~1.2e-5)
        assert len(ok) >= 25
        print(f"\n{len(ok)} of {CALLS} calls admitted, spent {spent / 1e9:.9f} of {BUDGET_USD} USD")

        fresh = subprocess.run(
            [sys.executable, "-m", "tollway.cli", "keys", "--config", str(config), "create"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        fresh_id, fresh_secret = fresh[0].removeprefix("created "), fresh[1]
        probe = {"model": "fast", "messages": [{"role": "user", "content": "x"}]}
        auth = {"authorization": f"Bearer {fresh_secret}"}
        for url in urls:
            for _ in range(4):  # every worker has it cached
                assert httpx.post(url + "/v1/chat/completions", json=probe, headers=auth).status_code == 200
        from tollway.gateway.key_store import PostgresKeyStore

        store = PostgresKeyStore(keys_url)
        store.revoke(fresh_id)
        store.close()
        revoked_at = time.monotonic()
        refused_after: list[float] = []
        with httpx.Client() as client:
            for url in urls:
                for _ in range(4):
                    while client.post(url + "/v1/chat/completions", json=probe,
                                      headers=auth).status_code != 401:
                        assert time.monotonic() - revoked_at < 2.0
                refused_after.append(time.monotonic() - revoked_at)
        print(f"revocation seen by every instance after {max(refused_after) * 1000:.0f} ms")
        assert max(refused_after) <= 1.0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
