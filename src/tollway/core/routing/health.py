"""Deployment health: the circuit breaker, in-flight counts, latency and rpm/tpm windows.

One board is shared by every router built from the same config (and, with
``router.shared_health``, the cooldowns by every process through Redis), so a deployment
that failed for one agent is skipped by the next. All state changes happen under one
lock held for a few dictionary operations, never across I/O, so the board is safe from
threads and from asyncio tasks alike. Times are whatever clock the router passes in
(``time.monotonic`` by default; tests pass a fake one).

Breaker: ``allowed_fails`` consecutive transient failures (or one auth / not-found
failure, or a Retry-After) open it for ``cooldown`` seconds; after that exactly one
caller gets a half-open probe; its success closes the breaker, its failure re-opens it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.core.providers import Deployment
    from tollway.core.routing.classify import FailureKind

Key = tuple[str, str, str]
WINDOW = 60.0
"""rpm / tpm are counted over the last minute."""
EWMA_ALPHA = 0.3


def key_of(dep: Deployment) -> Key:
    """Health is per endpoint: the same name on another base URL is another deployment."""
    return (dep.name, dep.api_base, dep.model)


@dataclass(slots=True)
class Health:
    fails: int = 0
    """Consecutive failures (reset by a success)."""
    tripped: bool = False
    """The breaker is open (cooling until ``open_until``) or half-open (after it)."""
    open_until: float = 0.0
    probing: bool = False
    """A half-open probe is in flight: nobody else may use the deployment meanwhile."""
    in_flight: int = 0
    latency: float | None = None
    """EWMA of attempt latency in seconds (time to first token for streams)."""
    last_error: str | None = None
    """The last failure that counted against it, for "cooling down after ..." messages."""
    starts: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0


class HealthBoard:
    """Process-local health for a set of deployments."""

    def __init__(
        self, *, allowed_fails: int = 3, cooldown: float = 30.0, retry_after_cap: float = 30.0
    ) -> None:
        self.allowed_fails = allowed_fails
        self.cooldown = cooldown
        self.retry_after_cap = retry_after_cap
        self._lock = threading.Lock()
        self._health: dict[Key, Health] = {}
        self._by_id: dict[int, tuple[Deployment, Health]] = {}
        """A shortcut per Deployment object (which it keeps alive, so ids stay unique);
        routers reuse the same objects for every call."""

    def _get(self, dep: Deployment) -> Health:
        entry = self._by_id.get(id(dep))
        if entry is not None and entry[0] is dep:
            return entry[1]
        key = key_of(dep)
        health = self._health.get(key)
        if health is None:
            health = self._health[key] = Health()
        if len(self._by_id) > 4096:  # many short-lived Deployment objects: start over
            self._by_id.clear()
        self._by_id[id(dep)] = (dep, health)
        return health

    # ------------------------------------------------------------------ reads

    def health(self, dep: Deployment) -> Health:
        with self._lock:
            return self._get(dep)

    def ready_at(self, dep: Deployment, now: float) -> float:
        """When ``dep`` may next be tried: ``now`` or earlier if it may be now, ``inf``
        while someone else's half-open probe is in flight."""
        with self._lock:
            return self._ready_at(self._get(dep), dep, now)

    def ready(self, deps: Iterable[Deployment], now: float, exclude: Container[int]) -> list[Deployment]:
        """The deployments of ``deps`` (minus the ids in ``exclude``) that may be tried
        now, read under one lock acquisition."""
        with self._lock:
            return [
                d for d in deps
                if id(d) not in exclude and self._ready_at(self._get(d), d, now) <= now
            ]

    def _ready_at(self, h: Health, dep: Deployment, now: float) -> float:
        at = now
        if h.tripped:
            if h.open_until > now:
                at = h.open_until
            elif h.probing:
                return math.inf
        if dep.rpm is not None:
            starts = h.starts
            while starts and starts[0] <= now - WINDOW:
                starts.popleft()
            if len(starts) >= dep.rpm:
                at = max(at, starts[0] + WINDOW)
        if dep.tpm is not None:
            tokens = h.tokens
            while tokens and tokens[0][0] <= now - WINDOW:
                h.token_sum -= tokens.popleft()[1]
            if h.token_sum >= dep.tpm and tokens:
                at = max(at, tokens[0][0] + WINDOW)
        return at

    # ------------------------------------------------------------------ an attempt's life

    def claim(self, dep: Deployment, now: float) -> bool:
        """Start an attempt if ``dep`` is ready (atomically: two callers never both get
        the half-open probe)."""
        with self._lock:
            h = self._get(dep)
            if self._ready_at(h, dep, now) > now:
                return False
            if h.tripped:
                h.probing = True
            h.in_flight += 1
            if dep.rpm is not None:
                h.starts.append(now)
            return True

    def succeeded(self, dep: Deployment, now: float, elapsed: float, tokens: int | None) -> None:
        with self._lock:
            h = self._get(dep)
            h.in_flight = max(h.in_flight - 1, 0)
            h.fails = 0
            h.tripped = h.probing = False
            h.open_until = 0.0
            h.latency = elapsed if h.latency is None else (
                EWMA_ALPHA * elapsed + (1 - EWMA_ALPHA) * h.latency
            )
            if tokens and dep.tpm is not None:
                h.tokens.append((now, tokens))
                h.token_sum += tokens

    def failed(
        self,
        dep: Deployment,
        now: float,
        kind: FailureKind,
        retry_after: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Record a failed attempt. Only the deployment's own failures count: a request
        the provider refused (400) or a guard's denial says nothing about its health."""
        with self._lock:
            h = self._get(dep)
            h.in_flight = max(h.in_flight - 1, 0)
            probe = h.probing
            h.probing = False
            if error is not None and kind in ("transient", "deployment"):
                h.last_error = f"{type(error).__name__}: {error}"[:200]
            if kind == "transient":
                h.fails += 1
                if probe or h.fails >= self.allowed_fails:
                    self._trip(h, now + self.cooldown)
                if retry_after is not None and retry_after > 0:
                    self._trip(h, now + min(retry_after, self.retry_after_cap))
            elif kind == "deployment":
                h.fails = max(h.fails + 1, self.allowed_fails)
                self._trip(h, now + self.cooldown)

    def released(self, dep: Deployment) -> None:
        """An attempt ended with no verdict (cancelled, or a programming error)."""
        with self._lock:
            h = self._get(dep)
            h.in_flight = max(h.in_flight - 1, 0)
            h.probing = False

    @staticmethod
    def _trip(h: Health, until: float) -> None:
        h.tripped = True
        h.open_until = max(h.open_until, until)


__all__ = ["Health", "HealthBoard", "Key", "key_of"]
