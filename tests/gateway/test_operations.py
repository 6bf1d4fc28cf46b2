"""Running the gateway: the CLI (``tollway keys``, ``tollway gateway --workers``), its
config section, /metrics and /health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tests.gateway.conftest import UPSTREAM_KEY, free_port
from tollway.cli import main
from tollway.core.config import load_config
from tollway.core.errors import ConfigError
from tollway.gateway.config import gateway_spec


def test_keys_cli_prints_the_secret_once_and_lists_prefixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "keys.db")
    assert main(["keys", "--store", store, "create", "--org", "acme", "--models", "fast,smart",
                 "--budget", "10 usd/day", "--rpm", "60", "--hours",
                 "mon-fri 08:00-19:00 Europe/Berlin", "--expires", "30d", "--tag", "team=ml"]) == 0
    created = capsys.readouterr().out.splitlines()
    key_id, secret = created[0].removeprefix("created "), created[1]
    assert secret.startswith("sk-tw-")

    assert main(["keys", "--store", store, "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and secret[:12] in listing and secret not in listing
    assert "10 usd/day; 60 rpm; mon-fri 08:00-19:00 Europe/Berlin" in listing

    assert main(["keys", "--store", store, "rotate", key_id]) == 0
    rotated = capsys.readouterr().out.splitlines()[1]
    assert rotated.startswith("sk-tw-") and rotated != secret
    assert main(["keys", "--store", store, "revoke", key_id]) == 0
    assert main(["keys", "--store", store, "list", "--format", "json"]) == 0
    assert '"revoked_at": "20' in capsys.readouterr().out
    assert main(["keys", "--store", store, "revoke", "key_unknown"]) == 2
    assert "no key with id 'key_unknown'" in capsys.readouterr().err
    raw = Path(store).read_bytes()
    assert secret.encode() not in raw and rotated.encode() not in raw


def test_gateway_section_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    path.write_text("models:\n  fast: openai/gpt-4o-mini\ngateway:\n  keys: k.db\n  max_body: 10\n")
    with pytest.raises(ConfigError) as caught:
        gateway_spec(load_config(path))
    assert f"{path}:5" in str(caught.value)
    assert "unknown key 'max_body'" in str(caught.value)
    path.write_text("gateway:\n  key_refresh_seconds: 5\n")
    with pytest.raises(ConfigError, match="key_refresh_seconds"):
        gateway_spec(load_config(path))


def test_metrics_count_requests_tokens_and_cost_by_model_and_key(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, key = gw.create_key()
    fake.default = oai.text_reply("ok")
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    text = httpx.get(gw.url + "/metrics").text
    assert 'tollway_gateway_requests_total{route="/v1/chat/completions",status="200"} 3' in text
    assert 'tollway_gateway_requests_total{route="/v1/chat/completions",status="404"} 1' in text
    assert f'tollway_gateway_tokens_total{{model="fast",key="{key.id}",kind="input"}} {3 * 1351}' in text
    assert f'tollway_gateway_cost_usd_total{{model="fast",key="{key.id}"}}' in text
    assert 'tollway_gateway_request_duration_seconds_count{route="/v1/chat/completions"} 4' in text


def test_ready_fails_when_the_key_store_is_gone(gateway_server) -> None:
    gw = gateway_server()
    assert httpx.get(gw.url + "/health/live").json() == {"status": "ok"}
    ready = httpx.get(gw.url + "/health/ready")
    assert (ready.status_code, ready.json()["checks"]) == (200, {"keys": "ok"})
    gw.gateway.keys.store.close()
    broken = httpx.get(gw.url + "/health/ready")
    assert broken.status_code == 503
    assert broken.json()["checks"]["keys"].startswith("error")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_tollway_gateway_serves_with_two_workers_and_stops_on_sigterm(tmp_path: Path, fake: FakeProvider) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text(
        f"models:\n  fast:\n    model: openai/gpt-4o-mini\n    api_base: {fake.url}\n"
        f"    api_key: env:TOLLWAY_TEST_UPSTREAM_KEY\nledger: {tmp_path / 'ledger.db'}\n"
        f"gateway:\n  keys: {tmp_path / 'keys.db'}\n"
    )
    env = {**os.environ, "TOLLWAY_TEST_UPSTREAM_KEY": UPSTREAM_KEY, "XDG_DATA_HOME": str(tmp_path)}
    env.pop("TOLLWAY_CONFIG", None)
    fake.default = oai.text_reply("from a worker")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollway.cli", "gateway", "--config", str(config), "--port",
         str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the gateway did not come up"
            time.sleep(0.1)
        assert len(_children(proc.pid)) >= 2
        store_secret = subprocess.run(
            [sys.executable, "-m", "tollway.cli", "keys", "--config", str(config), "create"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.splitlines()[1]
        client = openai.OpenAI(base_url=url + "/v1", api_key=store_secret, max_retries=0)
        answers = {client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
            for _ in range(6)}
        assert answers == {"from a worker"}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


def test_keys_cli_takes_the_store_after_the_action_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tollway keys create --config F` (options after the action, as a user types them)
    works as well as `tollway keys --config F create`."""
    config = tmp_path / "tollway.yaml"
    config.write_text(f"models: {{fast: openai/gpt-4o-mini}}\ngateway: {{keys: {tmp_path / 'k.db'}}}\n")
    assert main(["keys", "create", "--config", str(config), "--org", "acme"]) == 0
    key_id = capsys.readouterr().out.splitlines()[0].removeprefix("created ")
    assert main(["keys", "--config", str(config), "list"]) == 0
    assert key_id in capsys.readouterr().out
    store = str(tmp_path / "other.db")
    assert main(["keys", "--config", str(config), "list", "--store", store]) == 0
    assert key_id not in capsys.readouterr().out  # the later --store wins
    assert main(["keys", "revoke", key_id, "--config", str(config)]) == 0
    assert main(["keys", "list", "--config", str(config), "--format", "json"]) == 0
    assert '"revoked_at": "20' in capsys.readouterr().out


def test_budgets_command_lists_the_keys_budgets_as_the_dashboard_does(
    tmp_path: Path, fake: FakeProvider, upstream_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tollway budgets --config` on a gateway's config shows every key's budgets and
    rate limits with what its calls spent, the same rows as the dashboard's page."""
    import json

    from tests.gateway.conftest import serve
    from tollway.core.config import TollwaySettings
    from tollway.gateway.runtime import Gateway
    from tollway.gateway.ui.source import standalone_source

    config = tmp_path / "tollway.yaml"
    config.write_text(
        "models:\n"
        f"  fast: {{model: openai/gpt-4o-mini, api_base: '{fake.url}', "
        "api_key: 'env:TOLLWAY_TEST_UPSTREAM_KEY'}\n"
        f"ledger: {tmp_path / 'ledger.db'}\n"
        f"gateway:\n  keys: {tmp_path / 'keys.db'}\n"
        f"  budget_store: {{backend: sqlite, path: {tmp_path / 'budgets.db'}}}\n"
    )
    assert main(["keys", "create", "--config", str(config), "--user", "alice",
                 "--budget", "1 usd/day", "--rpm", "30"]) == 0
    key_id, secret = capsys.readouterr().out.splitlines()[:2]
    key_id = key_id.removeprefix("created ")
    assert main(["keys", "create", "--config", str(config), "--user", "bob"]) == 0
    revoked = capsys.readouterr().out.splitlines()[0].removeprefix("created ")
    fake.default = oai.text_reply("ok")
    gw = serve(Gateway(TollwaySettings.load(str(config))))
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=0)
        for _ in range(2):
            client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
        cost = sum(row["cost_nanos"] for row in gw.ledger_rows()) / 1e9
    finally:
        gw.stop()
    assert cost > 0

    assert main(["budgets", "--config", str(config), "--format", "json"]) == 0
    rows = {r["budget"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {f"{key_id}/budget0", f"{key_id}/rate/requests"}  # bob has no limits
    budget, rate = rows[f"{key_id}/budget0"], rows[f"{key_id}/rate/requests"]
    assert (budget["scope"], budget["limit"], budget["reserved"]) == (f"key={key_id}", 1.0, 0.0)
    assert budget["spent"] == pytest.approx(cost)
    assert (rate["limit"], rate["spent"], rate["period"]) == (30, 2, "minute")
    source = standalone_source(None, config=str(config))
    try:  # the dashboard's budgets page reads the same rows
        page = {r.budget: json.loads(json.dumps(r.as_dict())) for r in source.budgets()}
    finally:
        source.close()
    assert page == rows

    assert main(["keys", "revoke", key_id, "--config", str(config)]) == 0
    assert revoked not in rows
    capsys.readouterr()
    assert main(["budgets", "--config", str(config)]) == 0
    assert "no budgets" in capsys.readouterr().out  # a revoked key's limits are gone
