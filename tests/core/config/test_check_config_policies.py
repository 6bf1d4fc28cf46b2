"""``tollway check-config`` validates budgets, hours and rate limits without opening a
budget store, and names the line of a bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.cli import main

GOOD = """\
models:
  fast: openai/gpt-4o-mini
budget_store: {backend: redis, url: redis://127.0.0.1:1/0}
budgets:
  - {name: per-user, scope: {user: each}, limit: 5, period: day}
hours:
  - {name: office, scope: {project: x}, windows: ["mon-fri 08:00-19:00"], timezone: Europe/Berlin}
"""


def test_policies_are_listed_and_no_store_is_opened(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text(GOOD)  # the redis URL points at a closed port: opening it would fail
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "budgets: 1\n  per-user" in out
    assert "hours: 1\n  office" in out
    assert "rate_limits: (none)" in out


def test_a_bad_budget_field_names_file_line_and_key(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text(GOOD.replace("limit: 5, period: day", "limit: 5, period: fortnight"))
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:5" in err and "budgets[0].period" in err


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("{backend: mongo}", "unknown budget_store backend 'mongo'"),
        ("{backend: redis}", "needs 'url: redis://"),
        ("{backend: sqlite, colour: blue}", "unknown budget_store option(s) colour"),
        ("{backend: sqlite, reservation_ttl: -1}", "'reservation_ttl' must be a positive number"),
    ],
)
def test_check_config_and_model_reject_the_same_budget_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str, expected: str
) -> None:
    from tollway import Model
    from tollway.core.errors import ConfigError

    config = tmp_path / "tollway.yaml"
    config.write_text(GOOD.replace("{backend: redis, url: redis://127.0.0.1:1/0}", store))
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:3" in err and expected in err
    with pytest.raises(ConfigError) as info:
        Model("fast", config=str(config))
    assert expected in str(info.value) and f"{config}:3" in str(info.value)
