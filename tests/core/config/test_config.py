"""tollway.yaml: discovery, caching, interpolation, validation errors that name the file,
line and key, and the ``tollway check-config`` view."""

from __future__ import annotations

import os
import time
from pathlib import Path
from textwrap import dedent

import pytest

from tollway.cli import main as cli_main
from tollway.core.assembly import price_book
from tollway.core.config import TollwaySettings, config_path, load_config
from tollway.core.errors import ConfigError

SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz012345"


def write(tmp_path: Path, text: str, name: str = "tollway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see a developer's own TOLLWAY_CONFIG or ./tollway.yaml."""
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- loading


def test_aliases_deployments_and_router_settings_are_loaded_with_shorthands(tmp_path: Path) -> None:
    path = write(tmp_path, """
        models:
          smart:
            - model: openai/gpt-4o
              name: primary
              api_base: https://example.test/v1
              api_key: env:MY_KEY
              headers: {X-Team: blue}
              weight: 3
              timeout: {connect: 2, read: 20}
              rpm: 60
              tpm: 100000
            - groq/llama-3.1-8b-instant
          cheap: openai/gpt-4o-mini
        router:
          strategy: least_inflight
          retries: 4
          backoff: {base: 0.1, max: 2}
          cooldown: 12
          allowed_fails: 2
          total_timeout: 30
        fallbacks:
          smart: cheap
    """)
    settings = load_config(path)
    assert settings is not None
    assert settings.aliases == ["smart", "cheap"]
    primary, second = settings.models["smart"]
    assert (primary.name, primary.model, primary.provider) == ("primary", "openai/gpt-4o", "openai")
    assert primary.key_env == "MY_KEY"
    assert primary.weight == 3 and primary.rpm == 60 and primary.tpm == 100_000
    assert primary.timeout.as_mapping() == {"connect": 2.0, "read": 20.0}  # type: ignore[union-attr]
    assert second.model == "groq/llama-3.1-8b-instant" and second.weight == 1.0
    assert [d.model for d in settings.models["cheap"]] == ["openai/gpt-4o-mini"]
    router = settings.router
    assert (router.strategy, router.retries, router.cooldown, router.allowed_fails) == (
        "least_inflight", 4, 12.0, 2,
    )
    assert (router.backoff.base, router.backoff.max, router.total_timeout) == (0.1, 2.0, 30.0)
    (rule,) = settings.fallbacks["smart"]
    assert rule.to == "cheap" and "rate_limit" in rule.on and "context_window" not in rule.on


def test_unquoted_on_key_in_a_fallback_rule_means_on_not_true(tmp_path: Path) -> None:
    path = write(tmp_path, """
        models: {small: openai/gpt-4o-mini, big: openai/gpt-4.1}
        fallbacks:
          small:
            - to: big
              on: [context_window, content_filter]
    """)
    settings = load_config(path)
    assert settings is not None
    assert settings.fallbacks["small"][0].on == ("context_window", "content_filter")


def test_sections_owned_elsewhere_are_kept_raw_for_their_owners(tmp_path: Path) -> None:
    path = write(tmp_path, """
        budgets:
          - {scope: org, limit_usd: 5, period: day}
        hours: []
        budget_store: {backend: memory}
        mcp:
          time: {command: uvx, args: [mcp-server-time]}
        attribution: {org: acme}
        prices:
          openai/gpt-4.1: {input: 2, output: 8}
    """)
    settings = load_config(path)
    assert settings is not None
    assert settings.budgets == [{"scope": "org", "limit_usd": 5, "period": "day"}]
    assert settings.hours == []
    assert settings.budget_store == {"backend": "memory"}
    assert settings.mcp == {"time": {"command": "uvx", "args": ["mcp-server-time"]}}
    assert settings.attribution == {"org": "acme"}
    assert settings.prices == {"openai/gpt-4.1": {"input": 2, "output": 8}}


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("", None),
        ("ledger: false", False),
        ("ledger: true", None),
        ("ledger: memory", "memory"),
        ("ledger: {url: 'sqlite:///tmp/x.db'}", "sqlite:///tmp/x.db"),
        ("ledger: {url: memory, enabled: false}", False),
    ],
)
def test_ledger_section_becomes_the_models_ledger_target(section: str, expected: object) -> None:
    settings = TollwaySettings.from_dict(
        __import__("yaml").safe_load(section or "{}") or {}
    )
    assert settings.ledger_target == expected


def test_price_overrides_merge_prices_with_each_deployments_own_price() -> None:
    settings = TollwaySettings.from_dict({
        "models": {"a": [{"model": "openai/custom-x", "price": {"input": 1, "output": 2}}]},
        "prices": {"openai/gpt-4.1": {"input": 2, "output": 8}},
    })
    assert settings.price_overrides() == {
        "openai/gpt-4.1": {"input": 2, "output": 8},
        "openai/custom-x": {"input": 1, "output": 2},
    }
    book = price_book(settings)
    assert book is not None and price_book(settings) is book  # built once
    from tollway.core.types import Usage

    cost = book.price("openai", "custom-x", Usage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost == 3_000_000_000  # $1 + $2, in nano-USD
    assert price_book(TollwaySettings.from_dict({})) is None


def test_unnamed_deployments_of_one_model_keep_their_own_prices() -> None:
    """Keyed by the deployment names the router and the ledger use (``#2`` for the
    second of a model), not by the model: neither price overwrites the other."""
    from tollway.core.types import Usage

    settings = TollwaySettings.from_dict({"models": {"smart": [
        {"model": "openai/gpt-4o-mini", "price": {"input": 100, "output": 100}},
        {"model": "openai/gpt-4o-mini", "price": {"input": 0.01, "output": 0.01}},
    ]}})
    assert settings.deployment_names("smart") == ("openai/gpt-4o-mini", "openai/gpt-4o-mini#2")
    book = price_book(settings)
    assert book is not None
    million = Usage(input_tokens=1_000_000)
    assert book.price("openai", "gpt-4o-mini", million, deployment="openai/gpt-4o-mini") == (
        100_000_000_000)
    assert book.price("openai", "gpt-4o-mini", million, deployment="openai/gpt-4o-mini#2") == (
        10_000_000)


# --------------------------------------------------------------------------- discovery / cache


def test_discovery_order_is_explicit_path_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config_path() is None and load_config() is None
    cwd_file = write(tmp_path, "models: {a: openai/gpt-4o-mini}")
    assert config_path() == Path("tollway.yaml")
    assert load_config().aliases == ["a"]  # type: ignore[union-attr]
    env_file = write(tmp_path, "models: {b: openai/gpt-4o-mini}", name="env.yaml")
    monkeypatch.setenv("TOLLWAY_CONFIG", str(env_file))
    assert load_config().aliases == ["b"]  # type: ignore[union-attr]
    explicit = write(tmp_path, "models: {c: openai/gpt-4o-mini}", name="explicit.yaml")
    assert load_config(explicit).aliases == ["c"]  # type: ignore[union-attr]
    assert cwd_file.exists()


def test_missing_files_that_were_asked_for_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="no such config file") as exc:
        load_config(tmp_path / "nope.yaml")
    assert exc.value.file == str(tmp_path / "nope.yaml")
    monkeypatch.setenv("TOLLWAY_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match="TOLLWAY_CONFIG points to a file that does not exist"):
        load_config()


def test_a_file_is_parsed_once_and_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "models: {a: openai/gpt-4o-mini}")
    first = load_config(path)
    assert load_config(path) is first
    path.write_text("models: {a: openai/gpt-4o, b: openai/gpt-4o-mini}\n", encoding="utf-8")
    later = time.time() + 5
    os.utime(path, (later, later))
    second = load_config(path)
    assert second is not first
    assert second is not None and second.aliases == ["a", "b"]


def test_cached_config_is_reloaded_when_an_interpolated_variable_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, """
        models:
          a: {model: openai/gpt-4o-mini, api_base: "${TEST_BASE_URL}"}
    """)
    monkeypatch.setenv("TEST_BASE_URL", "http://one.test")
    one = load_config(path)
    monkeypatch.setenv("TEST_BASE_URL", "http://two.test")
    two = load_config(path)
    assert one is not None and two is not None
    assert one.models["a"][0].api_base == "http://one.test"
    assert two.models["a"][0].api_base == "http://two.test"


# --------------------------------------------------------------------------- interpolation


def test_environment_interpolation_with_defaults_and_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOST", "gw.internal")
    monkeypatch.setenv("TEST_EMPTY", "")
    monkeypatch.delenv("TEST_UNSET", raising=False)
    settings = TollwaySettings.from_dict({
        "models": {"a": [{
            "model": "openai/gpt-4o-mini",
            "api_base": "https://${TEST_HOST}:${TEST_UNSET:-8443}/v1",
            "headers": {"X-Template": "$${NOT_A_VAR}", "X-Empty": "${TEST_EMPTY:-fallback}"},
            "timeout": "${TEST_UNSET:-15}",
        }]},
    })
    dep = settings.models["a"][0]
    assert dep.api_base == "https://gw.internal:8443/v1"
    assert dep.headers == {"X-Template": "${NOT_A_VAR}", "X-Empty": "fallback"}
    assert dep.timeout == 15.0


# --------------------------------------------------------------------------- errors


CASES = {
    "bad YAML syntax": (
        """
        models:
          smart:
            - model: openai/gpt-4o-mini
              weight: 2
               rpm: 3
        """,
        5, "models.smart.weight.rpm", "invalid YAML",
    ),
    "unclosed quote": (
        """
        models:
          smart:
            - model: openai/gpt-4o-mini
              api_base: "http://x
          other: openai/gpt-4o
        """,
        4, "models.smart.api_base", "while scanning a quoted scalar",
    ),
    "unknown key": (
        """
        models:
          smart:
            - model: openai/gpt-4o-mini
              api_bse: https://x.test
        """,
        4, "models.smart[0].api_bse", "unknown key 'api_bse' (did you mean 'api_base'?)",
    ),
    "unknown section": (
        """
        models: {a: openai/gpt-4o-mini}
        budget:
          - {limit: 1}
        """,
        2, "budget", "did you mean 'budgets'",
    ),
    "wrong type": (
        """
        models: {a: openai/gpt-4o-mini}
        router:
          retries: lots
        """,
        3, "router.retries", "expected a valid integer, got 'lots'",
    ),
    "wrong type in a union": (
        """
        models:
          a:
            - model: openai/gpt-4o-mini
              timeout: soon
        """,
        4, "models.a[0].timeout", "a number of seconds or a mapping {connect, read, total}",
    ),
    "bad enum": (
        """
        models: {a: openai/gpt-4o-mini}
        router: {strategy: fastest}
        """,
        2, "router.strategy", "'weighted', 'least_inflight', 'latency' or 'cost'",
    ),
    "literal api key": (
        f"""
        models:
          smart:
            - model: openai/gpt-4o-mini
              api_key: {SECRET}
        """,
        4, "models.smart[0].api_key", "write 'api_key: env:VAR_NAME'",
    ),
    "unknown provider": (
        """
        models:
          smart:
            - model: openai/gpt-4o-mini
            - model: opnai/gpt-4o
        """,
        4, "models.smart[1].model", "unknown provider 'opnai'",
    ),
    "not provider/model": (
        """
        models:
          smart: gpt-4o
        """,
        2, "models.smart", "expected '<provider>/<model>'",
    ),
    "fallback to an undefined alias": (
        """
        models:
          smart: openai/gpt-4o
        fallbacks:
          smart: [cheap]
        """,
        4, "fallbacks.smart[0]", "fallback to 'cheap', which is not an alias",
    ),
    "fallbacks of an undefined alias": (
        """
        models:
          smart: openai/gpt-4o
        fallbacks:
          smrt: [smart]
        """,
        4, "fallbacks.smrt", "not an alias under 'models:'",
    ),
    "hours reroute to an undefined alias": (
        """
        models: {smart: openai/gpt-4o}
        hours:
          - scope: all
            windows: mon-fri 08:00-19:00
            action: reroute
            to: cheap
        """,
        6, "hours[0].to", "reroute to 'cheap', which is not an alias",
    ),
    "unknown error group": (
        """
        models: {a: openai/gpt-4o, b: openai/gpt-4o-mini}
        fallbacks:
          a:
            - to: b
              on: [ratelimit]
        """,
        5, "fallbacks.a[0].on", "unknown error group or class 'ratelimit'",
    ),
    "missing env var": (
        """
        models:
          smart:
            - model: openai/gpt-4o-mini
              api_base: ${TOLLWAY_TEST_SURELY_UNSET}
        """,
        4, "models.smart[0].api_base", "environment variable TOLLWAY_TEST_SURELY_UNSET is not set",
    ),
    "duplicate key": (
        """
        models:
          smart: openai/gpt-4o
          smart: openai/gpt-4o-mini
        """,
        3, "models.smart", "duplicate key 'smart' (first at line 2)",
    ),
    "empty alias": (
        """
        models:
          smart: []
        """,
        2, "models.smart", "at least 1 item",
    ),
    "raw section of the wrong kind": (
        """
        budgets: 5
        """,
        1, "budgets", "expected a list or a mapping, got 5",
    ),
    "invalid price override": (
        """
        prices:
          openai/gpt-4.1:
            input: -1
            output: 8
        """,
        3, "prices.openai/gpt-4.1.input", "greater than or equal to 0",
    ),
    "one deployment name priced twice": (
        """
        models:
          fast:
            - {model: openai/gpt-4o-mini, price: {input: 0.1, output: 0.4}}
          smart:
            - {model: openai/gpt-4o-mini, price: {input: 9, output: 9}}
        """,
        5, "models.smart[0].price", "also under alias 'fast' with another price",
    ),
    "negative weight": (
        """
        models:
          a:
            - {model: openai/gpt-4o, weight: -2}
        """,
        3, "models.a[0].weight", "greater than 0, got -2",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_kind_of_mistake_names_file_line_and_key(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOLLWAY_TEST_SURELY_UNSET", raising=False)
    text, line, key, words = CASES[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert (err.file, err.line, err.key) == (str(path), line, key), str(err)
    message = str(err)
    assert message.startswith(f"{path}:{line}, key '{key}': "), message
    assert words in message
    assert SECRET not in message


def test_a_literal_key_is_never_echoed_even_through_interpolation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SECRET_KEY", SECRET)
    with pytest.raises(ConfigError) as caught:
        TollwaySettings.from_dict(
            {"models": {"a": [{"model": "openai/gpt-4o", "api_key": "${TEST_SECRET_KEY}"}]}}
        )
    assert SECRET not in str(caught.value)
    assert "env:VAR_NAME" in str(caught.value)
    assert caught.value.file == "<dict>" and caught.value.key == "models.a[0].api_key"


def test_where_and_error_locate_keys_for_other_sections(tmp_path: Path) -> None:
    path = write(tmp_path, """
        models:
          smart: openai/gpt-4o
        budgets:
          - scope: org
            limit_usd: 5
          - scope: project
            limit_usd: ten
        prices:
          openai/gpt-4.1:
            input: 2
            output: 8
    """)
    settings = load_config(path)
    assert settings is not None
    assert settings.where("budgets[1].limit_usd") == (str(path), 7)
    assert settings.where(("budgets", 1, "limit_usd")) == (str(path), 7)
    assert settings.where("budgets.1.limit_usd") == (str(path), 7)
    # a dotted model name inside a key path resolves against the keys the file has
    assert settings.where("prices.openai/gpt-4.1.output") == (str(path), 11)
    # a key the file lacks reports its closest present parent
    assert settings.where("budgets[1].period") == (str(path), 6)
    err = settings.error(("budgets", 1, "limit_usd"), "expected a number of USD, got 'ten'")
    assert isinstance(err, ConfigError)
    assert str(err) == f"{path}:7, key 'budgets[1].limit_usd': expected a number of USD, got 'ten'"


def test_errors_in_configs_built_in_code_name_the_source_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        TollwaySettings.from_dict({"router": {"cooldwn": 3}}, source="app-settings")
    assert str(caught.value).startswith("app-settings, key 'router.cooldwn': unknown key 'cooldwn'")


# --------------------------------------------------------------------------- check-config


def test_check_config_prints_the_resolved_view_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", SECRET)
    monkeypatch.delenv("TEST_MISSING_KEY", raising=False)
    monkeypatch.setenv("TEST_TOKEN", "tok-very-secret-value")
    path = write(tmp_path, """
        models:
          smart:
            - model: openai/gpt-4o
              api_key: env:TEST_OPENAI_KEY
              headers: {Authorization: "Bearer ${TEST_TOKEN}", X-Team: blue}
            - model: vllm/llama
              name: local
              api_base: http://10.0.0.5:8000/v1
              api_key: env:TEST_MISSING_KEY
              timeout: 7
          cheap: openai/gpt-4o-mini
        router: {strategy: latency, retries: 1}
        fallbacks:
          smart:
            - cheap
            - {to: cheap, on: context_window}
        budgets:
          - {name: org-cap, scope: {org: acme}, limit: 5, period: month}
        ledger: {url: "postgresql://tollway:hunter2@db/ledger"}
    """)
    assert cli_main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "smart:" in out and "cheap:" in out
    assert "- openai/gpt-4o\n" in out
    assert "base: https://api.openai.com/v1" in out
    assert "key: env:TEST_OPENAI_KEY (set)" in out
    assert "- local: vllm/llama" in out and "base: http://10.0.0.5:8000/v1" in out
    assert "key: env:TEST_MISSING_KEY (missing)" in out
    assert "read 7s" in out
    assert "headers: Authorization: ***, X-Team: blue" in out
    assert "strategy: latency" in out and "retries: 1" in out
    assert "smart -> cheap on context_window" in out
    assert "budgets: 1\n  org-cap" in out
    assert "ledger: postgresql://tollway:***@db/ledger" in out
    for secret in (SECRET, "tok-very-secret-value", "hunter2"):
        assert secret not in out
    assert out.rstrip().endswith("OK")


def test_check_config_exits_2_with_the_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, """
        models:
          smart:
            - model: openai/gpt-4o
              wieght: 2
    """)
    assert cli_main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4, key 'models.smart[0].wieght': unknown key 'wieght'" in err
    assert "did you mean 'weight'" in err


def test_check_config_catches_what_only_resolution_finds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_API_BASE", raising=False)
    path = write(tmp_path, """
        models:
          local:
            - model: openai/gpt-4o-mini
            - model: vllm/llama-3
    """)
    assert cli_main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4, key 'models.local[1]'" in err
    assert "has no default base URL" in err


def test_check_config_without_any_config_says_where_it_looked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["check-config"]) == 2
    assert "no config found" in capsys.readouterr().err
