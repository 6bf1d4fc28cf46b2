"""Budget counters in this process's memory: thread- and asyncio-safe, microseconds.

One plain lock guards everything: each operation is a few dict updates, far shorter
than any contention a finer scheme could avoid. Async methods run the same code inline
(no thread hop, nothing to await). Expired holds are found through a heap ordered by
expiry, so the sweep costs nothing when none has expired; entries of holds already
settled are compacted away, so the heap stays the size of the calls in flight.

Counters vanish with the process; use the SQLite store to share budgets between
processes on one machine, Redis or PostgreSQL between machines.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Sequence

from tollway.core.cost.budgets.contract import COUNTER_RETENTION, Charge, CounterState, Denial

__all__ = ["MemoryBudgetStore"]


class MemoryBudgetStore:
    """The in-process :class:`~tollway.core.cost.budgets.BudgetStore`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, CounterState] = {}
        self._holds: dict[str, dict[str, int]] = {}
        self._expiry: list[tuple[float, str]] = []
        self._next_cleanup = 0.0

    # ------------------------------------------------------------------ internals

    def _sweep(self, now: float) -> None:
        expiry = self._expiry
        holds = self._holds
        counters = self._counters
        while expiry and expiry[0][0] <= now:
            _, hold_id = heapq.heappop(expiry)
            entries = holds.pop(hold_id, None)
            if not entries:
                continue  # settled or released before it expired
            for key, amount in entries.items():
                state = counters.get(key)
                if state is not None:
                    state.reserved -= amount
                    state.released_total += amount
        if now >= self._next_cleanup:
            self._next_cleanup = now + 60
            cutoff = now - COUNTER_RETENTION
            for key in [k for k, s in counters.items()
                        if s.period_end is not None and s.period_end < cutoff and not s.reserved]:
                del counters[key]

    # ------------------------------------------------------------------ contract

    def reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        with self._lock:
            self._sweep(now)
            counters = self._counters
            if len(charges) == 1:  # the common case, without the lists
                charge = charges[0]
                state = counters.get(charge.key) or self._counter(charge)
                amount = charge.amount
                if state.spent + state.reserved + amount > charge.limit:
                    return Denial(0, state.spent, state.reserved)
                state.limit = charge.limit
                state.reserved += amount
                state.reserved_total += amount
                self._hold(hold_id, {charge.key: amount}, expires_at)
                return None
            states = []
            for index, charge in enumerate(charges):
                state = counters.get(charge.key) or self._counter(charge)
                if state.spent + state.reserved + charge.amount > charge.limit:
                    return Denial(index, state.spent, state.reserved)
                states.append(state)
            entries: dict[str, int] = {}
            for state, charge in zip(states, charges, strict=True):
                state.limit = charge.limit
                state.reserved += charge.amount
                state.reserved_total += charge.amount
                entries[charge.key] = entries.get(charge.key, 0) + charge.amount
            self._hold(hold_id, entries, expires_at)
            return None

    def _counter(self, charge: Charge) -> CounterState:
        """A new, empty counter for ``charge``, registered (lock held)."""
        state = CounterState(
            charge.key, charge.budget, charge.scope, charge.period_start, charge.period_end,
            charge.limit,
        )
        self._counters[charge.key] = state
        return state

    def _hold(self, hold_id: str, entries: dict[str, int], expires_at: float) -> None:
        """Record a hold and its expiry (lock held)."""
        holds = self._holds
        holds[hold_id] = entries
        expiry = self._expiry
        heapq.heappush(expiry, (expires_at, hold_id))
        if len(expiry) > 2 * len(holds) + 64:
            # Settled and released holds leave their heap entries behind; drop them
            # once they outnumber the live ones (amortized O(1), the heap stays small).
            live = [entry for entry in expiry if entry[1] in holds]
            heapq.heapify(live)
            self._expiry = live

    def settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        with self._lock:
            entries = self._holds.pop(hold_id, None) or {}
            counters = self._counters
            if len(charges) == 1 and entries:  # the common case: one counter, still held
                charge, actual = charges[0], actuals[0]
                state = counters.get(charge.key)
                amount = entries.get(charge.key)
                if state is not None and amount is not None:
                    used = actual if actual < amount else amount
                    state.reserved -= amount
                    state.released_total += amount - used
                    state.overrun_total += actual - used
                    state.spent += actual
                    return [state.spent]
            after: list[int] = []
            for charge, actual in zip(charges, actuals, strict=True):
                # (a counter cleaned up after its period is recreated for a late settle)
                state = counters.get(charge.key) or self._counter(charge)
                amount = entries.pop(charge.key, None)
                if amount is None:
                    state.overrun_total += actual
                else:
                    used = actual if actual < amount else amount
                    state.reserved -= amount
                    state.released_total += amount - used
                    state.overrun_total += actual - used
                state.spent += actual
                after.append(state.spent)
            return after

    def release(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        with self._lock:
            entries = self._holds.pop(hold_id, None)
            if not entries:
                return
            for key, amount in entries.items():
                state = self._counters.get(key)
                if state is not None:
                    state.reserved -= amount
                    state.released_total += amount

    def counters(self, now: float) -> list[CounterState]:
        with self._lock:
            self._sweep(now)
            return [
                CounterState(
                    s.key, s.budget, s.scope, s.period_start, s.period_end, s.limit, s.spent,
                    s.reserved, s.reserved_total, s.released_total, s.overrun_total,
                )
                for s in self._counters.values()
                if s.period_end is None or s.period_end > now
            ]

    async def areserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        return self.reserve(hold_id, charges, expires_at, now)

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        return self.settle(hold_id, charges, actuals, now)

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        self.release(hold_id, charges, now)

    async def acounters(self, now: float) -> list[CounterState]:
        return self.counters(now)

    def close(self) -> None:
        return None
