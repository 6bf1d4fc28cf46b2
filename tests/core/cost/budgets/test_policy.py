"""Policy models: scope selectors, ids, validation messages."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from tests.core.cost.budgets.support import call_context, deployment
from tollway.core.cost.policy import BudgetPolicy, HoursPolicy, RateLimitPolicy, Scope


def test_scope_mapping_and_string_forms_are_the_same_scope() -> None:
    assert Scope.parse({"project": "search", "model": "each"}) == Scope.parse("project=search+model")
    assert Scope.parse({"tags": {"team": "ml"}}) == Scope.parse("tag:team=ml")
    assert Scope.parse(None) == Scope.parse("all") == Scope.parse({})


def test_scope_matches_attribution_and_deployment_dimensions() -> None:
    ctx = call_context(org="acme", project="search", user="alice", tags={"team": "ml"})
    dep = deployment()
    assert Scope.parse({"project": "search"}).match(ctx, dep) == "project=search"
    assert Scope.parse({"project": "other"}).match(ctx, dep) is None
    assert Scope.parse({"user": "each", "project": "search"}).match(ctx, dep) == (
        "project=search,user=alice"
    )
    assert Scope.parse({"tag:team": "ml"}).match(ctx, dep) == "tag:team=ml"
    assert Scope.parse({"model": "gpt-4o-mini"}).match(ctx, dep) == "model=gpt-4o-mini"
    assert Scope.parse({"model": "openai/gpt-4o-mini"}).match(ctx, dep) == (
        "model=openai/gpt-4o-mini"
    )
    assert Scope.parse({"model": "each"}).match(ctx, dep) == "model=openai/gpt-4o-mini"
    assert Scope.parse({"provider": "openai"}).match(ctx, dep) == "provider=openai"
    assert Scope.parse({"deployment": "openai/gpt-4o-mini"}).match(ctx, dep) is not None
    assert Scope.parse("all").match(ctx, dep) == "all"


def test_each_does_not_match_calls_without_that_dimension() -> None:
    assert Scope.parse({"user": "each"}).match(call_context(project="p"), deployment()) is None
    assert Scope.parse({"alias": "each"}).match(call_context(), deployment()) is None
    assert Scope.parse({"alias": "smart"}).match(call_context(alias="smart"), deployment()) == (
        "alias=smart"
    )


def test_values_with_separators_cannot_collide_with_other_scopes() -> None:
    scope = Scope.parse({"project": "each", "user": "each"})
    a = scope.match(call_context(project="a,user=b", user="c"), deployment())
    b = scope.match(call_context(project="a", user="b,user=c"), deployment())
    assert a != b


def test_unknown_dimension_is_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown scope dimension 'team'.*tag:<name>"):
        BudgetPolicy(scope={"team": "ml"}, limit=1, period="day")


def test_budget_id_is_the_name_or_derived_from_scope_unit_period_and_timezone() -> None:
    assert BudgetPolicy(name="search", scope={"project": "search"}, limit=1, period="day").id == "search"
    assert BudgetPolicy(scope={"user": "each"}, limit=5, period="day").id == "user/usd/day"
    assert BudgetPolicy(
        scope="project=search", limit=1, unit="requests", period="month", timezone="Europe/Berlin"
    ).id == "project=search/requests/month/Europe/Berlin"


def test_usd_limits_keep_exact_decimals_and_counts_must_be_whole() -> None:
    assert BudgetPolicy(limit=0.1, period="day").limit == Decimal("0.1")
    with pytest.raises(ValidationError, match="whole number"):
        BudgetPolicy(limit=2.5, unit="requests", period="day")
    with pytest.raises(ValidationError):
        BudgetPolicy(limit=-1, period="day")


def test_policy_validation_names_the_bad_field() -> None:
    with pytest.raises(ValidationError, match="period"):
        BudgetPolicy(limit=1, period="fortnight")
    with pytest.raises(ValidationError, match="unknown timezone"):
        BudgetPolicy(limit=1, period="day", timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="soft_threshold"):
        BudgetPolicy(limit=1, period="day", soft_threshold=1.5)
    with pytest.raises(ValidationError, match="may not contain"):
        BudgetPolicy(name="a|b", limit=1, period="day")


def test_rate_limit_needs_a_limit() -> None:
    with pytest.raises(ValidationError, match="requests_per_minute"):
        RateLimitPolicy(scope={"user": "each"})
    assert RateLimitPolicy(scope={"user": "each"}, requests_per_minute=10).id == "rate:user"


def test_hours_policy_parses_its_schedule_and_checks_reroute_target() -> None:
    policy = HoursPolicy(windows="mon-fri 08:00-19:00 Europe/Berlin", action="reroute", to="small")
    assert policy.schedule().timezone == "Europe/Berlin"
    with pytest.raises(ValidationError, match="needs 'to'"):
        HoursPolicy(windows=["mon 08:00-09:00"], action="reroute")
    with pytest.raises(ValidationError, match="not a day"):
        HoursPolicy(windows=["someday 08:00-09:00"])
