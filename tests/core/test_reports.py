"""``tollway.spend`` / ``tollway.budget_status`` and ``tollway spend`` / ``tollway budgets``
read the ledger and budgets of the tollway.yaml a Model uses, found the way Model finds
it (``./tollway.yaml``, ``$TOLLWAY_CONFIG``) or named with ``config=`` / ``--config``.

The calls go through ``Model`` against the loopback fake provider (sync and async), then
the read side reports them: in this process, through the CLI's ``main``, and from a
fresh ``tollway`` process started in another directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tollway
from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway.cli import main
from tollway.core.errors import ConfigError
from tollway.core.stores.open import open_ledger
from tollway.core.types import NANOS_PER_USD, Usage

KEY = "sk-test-reports-0123456789abcdef"
USAGE = Usage(input_tokens=1_000, output_tokens=200)


@pytest.fixture
def isolated(
    tmp_path: Path, default_ledger: Callable[[], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A temp cwd, no developer config, and a default ledger of its own that is not the
    config's (so a report that read the default ledger instead would come back empty)."""
    monkeypatch.setenv("TW_REPORTS_KEY", KEY)
    return tmp_path


def write_config(where: Path, fake: FakeProvider, ledger: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "tollway.yaml"
    path.write_text(f"""\
models:
  fast:
    - model: openai/gpt-4o-mini
      api_base: {fake.url}
      api_key: env:TW_REPORTS_KEY
prices:
  openai/gpt-4o-mini: {{input: 1, output: 2}}
budgets:
  - {{name: search-daily, scope: {{project: search}}, limit: 10, period: day}}
budget_store: {{backend: sqlite, path: {where / "budgets.db"}}}
ledger: {ledger}
""")
    return path


def make_calls(driver: Driver, fake: FakeProvider, config: Any = None) -> list[int]:
    """Two calls for project search, one for project ads; their costs in nano-USD."""
    fake.default = oai.text_reply("ok", usage=USAGE)
    costs = []
    for project in ("search", "search", "ads"):
        kw = {} if config is None else {"config": config}
        model = tollway.Model("fast", attribution={"project": project}, **kw)
        costs.append(driver.complete(model, "hi", max_tokens=200).cost_nanos)
    return costs


def by_project(rows: list[Any]) -> dict[str | None, tuple[int, int]]:
    return {r.group["project"]: (r.calls, r.cost_nanos) for r in rows}


def test_spend_reads_the_ledger_of_the_tollway_yaml_in_the_working_directory(
    isolated: Path, fake: FakeProvider, driver: Driver, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(isolated, fake, "calls.db")
    costs = make_calls(driver, fake)
    assert all(c and c > 0 for c in costs)

    rows = tollway.spend(group_by="project")  # the README's form: no ledger named
    assert by_project(rows) == {"search": (2, costs[0] + costs[1]), "ads": (1, costs[2])}
    assert (isolated / "calls.db").is_file()
    default = open_ledger(None)
    try:
        assert default.query(_everything()) == []  # nothing went to the default ledger
    finally:
        default.close()

    assert main(["spend", "--by", "project", "--format", "json"]) == 0
    printed = {r["project"]: (r["calls"], r["cost"]) for r in json.loads(capsys.readouterr().out)}
    assert printed == {r.group["project"]: (r.calls, format(r.cost, "f")) for r in rows}


def test_spend_finds_the_config_through_tollway_config(
    isolated: Path, fake: FakeProvider, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(isolated / "deploy", fake, str(isolated / "deploy" / "calls.db"))
    monkeypatch.setenv("TOLLWAY_CONFIG", str(config))
    costs = make_calls(driver, fake)
    assert by_project(tollway.spend(group_by="project"))["search"] == (2, costs[0] + costs[1])


def test_spend_and_spend_command_take_a_config_elsewhere(
    isolated: Path, fake: FakeProvider, driver: Driver
) -> None:
    """``config=`` / ``--config`` name a file outside the working directory; a fresh
    ``tollway spend`` process started somewhere else reads the same rows."""
    config = write_config(isolated / "elsewhere", fake, str(isolated / "elsewhere" / "c.db"))
    costs = make_calls(driver, fake, config=str(config))
    expected = {"search": (2, costs[0] + costs[1]), "ads": (1, costs[2])}
    assert by_project(tollway.spend(config=str(config), group_by="project")) == expected
    assert tollway.spend(group_by="project") == []  # no ./tollway.yaml: the default ledger

    other = isolated / "somewhere-else"
    other.mkdir()
    out = _tollway(other, "spend", "--config", str(config), "--by", "project", "--format", "json")
    assert {r["project"]: r["calls"] for r in json.loads(out)} == {"search": 2, "ads": 1}


def test_budgets_follow_the_same_config_discovery(
    isolated: Path, fake: FakeProvider, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(isolated / "team", fake, "false")
    costs = make_calls(driver, fake, config=str(config))
    spent = {r.scope: r.spent for r in tollway.budget_status(config=str(config))}
    assert spent == {"project=search": Decimal(costs[0] + costs[1]) / NANOS_PER_USD}

    monkeypatch.chdir(config.parent)  # ./tollway.yaml, as Model would find it
    assert [r.scope for r in tollway.budget_status()] == ["project=search"]
    out = _tollway(isolated, "budgets", "--config", str(config), "--format", "json")
    (row,) = json.loads(out)
    assert row["budget"] == "search-daily" and row["spent"] == pytest.approx(
        (costs[0] + costs[1]) / 1e9
    )


def test_an_in_memory_config_ledger_is_read_in_place(
    isolated: Path, fake: FakeProvider, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ledger: memory`` lives in this process only: spend() reads the Models' own."""
    write_config(isolated / "mem", fake, "memory")
    monkeypatch.chdir(isolated / "mem")
    costs = make_calls(driver, fake)
    rows = tollway.spend(group_by="project")
    assert by_project(rows)["ads"][1] >= costs[2]  # the shared ledger, not a fresh empty one


def test_a_config_with_the_ledger_off_is_an_error_naming_the_key(
    isolated: Path, fake: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(isolated, fake, "false")
    with pytest.raises(ConfigError, match="turns the ledger off") as info:
        tollway.spend()
    assert info.value.key == "ledger" and str(config.name) in str(info.value)
    assert main(["spend"]) == 2
    assert "ledger: false" in capsys.readouterr().err


def test_a_ledger_and_a_config_together_are_refused(isolated: Path, fake: FakeProvider) -> None:
    config = write_config(isolated, fake, "calls.db")
    with pytest.raises(ConfigError, match="not both"):
        tollway.spend("other.db", config=str(config))
    with pytest.raises(ConfigError, match="not both"):
        tollway.budget_status(str(config), config=str(config))
    # --ledger alone still reads the named ledger, whatever ./tollway.yaml says
    assert tollway.spend(str(isolated / "named.db")) == []


def test_a_missing_config_file_named_in_code_is_an_error(isolated: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        tollway.spend(config=str(isolated / "absent.yaml"))


def _everything() -> Any:
    from tollway.core.cost.spend import SpendQuery

    return SpendQuery.build((), None, None, None)


def _tollway(cwd: Path, *args: str) -> str:
    """Run the ``tollway`` command in a fresh interpreter (this checkout's sources)."""
    env = {**os.environ}
    env.pop("TOLLWAY_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tollway.cli", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
