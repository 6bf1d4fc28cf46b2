"""The budget store contract: what every backend (memory, SQLite, Redis, PostgreSQL)
implements, and the invariants the guard relies on. Backends import this module; the
guard and the store factory sit above it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord


DEFAULT_RESERVATION_TTL = 600.0
"""Seconds a reservation lives without being settled or released (a crashed holder's
reservation is freed after this). Set it above your longest call."""


# =========================================================================== store contract


@dataclass(slots=True)
class Charge:
    """One counter a reservation touches, and the amount reserved on it."""

    key: str
    """``budget|scope|period_start``: unique per counter."""
    budget: str
    scope: str
    period_start: int
    period_end: int | None
    """Epoch seconds; None for ``total`` budgets (never reset)."""
    limit: int
    amount: int


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a reservation failed: the index of the first charge without room and what
    its counter held."""

    index: int
    spent: int
    reserved: int


@dataclass(slots=True)
class CounterState:
    """A counter as stored (amounts in counter units: nano-USD, tokens or requests)."""

    key: str
    budget: str
    scope: str
    period_start: int
    period_end: int | None
    limit: int
    spent: int = 0
    reserved: int = 0
    reserved_total: int = 0
    released_total: int = 0
    overrun_total: int = 0
    leased: int = 0
    """Room processes have set aside for their next calls (the SQLite store's per-process
    leases; 0 in the other stores). Not spent and not reserved by any call: a check for
    room counts it (``spent + reserved + leased + amount <= limit``), so it can never let
    a budget be overshot; an unused lease goes back within about a second."""


class BudgetStore(Protocol):
    """Where counters live. Every method is atomic on its own; the four stores
    (memory, sqlite, redis, postgres) implement exactly these semantics:

    - ``reserve``: sweep holds whose ``expires_at <= now`` (their amounts go back:
      ``reserved -= a``, ``released_total += a``), then if every charge fits
      (``spent + reserved + amount <= limit``) add each amount to ``reserved`` and
      ``reserved_total``, remember them under ``hold_id`` and return None; else change
      nothing (but the sweep) and return the Denial of the first charge that did not fit.
    - ``settle``: for each charge, ``spent += actual``; if the hold still holds it,
      ``reserved -= amount``, ``released_total += amount - min(actual, amount)`` and
      ``overrun_total += actual - min(actual, amount)``; if it expired meanwhile,
      ``overrun_total += actual``. Returns the counters' ``spent`` after the settle, one
      per charge (soft thresholds use it: exactly one settle crosses a threshold);
      with ``spent=False`` (no soft threshold) a store may return ``[]`` instead, and
      may make the settle durable before it is visible in ``counters`` (the SQLite
      store's spool).
    - ``release``: give the hold's amounts back (``reserved -= a``,
      ``released_total += a``); a no-op for an unknown or expired hold.
    - ``counters``: every counter whose period has not ended (expired holds swept).
    """

    def reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None: ...

    def settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]: ...

    def release(self, hold_id: str, charges: Sequence[Charge], now: float) -> None: ...

    def counters(self, now: float) -> list[CounterState]: ...

    async def areserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None: ...

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]: ...

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None: ...

    async def acounters(self, now: float) -> list[CounterState]: ...

    def close(self) -> None: ...


class SharesLedgerDatabase(Protocol):
    """An optional capability of a store: its counters can live in the same database as
    a ledger (the SQLite store in the ledger's file, the PostgreSQL store in the
    ledger's database). Then the end of a hold and the call's ledger row are written in
    ONE transaction: either both are durable or neither is, so a paid call can never be
    settled without its row (nor recorded without its settle). The guard asks
    ``shares_database`` once per ledger; stores that cannot (memory, Redis) simply do
    not implement it, and the row is written first, the settle after.

    - ``shares_database(ledger)``: True when ``ledger`` writes to this store's database.
    - ``settle_and_record``: exactly ``settle`` (``actuals`` given) or ``release``
      (``actuals`` None) plus inserting ``row`` into ``ledger``'s table, atomically;
      returns what ``settle`` returns (an empty list for a release). ``spent=False``
      says the caller has no use for the counters' spent (no soft threshold): a store
      may then skip reading it back and return an empty list.
    """

    def shares_database(self, ledger: Any) -> bool: ...

    def settle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: Any, row: CallRecord, *, spent: bool = True,
    ) -> list[int]: ...

    async def asettle_and_record(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int] | None,
        now: float, ledger: Any, row: CallRecord, *, spent: bool = True,
    ) -> list[int]: ...


COUNTER_RETENTION = 3600
"""Seconds a counter is kept after its period ended (late settles still land in it)."""


def counter_key(budget: str, scope: str, period_start: int) -> str:
    return f"{budget}|{scope}|{period_start}"
