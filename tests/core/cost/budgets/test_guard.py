"""The Budgets guard through ``tollway.Model`` against the loopback fake provider:
scopes and hierarchies, units, period resets, rate limits, soft thresholds, unpriced
models, allowed hours and rerouting, streams, status rows. Memory store; the stores'
own semantics are proven by the shared store contract."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import tollway
from tests.conftest import Driver
from tests.core.cost.budgets import support
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway import errors
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.policy import BudgetPolicy, HoursPolicy, RateLimitPolicy, SoftLimitEvent
from tollway.core.cost.pricing import PriceBook, UnpricedModelWarning
from tollway.core.errors import RateLimitExceededError, UnpricedModelDeniedError
from tollway.core.model import Model
from tollway.core.reports import budget_status
from tollway.core.types import TextDelta, Usage

BERLIN = ZoneInfo("Europe/Berlin")
USAGE = Usage(input_tokens=10, output_tokens=5)
BOOK = PriceBook({
    "openai/gpt-4o-mini": support.PRICE,
    "openai/gpt-4o": {"input": 0, "output": 10},
})


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


def guard(*policies: Any, **kw: Any) -> Budgets:
    kw.setdefault("prices", BOOK)
    return Budgets(list(policies), **kw)


def model(fake: FakeProvider, g: Budgets, target: str = support.MODEL, **kw: Any) -> Model:
    fake.default = oai.text_reply("hi", usage=USAGE)
    return Model(target, api_key=support.KEY, api_base=fake.url, guards=[g], ledger=False,
                 prices=BOOK, **kw)


def rows(g: Budgets) -> dict[tuple[str, str], Any]:
    return {(r.budget, r.scope): r for r in g.status()}


# --------------------------------------------------------------------------- scopes


def test_each_user_gets_their_own_budget(fake: FakeProvider, driver: Driver) -> None:
    g = guard(BudgetPolicy(scope={"user": "each"}, limit="0.000005", period="day"))
    m = model(fake, g)
    with tollway.attribute(user="alice"):
        driver.complete(m, "hi", max_tokens=5)
        with pytest.raises(errors.BudgetExceededError) as denied:
            driver.complete(m, "hi", max_tokens=5)
    with tollway.attribute(user="bob"):
        driver.complete(m, "hi", max_tokens=5)
    assert "user=alice" in denied.value.scope
    assert len(fake.requests) == 2
    status = rows(g)
    assert status[("user/usd/day", "user=alice")].spent == status[("user/usd/day", "user=bob")].spent
    driver.complete(m, "hi", max_tokens=5)  # no user: outside every "user: each" budget


def test_a_call_is_checked_against_every_budget_it_falls_in(
    fake: FakeProvider, driver: Driver
) -> None:
    g = guard(
        BudgetPolicy(name="org", scope={"org": "acme"}, limit=1, period="month"),
        BudgetPolicy(name="project", scope={"org": "acme", "project": "search"}, limit=1,
                     period="month"),
        BudgetPolicy(name="user", scope={"user": "each"}, limit="0.00001", period="day"),
    )
    m = model(fake, g)
    with tollway.attribute(org="acme", project="search", user="alice"):
        driver.complete(m, "hi", max_tokens=5)
        driver.complete(m, "hi", max_tokens=5)
        with pytest.raises(errors.BudgetExceededError) as denied:
            driver.complete(m, "hi", max_tokens=5)
    assert denied.value.budget == "user"  # type: ignore[attr-defined]
    status = rows(g)
    # The denied call reserved nothing anywhere (all or nothing).
    for key in (("org", "org=acme"), ("project", "org=acme,project=search"),
                ("user", "user=alice")):
        assert status[key].spent == Decimal("0.00001") and status[key].reserved == 0
    assert len(fake.requests) == 2


def test_a_budget_scoped_to_a_model_leaves_other_models_alone(
    fake: FakeProvider, driver: Driver
) -> None:
    g = guard(BudgetPolicy(scope={"model": "gpt-4o"}, limit=0, period="day"))
    assert driver.complete(model(fake, g), "hi", max_tokens=5).text == "hi"
    with pytest.raises(errors.BudgetExceededError):
        driver.complete(model(fake, g, "openai/gpt-4o"), "hi", max_tokens=5)
    assert len(fake.requests) == 1


def test_denial_reports_scope_limit_spend_reservation_request_and_reset(
    fake: FakeProvider, driver: Driver
) -> None:
    clock = Clock(datetime(2025, 6, 10, 15, 0, tzinfo=BERLIN))
    g = guard(
        BudgetPolicy(name="search", scope={"project": "search"}, limit="0.00001",
                     period="day", timezone="Europe/Berlin"),
        clock=clock,
    )
    m = model(fake, g, attribution={"project": "search"})
    driver.complete(m, "hi", max_tokens=5)
    with pytest.raises(errors.BudgetExceededError) as denied:
        driver.complete(m, "hi", max_tokens=6)
    err = denied.value
    assert (err.limit, err.spent, err.reserved, err.unit) == (0.00001, 0.000005, 0, "usd")
    assert err.requested == pytest.approx(0.000006)
    assert err.resets_at == datetime(2025, 6, 11, tzinfo=BERLIN)
    assert "search" in str(err) and "project=search" in str(err)
    assert len(fake.requests) == 1


# --------------------------------------------------------------------------- units


def test_token_budget_reserves_the_estimate_and_settles_real_tokens(
    fake: FakeProvider, driver: Driver
) -> None:
    g = guard(BudgetPolicy(scope="all", limit=100, unit="tokens", period="total"))
    m = model(fake, g)
    driver.complete(m, "hi", max_tokens=50)
    row = rows(g)[("all/tokens/total", "all")]
    assert (row.spent, row.reserved, row.remaining) == (15, 0, 85)
    with pytest.raises(errors.BudgetExceededError) as denied:
        driver.complete(m, "hi", max_tokens=80)  # 8 estimated input + 80 output > 85 left
    assert denied.value.unit == "tokens" and denied.value.requested == 88
    assert row.resets_at is None


def test_input_and_output_token_budgets_count_their_side_only(
    fake: FakeProvider, driver: Driver
) -> None:
    g = guard(
        BudgetPolicy(name="in", limit=1000, unit="input_tokens", period="day"),
        BudgetPolicy(name="out", limit=1000, unit="output_tokens", period="day"),
    )
    driver.complete(model(fake, g), "hi", max_tokens=50)
    status = rows(g)
    assert (status[("in", "all")].spent, status[("out", "all")].spent) == (10, 5)


def test_request_budget_counts_calls(fake: FakeProvider, driver: Driver) -> None:
    g = guard(BudgetPolicy(limit=2, unit="requests", period="hour"))
    m = model(fake, g)
    driver.complete(m, "hi")
    driver.complete(m, "hi")
    with pytest.raises(errors.BudgetExceededError, match="limit 2 requests"):
        driver.complete(m, "hi")
    assert len(fake.requests) == 2


def test_unpriced_model_is_denied_by_a_usd_budget_by_default(
    fake: FakeProvider, driver: Driver
) -> None:
    g = guard(BudgetPolicy(limit=100, period="day"), prices=PriceBook())
    m = model(fake, g, "openai/tollway-unknown-model-x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnpricedModelWarning)
        with pytest.raises(UnpricedModelDeniedError, match=r"no known price.*unpriced: allow"):
            driver.complete(m, "hi")
    assert fake.requests == []


def test_unpriced_allow_lets_the_call_through_at_zero_usd(
    fake: FakeProvider, driver: Driver
) -> None:
    g = guard(
        BudgetPolicy(limit="0.01", period="day", unpriced="allow"),
        BudgetPolicy(name="tok", limit=10_000, unit="tokens", period="day"),
        prices=PriceBook(),
    )
    m = model(fake, g, "openai/tollway-unknown-model-x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnpricedModelWarning)
        assert driver.complete(m, "hi").cost_nanos is None
    status = rows(g)
    assert status[("all/usd/day", "all")].spent == 0
    assert status[("tok", "all")].spent == 15  # token budgets need no price


# --------------------------------------------------------------------------- periods


def test_day_budget_resets_at_midnight_in_its_timezone(fake: FakeProvider, driver: Driver) -> None:
    clock = Clock(datetime(2025, 3, 29, 23, 59, 59, tzinfo=BERLIN))
    g = guard(BudgetPolicy(limit="0.000005", period="day", timezone="Europe/Berlin"), clock=clock)
    m = model(fake, g)
    driver.complete(m, "hi", max_tokens=5)
    with pytest.raises(errors.BudgetExceededError) as denied:
        driver.complete(m, "hi", max_tokens=5)
    assert denied.value.resets_at == datetime(2025, 3, 30, tzinfo=BERLIN)
    clock.set(datetime(2025, 3, 30, 0, 0, tzinfo=BERLIN))  # the DST-change day begins
    driver.complete(m, "hi", max_tokens=5)
    with pytest.raises(errors.BudgetExceededError) as again:
        driver.complete(m, "hi", max_tokens=5)
    # The next day starts 23 real hours later (clocks jump forward that night).
    assert again.value.resets_at is not None
    assert again.value.resets_at.timestamp() - clock.now == 23 * 3600
    assert len(fake.requests) == 2


def test_month_budget_resets_on_the_first_after_a_leap_february(
    fake: FakeProvider, driver: Driver
) -> None:
    clock = Clock(datetime(2024, 2, 29, 23, 0, tzinfo=UTC))
    g = guard(BudgetPolicy(limit="0.000005", period="month"), clock=clock)
    m = model(fake, g)
    driver.complete(m, "hi", max_tokens=5)
    with pytest.raises(errors.BudgetExceededError) as denied:
        driver.complete(m, "hi", max_tokens=5)
    assert denied.value.resets_at == datetime(2024, 3, 1, tzinfo=UTC)
    clock.set(datetime(2024, 3, 1, tzinfo=UTC))
    driver.complete(m, "hi", max_tokens=5)


def test_reservation_of_a_holder_that_never_returns_expires_after_its_ttl(
    driver: Driver,
) -> None:
    clock = Clock(datetime(2025, 1, 1, 12, tzinfo=UTC))
    g = guard(BudgetPolicy(limit="0.000005", period="day"), clock=clock, reservation_ttl=30)
    driver.reserve(g, support.call_context(), support.deployment())  # never settled
    with pytest.raises(errors.BudgetExceededError):
        driver.reserve(g, support.call_context(), support.deployment())
    clock.now += 30
    hold = driver.reserve(g, support.call_context(), support.deployment())
    driver.settle(hold, USAGE, support.CALL_NANOS)
    driver.settle(hold, USAGE, support.CALL_NANOS)  # a second settle changes nothing
    driver.release(hold)
    (row,) = g.status()
    assert (row.spent, row.reserved) == (Decimal("0.000005"), 0)


# --------------------------------------------------------------------------- rate limits


def test_requests_per_minute_denies_with_retry_after_and_resets_next_minute(
    fake: FakeProvider,
    driver: Driver,
) -> None:
    clock = Clock(datetime(2025, 1, 1, 12, 0, 15, tzinfo=UTC))
    g = guard(rate_limits=[RateLimitPolicy(scope={"user": "each"}, requests_per_minute=2)],
              clock=clock)
    m = model(fake, g, attribution={"user": "alice"})
    driver.complete(m, "hi")
    driver.complete(m, "hi")
    with pytest.raises(RateLimitExceededError) as denied:
        driver.complete(m, "hi")
    assert denied.value.retry_after == 45
    assert isinstance(denied.value, errors.BudgetExceededError)
    assert "rate limit for user=alice" in str(denied.value)
    clock.now += 45
    driver.complete(m, "hi")
    assert len(fake.requests) == 3


def test_tokens_per_minute_reserve_the_estimate_and_keep_the_real_count(
    fake: FakeProvider,
    driver: Driver,
) -> None:
    clock = Clock(datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC))
    g = guard(rate_limits=[RateLimitPolicy(tokens_per_minute=100)], clock=clock)
    m = model(fake, g)
    driver.complete(m, "hi", max_tokens=60)  # reserves 68, settles 15
    driver.complete(m, "hi", max_tokens=60)  # fits again because only 15 were used
    (row,) = g.status()
    assert (row.budget, row.spent, row.reserved) == ("rate:all/tokens", 30, 0)
    with pytest.raises(RateLimitExceededError):
        driver.complete(m, "hi", max_tokens=70)


# --------------------------------------------------------------------------- soft threshold


def test_soft_threshold_fires_once_per_period(
    fake: FakeProvider, caplog: Any, driver: Driver
) -> None:
    clock = Clock(datetime(2025, 1, 1, 10, tzinfo=UTC))
    events: list[SoftLimitEvent] = []
    g = guard(
        BudgetPolicy(limit="0.00002", period="day", soft_threshold=0.5, on_soft_limit=events.append),
        clock=clock,
    )
    m = model(fake, g)
    driver.complete(m, "hi", max_tokens=5)
    assert events == []
    driver.complete(m, "hi", max_tokens=5)  # 10,000 of 20,000 nano-USD: crosses 50%
    driver.complete(m, "hi", max_tokens=5)
    assert len(events) == 1
    assert (events[0].spent, events[0].limit, events[0].threshold) == (0.00001, 0.00002, 0.5)
    assert "reached 50% of its limit" in caplog.text
    clock.set(datetime(2025, 1, 2, 10, tzinfo=UTC))
    driver.complete(m, "hi", max_tokens=5)
    driver.complete(m, "hi", max_tokens=5)
    assert len(events) == 2 and events[1].period_start > events[0].period_start


def test_a_failing_soft_limit_callback_does_not_fail_the_call(
    fake: FakeProvider, driver: Driver
) -> None:
    def boom(event: SoftLimitEvent) -> None:
        raise RuntimeError("callback bug")

    g = guard(BudgetPolicy(limit="0.00001", period="day", soft_threshold=0.1), on_soft_limit=boom)
    assert driver.complete(model(fake, g), "hi", max_tokens=5).text == "hi"


# --------------------------------------------------------------------------- allowed hours


def test_outside_allowed_hours_the_call_is_denied_with_next_open(
    fake: FakeProvider, driver: Driver
) -> None:
    clock = Clock(datetime(2025, 1, 11, 12, tzinfo=BERLIN))  # Saturday
    g = guard(hours=[HoursPolicy(scope={"project": "search"},
                                 windows=["mon-fri 08:00-19:00"], timezone="Europe/Berlin")],
              clock=clock)
    m = model(fake, g)
    with tollway.attribute(project="search"), pytest.raises(errors.OutsideAllowedHoursError) as denied:
        driver.complete(m, "hi")
    assert denied.value.next_open == datetime(2025, 1, 13, 8, tzinfo=BERLIN)
    assert denied.value.reroute_to is None  # type: ignore[attr-defined]
    assert "mon-fri 08:00-19:00 Europe/Berlin" in str(denied.value)
    with tollway.attribute(project="other"):
        driver.complete(m, "hi")  # outside the policy's scope
    clock.set(datetime(2025, 1, 13, 8, tzinfo=BERLIN))
    with tollway.attribute(project="search"):
        driver.complete(m, "hi")
    assert len(fake.requests) == 2


def test_reroute_policy_names_the_alias_and_does_not_apply_on_that_alias(
    driver: Driver,
) -> None:
    clock = Clock(datetime(2025, 1, 11, 23, tzinfo=UTC))
    g = guard(hours=[HoursPolicy(windows=["mon-fri 08:00-19:00"], action="reroute", to="small")],
              clock=clock)
    with pytest.raises(errors.OutsideAllowedHoursError) as denied:
        driver.reserve(g, support.call_context(alias="big"), support.deployment())
    assert denied.value.reroute_to == "small"  # type: ignore[attr-defined]
    driver.reserve(g, support.call_context(alias="small"), support.deployment())


def test_config_reroutes_off_hours_calls_to_the_cheaper_alias(
    fake: FakeProvider, monkeypatch: Any, driver: Driver
) -> None:
    monkeypatch.setenv("TW_BUDGET_TEST_KEY", support.KEY)
    today = datetime.now(UTC).date()
    from tollway.core.config import TollwaySettings

    settings = TollwaySettings.from_dict({
        "models": {
            "big": [{"model": "openai/gpt-4o", "api_base": fake.url,
                     "api_key": "env:TW_BUDGET_TEST_KEY"}],
            "small": [{"model": "openai/gpt-4o-mini", "api_base": fake.url,
                       "api_key": "env:TW_BUDGET_TEST_KEY"}],
        },
        "hours": [{
            "scope": {"alias": "big"}, "windows": ["daily"], "action": "reroute", "to": "small",
            "holidays": [str(today - timedelta(days=1)), str(today), str(today + timedelta(days=1))],
        }],
        "budget_store": {"backend": "memory"},
        "ledger": False,
    })
    fake.default = oai.text_reply("hi", usage=USAGE)
    response = driver.complete(Model("big", config=settings), "hi")
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini"]
    assert response.text == "hi"


# --------------------------------------------------------------------------- streams, async


def test_stream_settles_its_real_cost_when_it_ends(fake: FakeProvider, driver: Driver) -> None:
    g = guard(BudgetPolicy(limit=1, period="day"))
    m = model(fake, g)
    fake.add(oai.text_stream(["a", "b"], usage=Usage(input_tokens=10, output_tokens=7)))
    response = driver.stream_collect(m, "hi", max_tokens=20).response
    (row,) = g.status()
    assert response.cost_nanos == 7_000
    assert (row.spent, row.reserved) == (Decimal("0.000007"), 0)


def test_stream_closed_before_usage_arrives_settles_an_estimate_and_releases_the_rest(
    fake: FakeProvider, driver: Driver
) -> None:
    """The provider bills the tokens it produced even when its usage never arrived: the
    hold settles at the estimate (here one output token, "a", at $1/M output with input
    free) and the rest of the reservation is released."""
    g = guard(BudgetPolicy(limit=1, period="day"))
    m = model(fake, g)
    reply = oai.text_stream(["a", "b", "c"], usage=Usage(input_tokens=10, output_tokens=7))
    # Chunks 50 ms apart, so usage truly arrives after the close: written back to back,
    # the async transport reads the whole body at once and the usage would already be
    # known (and billed, as a partial charge) when the stream closes.
    reply.chunk_delay = 0.05
    fake.add(reply)
    stream = driver.stream_collect(
        m, "hi", max_tokens=20, until=lambda event: isinstance(event, TextDelta)
    )
    assert stream.response is None  # closed before it ended
    (row,) = g.status()
    assert (row.spent, row.reserved) == (Decimal("0.000001"), 0)
    assert g.store.counters(0)[0].released_total == 20_000 - 1_000


async def test_async_calls_share_the_budget_with_sync_calls(fake: FakeProvider) -> None:
    g = guard(BudgetPolicy(scope={"user": "each"}, limit="0.00001", period="day"))
    m = model(fake, g, attribution={"user": "alice"})
    await m.acomplete("hi", max_tokens=5)
    m.complete("hi", max_tokens=5)
    with pytest.raises(errors.BudgetExceededError):
        await m.acomplete("hi", max_tokens=5)
    rows_ = await g.astatus()
    assert [(r.scope, r.spent) for r in rows_] == [("user=alice", Decimal("0.00001"))]


# --------------------------------------------------------------------------- status


def test_status_lists_fixed_scopes_before_any_call_and_one_row_per_each_value(
    fake: FakeProvider,
    driver: Driver,
) -> None:
    clock = Clock(datetime(2025, 5, 20, 9, tzinfo=UTC))
    g = guard(
        BudgetPolicy(name="search", scope={"project": "search"}, limit=200, period="month"),
        BudgetPolicy(scope={"user": "each"}, limit=5, period="day"),
        rate_limits=[RateLimitPolicy(scope={"user": "each"}, requests_per_minute=10)],
        clock=clock,
    )
    before = budget_status(g)
    assert [(r.budget, r.scope) for r in before] == [
        ("search", "project=search"), ("user/usd/day", "user=*"), ("rate:user/requests", "user=*"),
    ]
    m = model(fake, g)
    for user in ("bob", "alice"):
        with tollway.attribute(user=user):
            driver.complete(m, "hi", max_tokens=5)
    after = budget_status(g)
    assert [(r.budget, r.scope) for r in after] == [
        ("search", "project=search"),
        ("user/usd/day", "user=alice"), ("user/usd/day", "user=bob"),
        ("rate:user/requests", "user=alice"), ("rate:user/requests", "user=bob"),
    ]
    alice = after[1]
    assert (alice.limit, alice.reserved) == (5, 0)
    assert alice.spent + alice.remaining == 5
    assert alice.resets_at == datetime(2025, 5, 21, tzinfo=UTC)
    assert alice.as_dict()["spent"] == pytest.approx(0.000005)
    assert after[3].as_dict()["spent"] == 1
    assert after[0].as_dict()["resets_at"] == "2025-06-01T00:00:00+00:00"


def test_budget_status_of_a_settings_object_uses_its_shared_guard(
    fake: FakeProvider, monkeypatch: Any, driver: Driver
) -> None:
    monkeypatch.setenv("TW_BUDGET_TEST_KEY", support.KEY)
    from tollway.core.config import TollwaySettings

    settings = TollwaySettings.from_dict({
        "models": {"m": [{"model": "openai/gpt-4o-mini", "api_base": fake.url,
                          "api_key": "env:TW_BUDGET_TEST_KEY"}]},
        "budgets": [{"scope": {"project": "p"}, "limit": 1, "period": "day"}],
        "budget_store": {"backend": "memory"},
        "prices": {"openai/gpt-4o-mini": support.PRICE},
        "ledger": False,
    })
    fake.default = oai.text_reply("hi", usage=USAGE)
    driver.complete(Model("m", config=settings, attribution={"project": "p"}), "hi", max_tokens=5)
    (row,) = budget_status(settings)
    assert row.spent == Decimal("0.000005")


def test_policies_may_be_given_as_config_mappings() -> None:
    g = Budgets([{"scope": {"user": "each"}, "limit": 5, "period": "day"}],
                hours=[{"windows": "mon 08:00-09:00"}],
                rate_limits=[{"requests_per_minute": 3}])
    assert (len(g.policies), len(g.hours), len(g.rate_limits)) == (1, 1, 1)
    assert date(2025, 1, 6).weekday() == 0
