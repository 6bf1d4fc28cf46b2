"""Budgets from tollway.yaml: validation errors that name file and line, store options,
and the ``tollway budgets`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.core.cost.budgets import support
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway.cli import main
from tollway.core.assembly import guards_from_config
from tollway.core.config import load_config
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.budgets.memory import MemoryBudgetStore
from tollway.core.errors import ConfigError
from tollway.core.model import Model
from tollway.core.stores.open import open_budget_store
from tollway.core.stores.postgres_budgets import PostgresBudgetStore
from tollway.core.stores.redis_budgets import RedisBudgetStore
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore
from tollway.core.types import Usage


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tollway.yaml"
    path.write_text(text)
    return path


def test_a_bad_budget_field_is_reported_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """\
budgets:
  - scope: {project: search}
    limit: 200
    period: month
  - scope: {user: each}
    limit: 5
    period: fortnight
budget_store: memory
""")
    with pytest.raises(ConfigError) as err:
        guards_from_config(load_config(path))
    assert err.value.file == str(path) and err.value.line == 7
    assert "budgets[1].period" in str(err.value) and "fortnight" in str(err.value)


def test_an_unknown_key_lists_the_keys_a_budget_takes(tmp_path: Path) -> None:
    path = write(tmp_path, """\
budgets:
  search:
    scope: {project: search}
    limit: 200
    perod: month
""")
    with pytest.raises(ConfigError, match=r"unknown key 'perod'; expected one of .*period") as err:
        guards_from_config(load_config(path))
    assert err.value.line == 5


def test_a_bad_scope_dimension_points_at_the_scope(tmp_path: Path) -> None:
    path = write(tmp_path, """\
hours:
  - scope: {team: ml}
    windows: [mon-fri 08:00-19:00]
""")
    with pytest.raises(ConfigError, match="unknown scope dimension 'team'") as err:
        guards_from_config(load_config(path))
    assert err.value.line == 2


def test_mapping_form_names_budgets_by_their_keys_and_store_options_apply(tmp_path: Path) -> None:
    path = write(tmp_path, """\
budgets:
  search-monthly:
    scope: {project: search}
    limit: 200
    period: month
rate_limits:
  - scope: {user: each}
    requests_per_minute: 10
hours:
  - windows: ["mon-fri 08:00-19:00 Europe/Berlin"]
budget_store: {backend: memory, reservation_ttl: 30, default_max_output_tokens: 512}
""")
    (guard,) = guards_from_config(load_config(path))
    assert isinstance(guard, Budgets) and isinstance(guard.store, MemoryBudgetStore)
    assert [p.id for p in guard.policies] == ["search-monthly"]
    assert (guard.reservation_ttl, guard.default_max_output_tokens) == (30.0, 512)
    assert guard.hours[0].schedule().timezone == "Europe/Berlin"


def test_a_bad_store_option_is_reported_at_the_store(tmp_path: Path) -> None:
    path = write(tmp_path, """\
budgets:
  - {limit: 1, period: day}
budget_store: {backend: memory, reservation_ttl: -5}
""")
    with pytest.raises(ConfigError, match="positive number") as err:
        guards_from_config(load_config(path))
    assert err.value.line == 3
    path = write(tmp_path, "budgets:\n  - {limit: 1, period: day}\nbudget_store: {backend: etcd}\n")
    with pytest.raises(ConfigError, match="memory, sqlite, redis or postgres"):
        guards_from_config(load_config(path))


def test_no_budget_sections_means_no_guards(tmp_path: Path) -> None:
    assert guards_from_config(load_config(write(tmp_path, "ledger: false\n"))) == ()


def test_store_specs_pick_the_backend(tmp_path: Path, monkeypatch: Any) -> None:
    assert isinstance(open_budget_store("memory"), MemoryBudgetStore)
    sqlite = open_budget_store(str(tmp_path / "b.db"))
    assert isinstance(sqlite, SQLiteBudgetStore) and sqlite.path == tmp_path / "b.db"
    redis = open_budget_store({"backend": "redis", "url": "redis://h:6379/0", "prefix": "x"})
    assert isinstance(redis, RedisBudgetStore) and redis.prefix == "{x}:"
    pg = open_budget_store("postgresql://u@h/db")
    assert isinstance(pg, PostgresBudgetStore) and pg.schema == "tollway"
    monkeypatch.setenv("TOLLWAY_BUDGETS_DB", str(tmp_path / "env.db"))
    default = open_budget_store(None)
    assert isinstance(default, SQLiteBudgetStore) and default.path == tmp_path / "env.db"
    with pytest.raises(ConfigError, match="needs 'url"):
        open_budget_store({"backend": "redis"})


# --------------------------------------------------------------------------- the command


def test_budgets_command_prints_counters_another_process_wrote(
    tmp_path: Path, fake: FakeProvider, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setenv("TW_BUDGET_TEST_KEY", support.KEY)
    path = write(tmp_path, f"""\
models:
  mini:
    - model: openai/gpt-4o-mini
      api_base: {fake.url}
      api_key: env:TW_BUDGET_TEST_KEY
prices:
  openai/gpt-4o-mini: {{input: 0, output: 1}}
budgets:
  - scope: {{user: each}}
    limit: 5
    period: day
  - name: search
    scope: {{project: search}}
    limit: 200
    period: month
    timezone: Europe/Berlin
budget_store: {{backend: sqlite, path: {tmp_path / "budgets.db"}}}
ledger: false
""")
    fake.default = oai.text_reply("hi", usage=Usage(input_tokens=10, output_tokens=5))
    Model("mini", config=str(path), attribution={"user": "alice"}).complete("hi", max_tokens=5)

    assert main(["budgets", "--config", str(path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_scope = {(r["budget"], r["scope"]): r for r in rows}
    alice = by_scope[("user/usd/day", "user=alice")]
    assert (alice["limit"], alice["spent"], alice["reserved"]) == (5, 0.000005, 0)
    assert alice["remaining"] == pytest.approx(5 - 0.000005)
    search = by_scope[("search", "project=search")]
    assert search["spent"] == 0 and search["resets_at"].endswith(("+01:00", "+02:00"))

    assert main(["budgets", "--config", str(path)]) == 0
    table = capsys.readouterr().out
    assert "user=alice" in table and "$5.00" in table and "$0.000005" in table
    assert table.splitlines()[0].split() == [
        "budget", "scope", "period", "limit", "spent", "reserved", "remaining", "resets"
    ]


def test_budgets_command_without_a_config_says_how_to_give_one(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    assert main(["budgets"]) == 2
    assert "--config" in capsys.readouterr().err


def test_budgets_command_reports_config_errors_with_their_line(
    tmp_path: Path, capsys: Any
) -> None:
    path = write(tmp_path, "budgets:\n  - {limit: 1, period: weekly}\n")
    assert main(["budgets", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2" in err and "period" in err
