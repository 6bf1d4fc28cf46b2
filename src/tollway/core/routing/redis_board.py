"""Cooldowns shared between processes through Redis (``router.shared_health``).

Each process keeps its own board (in-flight counts, latency, rpm windows, consecutive
failures); what crosses processes is the breaker: when a deployment trips anywhere, the
others see it cooling until the same moment, and after the cooldown only ONE process
gets the half-open probe. Redis holds cooldowns as keys with a TTL (relative times, so
the machines' clocks never need to agree) and the probe as a ``SET NX`` lock.

Reads are batched and cached for ``refresh`` seconds, so the steady state costs one
pipelined round trip per second per process, not one per call; writes happen only when
a breaker opens, closes or probes. If Redis is unreachable the board keeps working on
local state alone (and logs once): routing never fails because shared health did.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING, Any

from tollway.core.logs import logger
from tollway.core.routing.health import HealthBoard, Key, key_of

if TYPE_CHECKING:
    from tollway.core.providers import Deployment
    from tollway.core.routing.classify import FailureKind

log = logger("tollway")

PREFIX = "tollway:health"


class RedisHealthBoard(HealthBoard):
    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = PREFIX,
        refresh: float = 1.0,
        allowed_fails: int = 3,
        cooldown: float = 30.0,
        retry_after_cap: float = 30.0,
    ) -> None:
        super().__init__(
            allowed_fails=allowed_fails, cooldown=cooldown, retry_after_cap=retry_after_cap
        )
        if client is None:
            import redis

            client = redis.Redis.from_url(url or "redis://127.0.0.1:6379/0",
                                          socket_timeout=0.5, socket_connect_timeout=0.5)
        self._redis = client
        self._prefix = prefix
        self._refresh = refresh
        self._fetched: dict[Key, float] = {}
        self._probes: set[Key] = set()
        self._io_lock = threading.Lock()
        self._warned = False

    def _name(self, kind: str, key: Key) -> str:
        return f"{self._prefix}:{kind}:" + "|".join(key)

    # ------------------------------------------------------------------ reads

    def ready(self, deps: Iterable[Deployment], now: float, exclude: Container[int]) -> list[Deployment]:
        deps = list(deps)
        self._pull([d for d in deps if id(d) not in exclude], now)
        return super().ready(deps, now, exclude)

    def ready_at(self, dep: Deployment, now: float) -> float:
        self._pull([dep], now)
        return super().ready_at(dep, now)

    def _pull(self, deps: list[Deployment], now: float) -> None:
        """Fold the shared cooldowns of ``deps`` into local state (when the cached view
        is older than ``refresh``)."""
        stale = [d for d in deps if now - self._fetched.get(key_of(d), -math.inf) >= self._refresh]
        if not stale:
            return
        keys = [key_of(d) for d in stale]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.pttl(self._name("open", key))
            ttls = pipe.execute()
        except Exception as exc:
            self._unreachable(exc)
            return
        with self._lock:
            for dep, key, ttl in zip(stale, keys, ttls, strict=True):
                self._fetched[key] = now
                if isinstance(ttl, int) and ttl > 0:
                    h = self._get(dep)
                    h.tripped = True
                    h.open_until = max(h.open_until, now + ttl / 1000.0)

    # ------------------------------------------------------------------ an attempt's life

    def claim(self, dep: Deployment, now: float) -> bool:
        if not super().claim(dep, now):
            return False
        h = self.health(dep)
        if not h.probing:
            return True
        key = key_of(dep)
        try:  # this claim is a half-open probe: make it the only one anywhere
            ttl_ms = max(int(self.cooldown * 1000), 1000)
            won = self._redis.set(self._name("probe", key), "1", nx=True, px=ttl_ms)
        except Exception as exc:
            self._unreachable(exc)
            return True
        if won:
            with self._io_lock:
                self._probes.add(key)
            return True
        with self._lock:  # another process is probing: undo the local claim
            h.probing = False
            h.in_flight = max(h.in_flight - 1, 0)
            if dep.rpm is not None and h.starts:
                h.starts.pop()
        return False

    def succeeded(self, dep: Deployment, now: float, elapsed: float, tokens: int | None) -> None:
        was_tripped = self.health(dep).tripped
        super().succeeded(dep, now, elapsed, tokens)
        if was_tripped:
            key = key_of(dep)
            self._push(lambda pipe: (pipe.delete(self._name("open", key)),
                                     pipe.delete(self._name("probe", key))))
            self._drop_probe(key)

    def failed(
        self,
        dep: Deployment,
        now: float,
        kind: FailureKind,
        retry_after: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        before = self.health(dep).open_until
        super().failed(dep, now, kind, retry_after, error)
        h = self.health(dep)
        key = key_of(dep)
        if h.tripped and h.open_until > before and h.open_until > now:
            ttl_ms = max(int((h.open_until - now) * 1000), 1)
            self._push(lambda pipe: (pipe.set(self._name("open", key), "1", px=ttl_ms),
                                     pipe.delete(self._name("probe", key))))
            self._drop_probe(key)
        else:
            self._release_probe(key)

    def released(self, dep: Deployment) -> None:
        super().released(dep)
        self._release_probe(key_of(dep))

    # ------------------------------------------------------------------ writes

    def _drop_probe(self, key: Key) -> None:
        with self._io_lock:
            self._probes.discard(key)

    def _release_probe(self, key: Key) -> None:
        with self._io_lock:
            held = key in self._probes
            self._probes.discard(key)
        if held:
            self._push(lambda pipe: pipe.delete(self._name("probe", key)))

    def _push(self, fill: Any) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            fill(pipe)
            pipe.execute()
        except Exception as exc:
            self._unreachable(exc)

    def _unreachable(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "tollway: shared deployment health in Redis is unavailable (%s: %s); "
                "routing continues with this process's own health state",
                type(exc).__name__, exc,
            )

    def clear(self) -> None:
        """Forget every shared cooldown under this board's prefix (tests, operations)."""
        names = list(self._redis.scan_iter(match=f"{self._prefix}:*", count=500))
        if names:
            self._redis.delete(*names)
        with self._lock:
            self._fetched.clear()


__all__ = ["PREFIX", "RedisHealthBoard"]
