"""The router: failover, retries with backoff, Retry-After, cooldown with half-open probe,
fallback chains, balancing, budget/hours-aware routing.

The first half drives :class:`Router` directly through the Route protocol with a
scripted ``attempt`` (the seam the Model uses) and a fake clock, so timing decisions are
checked exactly and nothing sleeps. The second half runs ``tollway.Model`` on aliases
from a config against real loopback fake providers.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

import tollway
from tests.conftest import Driver
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Reply
from tollway import errors
from tollway.core.config import TollwaySettings
from tollway.core.cost.attribution import Attribution
from tollway.core.hooks import CallContext
from tollway.core.inputs import build_request
from tollway.core.providers import Deployment, resolve_deployment
from tollway.core.routing import FallbackRule, RoutePolicy, Router
from tollway.core.routing.health import HealthBoard
from tollway.core.types import TextDelta

KEY = "sk-test-routing-key-0123456789"


# =========================================================================== helpers


class FakeTime:
    """A clock that only moves when the router sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def dep(name: str, *, weight: float = 1.0, model: str = "openai/gpt-4o-mini", **kw: Any) -> Deployment:
    return resolve_deployment(
        model, api_key=KEY, api_base=f"http://{name.lower()}.test/v1", name=name, weight=weight, **kw
    )


def ctx(alias: str = "smart") -> CallContext:
    return CallContext(
        request=build_request("hi"), attribution=Attribution(), trace_id="t", stream=False,
        alias=alias, started=0.0, started_at=datetime.now(UTC),
    )


Outcome = Any  # a value to return, or an exception factory


class Script:
    """The attempt callable: per deployment name, a list of outcomes played in order
    (the last one repeats). Records the order of deployments tried."""

    def __init__(self, **plans: list[Outcome]) -> None:
        self.plans = plans
        self.calls: list[str] = []

    def __call__(self, deployment: Deployment) -> Any:
        self.calls.append(deployment.name)
        plan = self.plans[deployment.name]
        outcome = plan.pop(0) if len(plan) > 1 else plan[0]
        if isinstance(outcome, type) or callable(outcome):
            raise outcome()
        return outcome


def server_error() -> errors.ProviderError:
    return errors.ServerError("upstream exploded", status=500)


def rate_limited(after: float | None = None) -> Callable[[], errors.ProviderError]:
    return lambda: errors.RateLimitError("slow down", status=429, retry_after=after)


def router(
    aliases: dict[str, list[Deployment]],
    t: FakeTime,
    *,
    root: str = "smart",
    fallbacks: dict[str, list[FallbackRule]] | None = None,
    board: HealthBoard | None = None,
    seed: int = 7,
    **policy: Any,
) -> Router:
    return Router(
        root, aliases, fallbacks=fallbacks, policy=RoutePolicy(**policy),
        board=board, clock=t.clock, sleep=t.sleep, asleep=t.asleep,
        rng=random.Random(seed),
    )


def on(*classes: type[BaseException]) -> tuple[type[BaseException], ...]:
    return classes


# =========================================================================== failover and retries


def test_failover_goes_to_a_different_deployment_immediately(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9), dep("B", weight=1e-9)
    script = Script(A=[server_error], B=["ok-from-B"])
    assert driver.route(router({"smart": [a, b]}, t), ctx(), script) == "ok-from-B"
    assert script.calls == ["A", "B"]
    assert t.sleeps == []  # no backoff while another deployment was ready


def test_backoff_sleeps_only_after_every_candidate_failed_with_full_jitter(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A"), dep("B")
    script = Script(A=[server_error], B=[server_error])
    r = router({"smart": [a, b]}, t, retries=2, backoff_base=1.0, backoff_max=3.0, max_attempts=50)
    board = r.board
    with pytest.raises(errors.AllDeploymentsFailedError) as caught:
        driver.route(r, ctx(), script)
    # 3 rounds of 2 deployments, a sleep between rounds only (first round 2 tries, no sleep)
    assert len(script.calls) == 6
    assert sorted(script.calls[:2]) == ["A", "B"] and sorted(script.calls[2:4]) == ["A", "B"]
    assert len(t.sleeps) == 2
    assert 0 <= t.sleeps[0] <= 1.0 and 0 <= t.sleeps[1] <= 2.0  # base * 2**round, jittered
    assert [name for name, _ in caught.value.attempts] == script.calls
    assert all(isinstance(e, errors.ServerError) for _, e in caught.value.attempts)
    assert "retries (2) exhausted" in str(caught.value)
    assert board.health(a).in_flight == 0 and board.health(b).in_flight == 0


def test_jitter_is_spread_over_the_whole_window(driver: Driver) -> None:
    delays = []
    for seed in range(40):
        t = FakeTime()
        script = Script(A=[server_error, "ok"])
        r = router({"smart": [dep("A")]}, t, seed=seed, backoff_base=2.0, backoff_max=8.0)
        driver.route(r, ctx(), script)
        delays += t.sleeps
    assert len(delays) == 40 and all(0 <= d <= 2.0 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 1.5  # full jitter, not "base plus a little"


def test_retry_after_is_honoured_and_capped(driver: Driver) -> None:
    t = FakeTime()
    script = Script(A=[rate_limited(1.0), "ok"])
    assert driver.route(router({"smart": [dep("A")]}, t, backoff_base=0.01), ctx(), script) == "ok"
    assert t.sleeps == [pytest.approx(1.0)]

    t = FakeTime()
    script = Script(A=[rate_limited(600.0), "ok"])
    r = router({"smart": [dep("A")]}, t, backoff_base=0.01, retry_after_cap=2.5)
    assert driver.route(r, ctx(), script) == "ok"
    assert t.sleeps == [pytest.approx(2.5)]


@pytest.mark.parametrize(
    "error",
    [
        lambda: errors.BadRequestError("bad field", status=400),
        lambda: errors.ContextWindowExceededError("too long", status=400),
        lambda: errors.ContentFilterError("refused", status=400),
    ],
    ids=["400", "context window", "content filter"],
)
def test_request_errors_are_raised_as_is_without_retry_or_failover(
    error: Callable[[], Exception], driver: Driver
) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9), dep("B", weight=1e-9)
    script = Script(A=[error], B=["ok"])
    with pytest.raises(type(error())):
        driver.route(router({"smart": [a, b]}, t), ctx(), script)
    assert script.calls == ["A"] and t.sleeps == []


def test_auth_and_not_found_fail_over_and_are_never_retried_in_the_call(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9), dep("B", weight=1e-9)
    script = Script(A=[lambda: errors.AuthenticationError("bad key", status=401)], B=[server_error, "ok"])
    assert driver.route(router({"smart": [a, b]}, t), ctx(), script) == "ok"
    assert script.calls == ["A", "B", "B"]  # the next round skips the dead A
    assert len(t.sleeps) == 1


def test_max_attempts_caps_the_call(driver: Driver) -> None:
    t = FakeTime()
    deps = [dep(n) for n in "ABCDEF"]
    script = Script(**{n: [server_error] for n in "ABCDEF"})
    with pytest.raises(errors.AllDeploymentsFailedError) as caught:
        driver.route(router({"smart": deps}, t, max_attempts=4), ctx(), script)
    assert len(script.calls) == 4 and len(caught.value.attempts) == 4
    assert "max_attempts (4)" in str(caught.value)


def test_total_timeout_stops_before_a_sleep_would_pass_it(driver: Driver) -> None:
    t = FakeTime()
    script = Script(A=[rate_limited(5.0)])
    r = router({"smart": [dep("A")]}, t, total_timeout=3.0, retry_after_cap=30)
    with pytest.raises(errors.AllDeploymentsFailedError, match="total_timeout"):
        driver.route(r, ctx(), script)
    assert script.calls == ["A"] and t.sleeps == []


def test_non_routing_errors_propagate_and_free_the_deployment(driver: Driver) -> None:
    t = FakeTime()
    a = dep("A")
    r = router({"smart": [a]}, t)

    def broken(_: Deployment) -> Any:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        driver.route(r, ctx(), broken)
    with pytest.raises(errors.ToolArgumentsError):
        driver.route(r, ctx(), Script(A=[lambda: errors.ToolArgumentsError("t", "{", "bad")]))
    assert r.board.health(a).in_flight == 0


# =========================================================================== circuit breaker


def test_cooldown_after_allowed_fails_then_a_single_half_open_probe(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9), dep("B", weight=1e-9)
    board = HealthBoard(allowed_fails=2, cooldown=30.0)
    r = router({"smart": [a, b]}, t, board=board)
    script = Script(A=[server_error], B=["ok"])
    for _ in range(5):
        assert driver.route(r, ctx(), script) == "ok"
    assert script.calls.count("A") == 2  # then A cools down and B serves alone
    assert board.ready_at(a, t.now) == pytest.approx(t.now + 30.0)

    t.now += 31  # cooldown over: exactly one caller may probe A
    assert board.claim(a, t.now) is True
    assert board.claim(a, t.now) is False
    board.failed(a, t.now, "transient")  # the probe failed: open again, full cooldown
    assert board.ready_at(a, t.now) == pytest.approx(t.now + 30.0)

    t.now += 31
    script.plans["A"] = ["ok-from-A"]
    calls_before = len(script.calls)
    assert driver.route(r, ctx(), script) == "ok-from-A"  # the probe succeeded: closed again
    assert script.calls[calls_before:] == ["A"]
    assert board.health(a).fails == 0 and not board.health(a).tripped


def test_a_request_error_on_a_deployment_does_not_count_against_its_health(driver: Driver) -> None:
    t = FakeTime()
    a = dep("A")
    r = router({"smart": [a]}, t, board=HealthBoard(allowed_fails=1))
    for _ in range(3):
        with pytest.raises(errors.BadRequestError):
            driver.route(r, ctx(), Script(A=[lambda: errors.BadRequestError("bad", status=400)]))
    assert r.board.ready_at(a, t.now) == t.now


def test_all_cooling_fails_fast_when_the_wait_is_too_long(driver: Driver) -> None:
    t = FakeTime()
    a = dep("A")
    board = HealthBoard(allowed_fails=1, cooldown=120.0)
    r = router({"smart": [a]}, t, board=board, backoff_max=8.0, retry_after_cap=10.0)
    with pytest.raises(errors.AllDeploymentsFailedError):
        driver.route(r, ctx(), Script(A=[server_error]))
    script = Script(A=["ok"])
    with pytest.raises(errors.AllDeploymentsFailedError, match="cooling down") as caught:
        driver.route(r, ctx(), script)
    assert script.calls == [] and caught.value.attempts == []
    assert "A: ServerError: upstream exploded" in str(caught.value)  # why it cools
    assert t.sleeps == []


def test_a_cooldown_shorter_than_the_backoff_is_waited_out_then_probed(driver: Driver) -> None:
    t = FakeTime()
    a = dep("A")
    board = HealthBoard(allowed_fails=1, cooldown=2.0)
    r = router({"smart": [a]}, t, board=board, retries=0, backoff_max=8.0)
    with pytest.raises(errors.AllDeploymentsFailedError):
        driver.route(r, ctx(), Script(A=[server_error]))
    r.policy = RoutePolicy(retries=1, backoff_base=0.01, backoff_max=8.0)
    script = Script(A=["probe-ok"])
    assert driver.route(r, ctx(), script) == "probe-ok"
    assert t.sleeps == [pytest.approx(2.0)] and script.calls == ["A"]
    assert not board.health(a).tripped


def test_health_is_consistent_under_concurrent_threads(driver: Driver) -> None:
    a, b = dep("A"), dep("B")
    board = HealthBoard(allowed_fails=3, cooldown=60.0)
    r = Router("smart", {"smart": [a, b]}, board=board, policy=RoutePolicy(retries=0))
    served: list[str] = []
    lock = threading.Lock()

    def attempt(d: Deployment) -> str:
        time.sleep(0.001)
        if d.name == "A":
            raise errors.ServerError("down", status=503)
        with lock:
            served.append(d.name)
        return d.name

    threads = [threading.Thread(target=lambda: driver.route(r, ctx(), attempt)) for _ in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(served) == 40  # every call served by B
    assert board.health(a).in_flight == 0 and board.health(b).in_flight == 0
    assert board.health(a).tripped


def test_rpm_limit_skips_a_deployment_like_a_cooling_one(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9, rpm=2), dep("B", weight=1e-9)
    script = Script(A=["A"], B=["B"])
    r = router({"smart": [a, b]}, t)
    assert [driver.route(r, ctx(), script) for _ in range(4)] == ["A", "A", "B", "B"]
    t.now += 61
    assert driver.route(r, ctx(), script) == "A"


# =========================================================================== fallbacks


def test_context_window_falls_back_to_the_larger_alias_without_sleeping(driver: Driver) -> None:
    t = FakeTime()
    small, big = dep("small"), dep("big", model="openai/gpt-4.1")
    script = Script(small=[lambda: errors.ContextWindowExceededError("too long", status=400)], big=["big-ok"])
    r = router(
        {"smart": [small], "long": [big]}, t,
        fallbacks={"smart": [FallbackRule("long", on(errors.ContextWindowExceededError))]},
    )
    c = ctx()
    assert driver.route(r, c, script) == "big-ok"
    assert script.calls == ["small", "big"] and t.sleeps == []
    assert c.alias == "long"  # ledger rows and guards see the alias that served


def test_fallback_rules_only_fire_on_their_error_classes(driver: Driver) -> None:
    t = FakeTime()
    script = Script(A=[lambda: errors.ContentFilterError("refused", status=400)], B=["ok"])
    r = router(
        {"smart": [dep("A")], "other": [dep("B")]}, t,
        fallbacks={"smart": [FallbackRule("other", on(errors.RateLimitError, errors.ServerError))]},
    )
    with pytest.raises(errors.ContentFilterError):
        driver.route(r, ctx(), script)
    assert script.calls == ["A"]


def test_fallback_chain_shares_one_attempt_budget_and_never_restarts_retries(
    driver: Driver
) -> None:
    t = FakeTime()
    aliases = {"a": [dep("A1"), dep("A2")], "b": [dep("B1")], "c": [dep("C1")]}
    script = Script(A1=[server_error], A2=[server_error], B1=[server_error], C1=[server_error])
    any_error = on(errors.ProviderError)
    r = router(
        aliases, t, root="a", retries=1, max_attempts=100,
        fallbacks={"a": [FallbackRule("b", any_error)], "b": [FallbackRule("c", any_error)]},
    )
    with pytest.raises(errors.AllDeploymentsFailedError) as caught:
        driver.route(r, ctx("a"), script)
    # two rounds over the whole chain (1 retry), one sleep: not one retry cycle per alias
    assert len(script.calls) == 8 and len(t.sleeps) == 1
    assert script.calls[2:4] == ["B1", "C1"] and script.calls[6:] == ["B1", "C1"]
    assert len(caught.value.attempts) == 8


def test_an_exhausted_fallback_returns_to_the_parents_next_rule(driver: Driver) -> None:
    t = FakeTime()
    aliases = {"a": [dep("A")], "b": [dep("B")], "c": [dep("C")]}
    script = Script(A=[server_error], B=[server_error], C=["from-c"])
    any_error = on(errors.ProviderError)
    r = router(
        aliases, t, root="a",
        fallbacks={"a": [FallbackRule("b", any_error), FallbackRule("c", any_error)]},
    )
    assert driver.route(r, ctx("a"), script) == "from-c"
    assert script.calls == ["A", "B", "C"] and t.sleeps == []


def test_a_cooling_alias_falls_back_without_trying_it(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A"), dep("B")
    board = HealthBoard(allowed_fails=1, cooldown=60)
    r = router(
        {"smart": [a], "backup": [b]}, t, board=board,
        fallbacks={"smart": [FallbackRule("backup", on(errors.ServerError))]},
    )
    script = Script(A=[server_error], B=["ok"])
    assert driver.route(r, ctx(), script) == "ok"
    assert driver.route(r, ctx(), script) == "ok"
    assert script.calls == ["A", "B", "B"]


# =========================================================================== guards


def budget_denied() -> errors.BudgetExceededError:
    return errors.BudgetExceededError("model:openai/gpt-4o", 10.0, 10.0, 0.0)


def test_a_budget_denial_skips_the_deployment_and_another_serves(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9), dep("B", weight=1e-9)
    script = Script(A=[budget_denied], B=["ok"])
    assert driver.route(router({"smart": [a, b]}, t), ctx(), script) == "ok"
    assert script.calls == ["A", "B"] and t.sleeps == []


def test_when_guards_deny_everywhere_the_first_denial_itself_is_raised(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9), dep("B", weight=1e-9)
    first = budget_denied()
    script = Script(A=[lambda: first], B=[budget_denied])
    with pytest.raises(errors.BudgetExceededError) as caught:
        driver.route(router({"smart": [a, b]}, t), ctx(), script)
    assert caught.value is first and t.sleeps == []
    assert script.calls == ["A", "B"]


def test_outside_hours_with_reroute_continues_on_that_alias_without_failure(driver: Driver) -> None:
    t = FakeTime()

    def closed() -> errors.OutsideAllowedHoursError:
        error = errors.OutsideAllowedHoursError("org acme", "mon-fri 08:00-19:00", None)
        error.reroute_to = "cheap"  # type: ignore[attr-defined]
        return error

    script = Script(A=[closed], C=["cheap-ok"])
    c = ctx()
    r = router({"smart": [dep("A")], "cheap": [dep("C")]}, t, max_attempts=1)
    assert driver.route(r, c, script) == "cheap-ok"  # the reroute did not use up the one attempt
    assert script.calls == ["A", "C"] and c.alias == "cheap" and t.sleeps == []


# =========================================================================== balancing


def test_weighted_random_follows_the_weights(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=3), dep("B", weight=1)
    r = router({"smart": [a, b]}, t, seed=1)
    script = Script(A=["A"], B=["B"])
    picks = [driver.route(r, ctx(), script) for _ in range(2000)]
    assert 0.70 < picks.count("A") / 2000 < 0.80


def test_least_inflight_picks_the_idle_deployment(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A"), dep("B")
    r = router({"smart": [a, b]}, t, strategy="least_inflight")
    assert r.board.claim(a, t.now)  # a call in flight on A
    script = Script(A=["A"], B=["B"])
    assert {driver.route(r, ctx(), script) for _ in range(20)} == {"B"}


def test_latency_strategy_prefers_the_faster_deployment_once_measured(driver: Driver) -> None:
    t = FakeTime()
    fast, slow = dep("fast"), dep("slow")
    r = router({"smart": [fast, slow]}, t, strategy="latency")

    def attempt(d: Deployment) -> str:
        t.now += 0.05 if d.name == "fast" else 0.8
        return d.name

    picks = [driver.route(r, ctx(), attempt) for _ in range(30)]
    assert set(picks[:2]) == {"fast", "slow"}  # both measured first
    assert picks[2:] == ["fast"] * 28
    assert r.board.health(fast).latency == pytest.approx(0.05)


def test_cost_strategy_picks_the_cheapest_priced_deployment(driver: Driver) -> None:
    from tollway.core.cost.pricing import PriceBook

    t = FakeTime()
    pricey, cheap = dep("pricey", model="openai/model-a"), dep("cheap", model="openai/model-b")
    prices = PriceBook({"openai/model-a": {"input": 5, "output": 15}, "openai/model-b": {"input": 0.1, "output": 0.4}})
    r = Router(
        "smart", {"smart": [pricey, cheap]}, policy=RoutePolicy(strategy="cost"), prices=prices,
        clock=t.clock, sleep=t.sleep,
    )
    script = Script(pricey=["pricey"], cheap=["cheap"])
    assert {driver.route(r, ctx(), script) for _ in range(20)} == {"cheap"}


def test_cost_strategy_reads_a_per_deployment_price_of_the_same_model(driver: Driver) -> None:
    """Two deployments of one model priced apart by deployment name (``price:`` in
    tollway.yaml): the cheaper one serves (the strategy read only the model's price)."""
    from tollway.core.cost.pricing import PriceBook

    t = FakeTime()
    pricey, cheap = dep("pricey"), dep("cheap")
    prices = PriceBook({"pricey": {"input": 5, "output": 15}, "cheap": {"input": 0.1, "output": 0.4}})
    r = Router(
        "smart", {"smart": [pricey, cheap]}, policy=RoutePolicy(strategy="cost"), prices=prices,
        clock=t.clock, sleep=t.sleep,
    )
    script = Script(pricey=["pricey"], cheap=["cheap"])
    assert {driver.route(r, ctx(), script) for _ in range(20)} == {"cheap"}


def test_cost_strategy_without_prices_falls_back_to_weighted(driver: Driver) -> None:
    from tollway.core.cost.pricing import PriceBook

    t = FakeTime()
    a, b = dep("A", model="openai/unpriced-1"), dep("B", model="openai/unpriced-2")
    r = Router(
        "smart", {"smart": [a, b]}, policy=RoutePolicy(strategy="cost"), prices=PriceBook(),
        clock=t.clock, sleep=t.sleep, rng=random.Random(3),
    )
    script = Script(A=["A"], B=["B"])
    with pytest.warns(UserWarning, match="no price known"):
        picks = {driver.route(r, ctx(), script) for _ in range(40)}
    assert picks == {"A", "B"}


# =========================================================================== async


def test_router_fails_over_then_backs_off_once_through_its_sleep(driver: Driver) -> None:
    t = FakeTime()
    a, b = dep("A", weight=1e9), dep("B", weight=1e-9)
    script = Script(A=[server_error], B=[server_error, "ok"])
    assert driver.route(router({"smart": [a, b]}, t), ctx(), script) == "ok"
    assert script.calls == ["A", "B", "A", "B"]
    assert len(t.sleeps) == 1


async def test_async_cancellation_frees_the_deployment() -> None:
    a = dep("A")
    r = Router("smart", {"smart": [a]})

    async def forever(_: Deployment) -> Any:
        await asyncio.sleep(30)

    task = asyncio.create_task(r.arun(ctx(), forever))
    await asyncio.sleep(0.01)
    assert r.board.health(a).in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert r.board.health(a).in_flight == 0


# =========================================================================== through Model, real HTTP


@pytest.fixture
def servers() -> Iterator[Callable[[], FakeProvider]]:
    """A factory of loopback fake providers, all stopped at the end of the test."""
    started: list[FakeProvider] = []

    def make() -> FakeProvider:
        server = FakeProvider().start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _routing_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOLLWAY_TEST_KEY", KEY)
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def deployment(server: FakeProvider, name: str, **kw: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "api_base": server.url, "api_key": "env:TOLLWAY_TEST_KEY",
            "name": name, **kw}


def model(target: str, config: Any, **kw: Any) -> tollway.Model:
    from tollway.core.cost.pricing import PriceBook

    kw.setdefault("ledger", False)
    kw.setdefault("prices", PriceBook({"openai/*": {"input": 0.15, "output": 0.6}}))
    return tollway.Model(target, config=config, **kw)


def test_a_dead_deployment_costs_no_failed_calls_and_cools_down(
    servers: Callable[[], FakeProvider], driver: Driver
) -> None:
    a, b = servers(), servers()
    a.default = oai.error_reply(500, "the server had an error")
    b.default = oai.text_reply("fine")
    cfg = TollwaySettings.from_dict({
        "models": {"smart": [deployment(a, "A"), deployment(b, "B")]},
        "router": {"allowed_fails": 3, "cooldown": 300},
    })
    m = model("smart", cfg)
    failed = 0
    for _ in range(200):
        try:
            response = driver.complete(m, "hi")
        except errors.TollwayError:
            failed += 1
            continue
        assert response.deployment == "B" and response.text == "fine"
    assert failed == 0
    assert 1 <= len(a.requests) <= 3
    assert len(b.requests) == 200


def test_429_with_retry_after_waits_about_a_second_then_succeeds(
    servers: Callable[[], FakeProvider], driver: Driver
) -> None:
    a = servers()
    a.add(oai.error_reply(429, "Rate limit reached", retry_after=1), oai.text_reply("after the wait"))
    cfg = TollwaySettings.from_dict({
        "models": {"smart": [deployment(a, "A")]},
        "router": {"backoff": {"base": 0.05, "max": 0.1}},
    })
    started = time.perf_counter()
    response = driver.complete(model("smart", cfg), "hi")
    elapsed = time.perf_counter() - started
    assert response.text == "after the wait"
    assert 0.95 <= elapsed < 2.0
    assert len(a.requests) == 2
    (attempt,) = response.attempts
    assert attempt.deployment == "A" and attempt.status == 429 and "RateLimitError" in attempt.error


def test_fallback_to_a_healthy_alias_adds_no_backoff(
    servers: Callable[[], FakeProvider], driver: Driver
) -> None:
    bad, good = servers(), servers()
    bad.default = oai.error_reply(503, "overloaded")
    good.default = oai.text_reply("from backup")
    cfg = TollwaySettings.from_dict({
        "models": {
            "primary": [deployment(bad, "bad")],
            "backup": [deployment(good, "good")],
        },
        "router": {"backoff": {"base": 2, "max": 8}},
        "fallbacks": {"primary": ["backup"]},
    })
    via_fallback, direct = model("primary", cfg), model("backup", cfg)
    driver.complete(direct, "warm up")
    added = []
    for _ in range(15):
        t0 = time.perf_counter()
        response = driver.complete(via_fallback, "hi")
        t1 = time.perf_counter()
        driver.complete(direct, "hi")
        t2 = time.perf_counter()
        assert response.text == "from backup" and response.deployment == "good"
        added.append((t1 - t0) - (t2 - t1))
    assert statistics.median(added) < 0.050
    assert len(bad.requests) <= 3  # then the primary cools down and is skipped outright


def test_a_hanging_deployment_times_out_then_fails_over(
    servers: Callable[[], FakeProvider], driver: Driver
) -> None:
    slow, fast = servers(), servers()
    slow.default = Reply(200, oai.text_reply("too late").body, hang=3.0)
    fast.default = oai.text_reply("on time")
    cfg = TollwaySettings.from_dict({
        "models": {"smart": [
            deployment(slow, "slow", weight=1e9, timeout=0.3),
            deployment(fast, "fast", weight=1e-9),
        ]},
    })
    started = time.perf_counter()
    response = driver.complete(model("smart", cfg), "hi")
    assert response.text == "on time" and response.deployment == "fast"
    assert time.perf_counter() - started < 2.0
    assert "TimeoutError" in response.attempts[0].error


def stream_config(first: FakeProvider, second: FakeProvider) -> TollwaySettings:
    return TollwaySettings.from_dict({
        "models": {"smart": [
            deployment(first, "first", weight=1e9),
            deployment(second, "second", weight=1e-9),
        ]},
    })


def test_a_stream_cut_before_its_first_token_fails_over(
    servers: Callable[[], FakeProvider], driver: Driver
) -> None:
    first, second = servers(), servers()
    cut = oai.text_stream(["never", " seen"])
    cut.cut_after = 1  # only the role chunk, no content
    first.default = cut
    second.default = oai.text_stream(["Hel", "lo"])
    stream = driver.stream_collect(model("smart", stream_config(first, second)), "hi")
    text = "".join(e.text for e in stream.events if isinstance(e, TextDelta))
    assert text == "Hello"
    assert stream.response is not None and stream.response.deployment == "second"
    assert len(first.requests) == 1 and len(second.requests) == 1


def test_a_stream_cut_after_its_first_token_raises_without_duplicating_text(
    servers: Callable[[], FakeProvider],
    driver: Driver,
) -> None:
    first, second = servers(), servers()
    cut = oai.text_stream(["Hel", "lo", " world"])
    cut.cut_after = 2  # role chunk and "Hel", then the connection drops
    first.default = cut
    second.default = oai.text_stream(["should", " not", " run"])
    events: list[Any] = []
    with pytest.raises(errors.ProviderError):
        driver.stream_collect(model("smart", stream_config(first, second)), "hi", into=events)
    seen = [e.text for e in events if isinstance(e, TextDelta)]
    assert seen == ["Hel"]
    assert second.requests == []


async def test_async_calls_fail_over_through_the_model(servers: Callable[[], FakeProvider]) -> None:
    a, b = servers(), servers()
    a.default = oai.error_reply(502, "bad gateway")
    b.default = oai.text_reply("async fine")
    cfg = TollwaySettings.from_dict({"models": {"smart": [deployment(a, "A", weight=1e9), deployment(b, "B", weight=1e-9)]}})
    m = model("smart", cfg)
    responses = await asyncio.gather(*(m.acomplete("hi") for _ in range(10)))
    assert {r.text for r in responses} == {"async fine"}
    assert len(a.requests) <= 10


def test_a_missing_key_variable_fails_that_deployment_only(
    servers: Callable[[], FakeProvider], monkeypatch: pytest.MonkeyPatch, driver: Driver
) -> None:
    monkeypatch.delenv("TOLLWAY_TEST_ABSENT_KEY", raising=False)
    a, b = servers(), servers()
    b.default = oai.text_reply("served by B")
    cfg = TollwaySettings.from_dict({"models": {"smart": [
        deployment(a, "A", weight=1e9, api_key="env:TOLLWAY_TEST_ABSENT_KEY"),
        deployment(b, "B", weight=1e-9),
    ]}})
    response = driver.complete(model("smart", cfg), "hi")
    assert response.text == "served by B"
    assert a.requests == []  # nothing was sent without a key
    assert "TOLLWAY_TEST_ABSENT_KEY is not set" in response.attempts[0].error
    assert KEY not in response.attempts[0].error


def test_unknown_targets_name_the_configured_aliases() -> None:
    cfg = TollwaySettings.from_dict({"models": {"smart": "openai/gpt-4o", "cheap": "openai/gpt-4o-mini"}})
    with pytest.raises(errors.UnknownModelError, match=r"aliases: smart, cheap"):
        tollway.Model("smrt", config=cfg)


def test_a_tollway_yaml_in_the_working_directory_is_used_by_default(
    servers: Callable[[], FakeProvider], tmp_path: Path
) -> None:
    a = servers()
    a.default = oai.text_reply("from yaml")
    (tmp_path / "tollway.yaml").write_text(dedent(f"""
        models:
          researcher:
            - model: openai/gpt-4o-mini
              api_base: {a.url}
              api_key: env:TOLLWAY_TEST_KEY
        ledger: false
    """))
    m = tollway.Model("researcher")
    assert m.alias == "researcher"
    assert [d.api_base for d in m.deployments] == [a.url]
    assert a.requests == []


def agent(m: tollway.Model, driver: Driver) -> str:
    """'Agent code': the same function whatever model the config names."""
    return driver.complete(m, [{"role": "user", "content": "Summarise the findings."}]).text


@pytest.mark.parametrize("via", ["ledger object", "ledger section"])
def test_same_code_on_two_configs_records_the_configured_models(
    servers: Callable[[], FakeProvider], tmp_path: Path, via: str, driver: Driver
) -> None:
    ledger_mod = pytest.importorskip("tollway.core.stores.open")
    spend = pytest.importorskip("tollway.core.reports").spend
    if via == "ledger section" and not hasattr(ledger_mod, "shared_ledger"):
        pytest.skip("the Model's ledger-by-target (shared_ledger) is not there yet")
    server = servers()
    server.default = oai.text_reply("summary")
    db = tmp_path / "ledger.db"
    for target in ("openai/gpt-4o-mini", "groq/llama-3.1-8b-instant"):
        path = tmp_path / f"{target.replace('/', '_')}.yaml"
        path.write_text(dedent(f"""
            models:
              researcher:
                - model: {target}
                  api_base: {server.url}
                  api_key: env:TOLLWAY_TEST_KEY
            ledger: {{url: "sqlite:///{db}"}}
        """))
        if via == "ledger object":
            ledger = ledger_mod.open_ledger(db)
            assert agent(model("researcher", str(path), ledger=ledger), driver) == "summary"
            ledger.close()
        else:
            assert agent(model("researcher", str(path), ledger=None), driver) == "summary"
    rows = spend(str(db), group_by=("alias", "provider", "model"))
    seen = {(r.group["alias"], r.group["provider"], r.group["model"]): r.calls for r in rows}
    assert seen == {
        ("researcher", "openai", "gpt-4o-mini"): 1,
        ("researcher", "groq", "llama-3.1-8b-instant"): 1,
    }
    sent = [r.json["model"] for r in server.requests]
    assert sent == ["gpt-4o-mini", "llama-3.1-8b-instant"]


def test_direct_targets_under_a_config_get_its_prices_and_raise_errors_unchanged(
    servers: Callable[[], FakeProvider],
    driver: Driver,
) -> None:
    from tollway.core.types import Usage

    a = servers()
    a.add(oai.text_reply("ok", usage=Usage(input_tokens=1_000_000, output_tokens=0)),
          oai.error_reply(500, "boom"))
    cfg = TollwaySettings.from_dict({"prices": {"openai/gpt-4o-mini": {"input": 7, "output": 9}}})
    m = tollway.Model("openai/gpt-4o-mini", api_key=KEY, api_base=a.url, config=cfg, ledger=False)
    assert m.alias is None
    assert driver.complete(m, "hi").cost_nanos == 7_000_000_000
    with pytest.raises(errors.ServerError):  # one attempt, the provider's own error
        driver.complete(m, "hi")
    assert len(a.requests) == 2


def test_config_attribution_defaults_sit_under_the_callers_scope(
    servers: Callable[[], FakeProvider], driver: Driver
) -> None:
    a = servers()
    a.default = oai.text_reply("ok")
    cfg = TollwaySettings.from_dict({
        "models": {"smart": [deployment(a, "A")]},
        "attribution": {"org": "acme", "project": "default-project"},
    })
    m = model("smart", cfg)
    with tollway.attribute(project="search"):
        response = driver.complete(m, "hi")
    assert response.attribution["org"] == "acme"
    assert response.attribution["project"] == "search"


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
def test_cost_strategy_sends_the_traffic_to_the_deployment_whose_own_price_is_cheapest(
    servers: Callable[[], FakeProvider], driver: Driver, named: bool
) -> None:
    """Two deployments of one model priced $100/M and $0.01/M by their own ``price:``
    (once split 93/107): every call goes to the cheap one, and is billed at its price."""
    from tollway.core.types import Usage

    pricey, cheap = servers(), servers()
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    pricey.default = oai.text_reply("pricey", usage=usage)
    cheap.default = oai.text_reply("cheap", usage=usage)

    def spec(server: FakeProvider, name: str, usd: float) -> dict[str, Any]:
        entry = deployment(server, name, price={"input": usd, "output": usd})
        if not named:
            del entry["name"]
        return entry

    cfg = TollwaySettings.from_dict({
        "models": {"smart": [spec(pricey, "pricey", 100), spec(cheap, "cheap", 0.01)]},
        "router": {"strategy": "cost"},
    })
    m = tollway.Model("smart", config=cfg, ledger=False)
    answers = [driver.complete(m, "hi") for _ in range(40)]
    assert {a.text for a in answers} == {"cheap"}
    assert (len(pricey.requests), len(cheap.requests)) == (0, 40)
    assert {a.cost_nanos for a in answers} == {10_000_000}  # 1M tokens at $0.01/M


# =========================================================================== with the real budget guards


def guarded_config(servers: Callable[[], FakeProvider], **sections: Any) -> tuple[TollwaySettings, FakeProvider, FakeProvider]:
    pytest.importorskip("tollway.core.cost.budgets")
    a, b = servers(), servers()
    a.default = oai.text_reply("from A")
    b.default = oai.text_reply("from B")
    cfg = TollwaySettings.from_dict({
        "models": {
            "smart": [deployment(a, "A", weight=1e9), deployment(b, "B", weight=1e-9)],
            "cheap": [deployment(b, "cheap-B")],
        },
        "budget_store": {"backend": "memory"},
        **sections,
    })
    return cfg, a, b


def test_a_deployment_over_its_budget_is_skipped_and_another_serves(
    servers: Callable[[], FakeProvider],
    driver: Driver,
) -> None:
    cfg, a, b = guarded_config(servers, budgets=[
        {"scope": {"deployment": "A"}, "limit": 0, "unit": "requests", "period": "day"},
    ])
    response = driver.complete(model("smart", cfg), "hi")
    assert response.text == "from B" and response.deployment == "B"
    assert a.requests == [] and len(b.requests) == 1  # the denied one was never called
    assert "BudgetExceededError" in response.attempts[0].error


def test_when_every_deployment_is_over_budget_the_budget_error_surfaces(
    servers: Callable[[], FakeProvider],
    driver: Driver,
) -> None:
    cfg, a, b = guarded_config(servers, budgets=[
        {"scope": "all", "limit": 0, "unit": "requests", "period": "day"},
    ])
    with pytest.raises(errors.BudgetExceededError):
        driver.complete(model("smart", cfg), "hi")
    assert a.requests == [] and b.requests == []


def closed_today() -> list[str]:
    today = datetime.now(UTC).date()
    return [str(today.fromordinal(today.toordinal() + d)) for d in (-1, 0, 1)]


@pytest.mark.parametrize("target", ["smart", "openai/gpt-4o-mini"])
def test_outside_allowed_hours_the_call_is_rerouted_to_the_configured_alias(
    servers: Callable[[], FakeProvider], target: str, driver: Driver
) -> None:
    cfg, a, b = guarded_config(servers, hours=[{
        "scope": "all", "windows": "daily", "holidays": closed_today(),
        "action": "reroute", "to": "cheap",
    }])
    kw = {} if target == "smart" else {"api_key": KEY, "api_base": a.url}
    response = driver.complete(model(target, cfg, **kw), "hi")
    assert response.text == "from B" and response.deployment == "cheap-B"
    assert a.requests == [] and len(b.requests) == 1


# =========================================================================== shared health in Redis

REDIS_URL = __import__("os").environ.get("TOLLWAY_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="set TOLLWAY_TEST_REDIS_URL to run")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    import secrets

    redis = pytest.importorskip("redis")
    prefix = f"tollway-test:{secrets.token_hex(6)}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=f"{prefix}:*"))
    if names:
        client.delete(*names)


@needs_redis
@pytest.mark.services
def test_a_cooldown_in_one_process_is_seen_by_another(redis_prefix: str) -> None:
    from tollway.core.routing.redis_board import RedisHealthBoard

    one = RedisHealthBoard(REDIS_URL, prefix=redis_prefix, refresh=0, allowed_fails=2, cooldown=0.4)
    two = RedisHealthBoard(REDIS_URL, prefix=redis_prefix, refresh=0, allowed_fails=2, cooldown=0.4)
    a_here, a_there = dep("A"), dep("A")  # the same endpoint, built in two processes
    now = time.monotonic()
    assert two.ready_at(a_there, now) == now
    for _ in range(2):
        assert one.claim(a_here, now)
        one.failed(a_here, now, "transient")
    seen = two.ready_at(a_there, time.monotonic())
    assert time.monotonic() + 0.2 < seen <= time.monotonic() + 0.4

    time.sleep(0.45)  # cooled down: exactly one process gets the half-open probe
    now = time.monotonic()
    assert one.claim(a_here, now) is True
    assert two.claim(a_there, now) is False
    assert two.health(a_there).in_flight == 0
    one.succeeded(a_here, now, 0.01, None)
    assert not one.health(a_here).tripped


@needs_redis
@pytest.mark.services
def test_models_on_two_configs_sharing_redis_skip_a_deployment_the_other_cooled(
    servers: Callable[[], FakeProvider], redis_prefix: str, driver: Driver
) -> None:
    from tollway.core.assembly import health_board
    from tollway.core.routing import redis_board

    a, b = servers(), servers()
    a.default = oai.error_reply(500, "down")
    b.default = oai.text_reply("ok")
    data = {
        "models": {"smart": [deployment(a, "A", weight=1e9), deployment(b, "B", weight=1e-9)]},
        "router": {"allowed_fails": 1, "cooldown": 30, "shared_health": REDIS_URL,
                   "shared_health_prefix": redis_prefix},
    }
    worker_1, worker_2 = TollwaySettings.from_dict(data), TollwaySettings.from_dict(data)
    for settings in (worker_1, worker_2):
        assert isinstance(health_board(settings), redis_board.RedisHealthBoard)
    assert driver.complete(model("smart", worker_1), "hi").deployment == "B"
    assert len(a.requests) == 1
    assert driver.complete(model("smart", worker_2), "hi").deployment == "B"
    assert len(a.requests) == 1  # the second worker never called the cooled deployment


def test_routing_survives_an_unreachable_redis(
    caplog: pytest.LogCaptureFixture, driver: Driver
) -> None:
    pytest.importorskip("redis")
    from tollway.core.routing.redis_board import RedisHealthBoard

    t = FakeTime()
    board = RedisHealthBoard("redis://127.0.0.1:9/0", refresh=0, allowed_fails=1, cooldown=10)
    r = router({"smart": [dep("A", weight=1e9), dep("B", weight=1e-9)]}, t, board=board)
    script = Script(A=[server_error], B=["ok"])
    assert driver.route(r, ctx(), script) == "ok"
    assert driver.route(r, ctx(), script) == "ok"
    assert script.calls == ["A", "B", "B"]  # the local breaker still works
    assert "shared deployment health in Redis is unavailable" in caplog.text
