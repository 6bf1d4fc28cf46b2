"""``/metrics`` of a gateway with ``--workers 2`` shows the totals of both workers,
whichever worker answers the scrape (a real ``tollway gateway`` subprocess over the fake
provider; each request on a fresh connection, so the kernel spreads them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.conftest import UPSTREAM_KEY, free_port
from tollway.core.types import Usage
from tollway.gateway.metrics import Metrics

CALLS = 40
USAGE = Usage(input_tokens=25, output_tokens=5)


def _count(text: str, pattern: str) -> int:
    found = re.search(pattern + r" (\d+)", text)
    return int(found.group(1)) if found else 0


def test_two_workers_report_the_same_totals_on_every_scrape(tmp_path: Path, fake: FakeProvider) -> None:
    fake.default = oai.text_reply("ok", usage=USAGE)
    config = tmp_path / "tollway.yaml"
    config.write_text(
        "models:\n"
        f"  fast: {{model: openai/gpt-4o-mini, api_base: '{fake.url}', api_key: env:UPSTREAM}}\n"
        f"ledger: {tmp_path / 'ledger.db'}\n"
        "gateway:\n  auth: none\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "UPSTREAM": UPSTREAM_KEY, "TMPDIR": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "xdg")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollway.cli", "gateway", "--config", str(config), "--port",
         str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()
            assert time.monotonic() < deadline, "the gateway did not come up"
            time.sleep(0.1)
        [shared] = tmp_path.glob("tollway-metrics-*")  # made by the supervisor for this run
        deadline = time.monotonic() + 30
        while len(list(shared.glob("worker-*.json"))) < 2:  # both workers started
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.1)

        body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(CALLS):  # httpx.post: a new connection every time
            assert httpx.post(url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
        time.sleep(1.2)  # more than the publishing interval (0.5 s)

        route = r'tollway_gateway_requests_total\{route="/v1/chat/completions",status="200"\}'
        tokens = r'tollway_gateway_tokens_total\{model="fast",key="none",kind="input"\}'
        scrapes = [httpx.get(url + "/metrics", timeout=10).text for _ in range(8)]
        assert [_count(text, route) for text in scrapes] == [CALLS] * 8
        assert [_count(text, tokens) for text in scrapes] == [CALLS * 25] * 8
        snapshots = [Metrics.summed([json.loads(p.read_text())])
                     for p in shared.glob("worker-*.json")]
        served = [sum(n for (r, s), n in m.requests.items() if r == "/v1/chat/completions")
                  for m in snapshots]
        assert len(served) == 2 and sum(served) == CALLS
        assert min(served) >= 1, served  # both served: every scrape summed across workers
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not shared.exists()  # the supervisor removes the run's directory


def test_snapshots_sum_to_the_counts_of_one_process() -> None:
    one, a, b = Metrics(), Metrics(), Metrics()
    for metrics, route, status, seconds in ((a, "/v1/x", 200, 0.02), (b, "/v1/x", 200, 0.3),
                                            (b, "/v1/x", 429, 0.001)):
        metrics.request(route, status, seconds)
        one.request(route, status, seconds)
    assert Metrics.summed([a.snapshot(), b.snapshot()]).render() == one.render()
