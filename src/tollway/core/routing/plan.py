"""One call's way through the deployments: the router's decisions, without any I/O.

The sync and async routers run the same :class:`CallPlan`; they only differ in how they
wait (``time.sleep`` vs ``asyncio.sleep``) and call the attempt. The plan answers
``next(now)`` with one of :class:`Try` (this deployment, now), :class:`Sleep` (back off,
then ask again) or :class:`Fail` (raise this), and is told how each attempt ended.

A ROUND tries each ready deployment of the alias once (a different one after each
failure, with no sleep between them), then walks the fallback chain by the error that
ended the alias, still without sleeping. Only when the whole chain is exhausted does the
plan back off (exponential, full jitter, at least the Retry-After it was given, capped)
and start the next round. Fallbacks therefore share one budget of attempts, rounds and
time; nothing restarts a retry cycle.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tollway.core import errors
from tollway.core.routing.balance import Strategy, choose
from tollway.core.routing.classify import classify

if TYPE_CHECKING:
    from tollway.core.providers import Deployment
    from tollway.core.routing.health import HealthBoard


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """The ``router:`` section as the plan uses it (seconds)."""

    retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_cap: float = 30.0
    max_attempts: int = 10
    total_timeout: float | None = None
    strategy: Strategy = "weighted"



@dataclass(frozen=True, slots=True)
class FallbackRule:
    """Continue on alias ``to`` when the alias failed with one of ``on``."""

    to: str
    on: tuple[type[BaseException], ...]

    def matches(self, exc: BaseException) -> bool:
        return isinstance(exc, self.on)


@dataclass(slots=True)
class Try:
    deployment: Deployment


@dataclass(slots=True)
class Sleep:
    seconds: float


@dataclass(slots=True)
class Fail:
    error: BaseException


Step = Try | Sleep | Fail


class CallPlan:
    """The state of one call. Not shared between calls (or threads)."""

    def __init__(
        self,
        root: str,
        aliases: Mapping[str, Sequence[Deployment]],
        fallbacks: Mapping[str, Sequence[FallbackRule]],
        policy: RoutePolicy,
        board: HealthBoard,
        rng: random.Random,
        cost_of: Callable[[Deployment], int | None],
        now: float,
    ) -> None:
        self.root = root
        self.aliases = aliases
        self.fallbacks = fallbacks
        self.policy = policy
        self.board = board
        self.rng = rng
        self.cost_of = cost_of
        self.started = now
        self.count = 0
        self.rounds = 0
        self.attempts: list[tuple[str, BaseException]] = []
        self.dead: set[int] = set()
        """id() of deployments that cannot serve this call (401/403/404)."""
        self.blocked: set[int] = set()
        """id() of deployments a guard denied (budget, hours)."""
        self.dead_aliases: set[str] = set()
        """Aliases that refused the request itself (400, context window, filter)."""
        self.alias_error: dict[str, BaseException] = {}
        self.reroutes: dict[str, str] = {}
        self.guard_error: BaseException | None = None
        self._round()

    def _round(self) -> None:
        self.current = self.root
        self.tried: set[int] = set()
        self.visited: set[str] = {self.root}
        self.parent: dict[str, str] = {}
        self.cursor: dict[str, int] = {}
        self.retry_after: float | None = None

    # ------------------------------------------------------------------ decisions

    def next(self, now: float) -> Step:
        policy = self.policy
        while True:
            if self.count >= policy.max_attempts:
                return self._fail(f"router.max_attempts ({policy.max_attempts}) reached")
            if policy.total_timeout is not None and now - self.started >= policy.total_timeout:
                return self._fail(f"router.total_timeout ({policy.total_timeout:g}s) reached")
            alias = self.current
            if alias not in self.dead_aliases:
                dep = self._pick(alias, now)
                if dep is not None:
                    return Try(dep)
            following = self._fallback(alias)
            if following is None:
                return self._end_round(now)
            self.current = following

    def _pick(self, alias: str, now: float) -> Deployment | None:
        tried, board = self.tried, self.board
        exclude = tried | self.dead | self.blocked if (self.dead or self.blocked) else tried
        ready = board.ready(self.aliases[alias], now, exclude)
        while ready:
            dep = choose(self.policy.strategy, ready, board, self.rng, self.cost_of)
            if board.claim(dep, now):
                tried.add(id(dep))
                self.count += 1
                return dep
            ready.remove(dep)  # another caller took its half-open probe meanwhile
        return None

    def _fallback(self, alias: str) -> str | None:
        """The next alias of the chain: this alias's reroute or first matching fallback
        rule not yet visited in this round, else its parent's next one, and so on."""
        current: str | None = alias
        while current is not None:
            target = self.reroutes.get(current)
            if target is not None and target not in self.visited:
                return self._enter(target, current)
            error = self.alias_error.get(current) or _unavailable(current)
            rules = self.fallbacks.get(current, ())
            index = self.cursor.get(current, 0)
            while index < len(rules):
                rule = rules[index]
                index += 1
                if rule.to not in self.visited and rule.matches(error):
                    self.cursor[current] = index
                    return self._enter(rule.to, current)
            self.cursor[current] = index
            current = self.parent.get(current)
        return None

    def _enter(self, alias: str, parent: str) -> str:
        self.visited.add(alias)
        self.parent[alias] = parent
        return alias

    def _end_round(self, now: float) -> Step:
        policy = self.policy
        hopeful = [
            d
            for alias in self.visited if alias not in self.dead_aliases
            for d in self.aliases[alias]
            if id(d) not in self.dead and id(d) not in self.blocked
        ]
        if not hopeful:
            return self._fail("no deployment left that could serve this request")
        if self.rounds >= policy.retries:
            if not self.attempts:  # nothing could be tried: say why, not "retries exhausted"
                return self._fail(self._cooling(hopeful, now))
            return self._fail(f"router.retries ({policy.retries}) exhausted")
        delay = self.rng.uniform(0.0, min(policy.backoff_max, policy.backoff_base * 2**self.rounds))
        asked = 0.0 if self.retry_after is None else min(self.retry_after, policy.retry_after_cap)
        delay = max(delay, asked)
        ready = min(self.board.ready_at(d, now) for d in hopeful)
        if ready > now + delay:
            # Wait for a deployment to come back only as long as a backoff or the
            # provider's own Retry-After would have: an open breaker fails fast.
            wait = ready - now
            if wait > max(policy.backoff_max, asked):
                return self._fail(self._cooling(hopeful, now))
            delay = wait
        if policy.total_timeout is not None and now + delay - self.started >= policy.total_timeout:
            return self._fail(
                f"router.total_timeout ({policy.total_timeout:g}s) leaves no time to retry"
            )
        self.rounds += 1
        self._round()
        return Sleep(delay)

    def _cooling(self, hopeful: Sequence[Deployment], now: float) -> str:
        wait = min(self.board.ready_at(d, now) for d in hopeful) - now
        when = "" if math.isinf(wait) or wait <= 0 else f"; the next is ready in {wait:.1f}s"
        last = "; ".join(
            f"{d.name}: {h.last_error}" for d in hopeful if (h := self.board.health(d)).last_error
        )
        after = f"; last failures: {last}" if last else ""
        return f"every deployment is cooling down{when}{after}"

    def _fail(self, reason: str) -> Fail:
        if self.guard_error is not None:
            return Fail(self.guard_error)
        attempts = self.attempts
        if attempts and all(classify(e) == "request" for _, e in attempts):
            return Fail(attempts[-1][1])  # the request itself is wrong: say so directly
        return Fail(errors.AllDeploymentsFailedError(list(attempts), reason))

    # ------------------------------------------------------------------ outcomes

    def succeeded(self, dep: Deployment, now: float, elapsed: float, tokens: int | None) -> None:
        self.board.succeeded(dep, now, elapsed, tokens)

    def abandoned(self, dep: Deployment) -> None:
        self.board.released(dep)

    def failed(self, dep: Deployment, exc: BaseException, now: float) -> bool:
        """Record a failed attempt; False when the error is not the router's business
        (the caller re-raises it as is)."""
        kind = classify(exc)
        if kind == "fatal":
            self.board.released(dep)
            return False
        retry_after = getattr(exc, "retry_after", None) if kind == "transient" else None
        self.board.failed(dep, now, kind, retry_after, exc)
        alias = self.current
        if kind == "blocked":
            self.count -= 1  # no request was sent
            self.blocked.add(id(dep))
            target = getattr(exc, "reroute_to", None)
            if isinstance(target, str) and target in self.aliases and target not in self.visited:
                # Outside allowed hours with a reroute: not a failure, continue there.
                self.reroutes[alias] = target
                self.current = self._enter(target, alias)
                return True
            if self.guard_error is None:
                self.guard_error = exc
            self.alias_error[alias] = exc
            return True
        self.attempts.append((dep.name, exc))
        self.alias_error[alias] = exc
        if kind == "transient":
            if retry_after:
                self.retry_after = max(self.retry_after or 0.0, float(retry_after))
        elif kind == "deployment":
            self.dead.add(id(dep))
        else:
            self.dead_aliases.add(alias)
        return True


def _unavailable(alias: str) -> errors.ServerError:
    """The error an alias 'failed' with when none of its deployments was ready (all
    cooling down or at their rpm/tpm limit): it matches server / any fallbacks."""
    return errors.ServerError(
        f"no deployment of {alias!r} is available (cooling down or at its rate limit)"
    )


__all__ = ["CallPlan", "Fail", "FallbackRule", "RoutePolicy", "Sleep", "Step", "Try"]
