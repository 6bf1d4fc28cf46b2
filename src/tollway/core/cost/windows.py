"""Calendar time for budgets and allowed hours: weekly windows, holidays, period resets.

Everything here is wall-clock time in a named timezone (``zoneinfo``), because that is
how people write policies: "mon-fri 08:00-19:00 Europe/Berlin", "5 USD a day". The
rules at the edges, which the tests pin down:

- A window is open from its start (inclusive) to its end (exclusive) in local wall time.
  ``22:00-06:00`` is an overnight window: it opens on each listed day at 22:00 and closes
  the next morning at 06:00 (``fri 22:00-06:00`` is open Saturday 05:59). ``00:00-24:00``
  (or a bare day list, ``sat-sun``) is the whole day.
- DST: a wall time that does not exist (the spring-forward gap) opens at the instant the
  clock jumps past it; a wall time that happens twice (fall-back) is inside the window
  both times. Windows never shift by an hour across a change.
- A holiday closes its whole local date, even inside an overnight window that started
  the evening before.
- Periods (minute ... month) reset at calendar boundaries in the timezone: a day budget
  in Europe/Berlin resets at Berlin midnight (23 or 25 hours apart on DST days), weeks on
  Monday 00:00, months on the 1st. ``total`` never resets.

No clock is read here: every function takes the moment to judge, so tests control time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tollway.core.errors import ConfigError

__all__ = [
    "PERIODS",
    "AllowedHours",
    "Period",
    "WeeklyWindow",
    "local_instant",
    "parse_window",
    "period_bounds",
    "zone",
]

Period = Literal["minute", "hour", "day", "week", "month", "total"]
PERIODS: tuple[str, ...] = ("minute", "hour", "day", "week", "month", "total")

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    "daily": tuple(range(7)),
    "everyday": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "weekend": (5, 6),
}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_DAY_MINUTES = 24 * 60
_SEARCH_DAYS = 3 * 366
"""How far next_open looks ahead (holiday lists rarely close more than a few weeks)."""


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """A timezone by IANA name (``UTC``, ``Europe/Berlin``); ConfigError when unknown."""
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown timezone {name!r}: use an IANA name such as 'UTC', 'Europe/Berlin' "
            "or 'America/New_York'"
        ) from None


def local_instant(day: date, minutes: int, tz: tzinfo) -> datetime:
    """The first instant at which the wall clock in ``tz`` reads ``day`` + ``minutes``
    or later: the wall time itself, its earlier occurrence when it happens twice, and the
    moment the clock jumps past it when it falls in a DST gap."""
    naive = datetime.combine(day, time()) + timedelta(minutes=minutes)
    first = naive.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=1 maps to an instant before the jump, fold=0 to one after it.
    # Find the jump (transitions fall on whole seconds) by bisection.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = utc
    if lo > hi:
        lo, hi = hi, lo
    after = hi.astimezone(tz).utcoffset()
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0).astimezone(tz)


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """Listed weekdays (0 = Monday), from ``start`` to ``end`` minutes past midnight.
    ``end <= start`` means the window runs past midnight into the next day."""

    days: frozenset[int]
    start: int
    end: int
    text: str

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def covers(self, weekday: int, minute: float) -> bool:
        """Whether local weekday/minute-of-day is inside the window."""
        if not self.overnight:
            return weekday in self.days and self.start <= minute < self.end
        if weekday in self.days and minute >= self.start:
            return True
        return (weekday - 1) % 7 in self.days and minute < self.end


def _parse_days(text: str, spec: str) -> frozenset[int]:
    days: set[int] = set()
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item in _DAY_ALIASES:
            days.update(_DAY_ALIASES[item])
            continue
        first, sep, last = item.partition("-")
        try:
            a = _DAYS.index(first[:3])
            b = _DAYS.index(last[:3]) if sep else a
        except ValueError:
            raise ConfigError(
                f"window {spec!r}: {item!r} is not a day; use mon, tue, wed, thu, fri, sat, "
                "sun, ranges like mon-fri, lists like mon,wed, or daily/weekdays/weekends"
            ) from None
        day = a
        while True:  # ranges wrap: fri-mon is fri, sat, sun, mon
            days.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    if not days:
        raise ConfigError(f"window {spec!r}: no days given")
    return frozenset(days)


def _parse_time(text: str, spec: str, *, end: bool) -> int:
    match = _TIME.match(text.strip())
    if match:
        hours, minutes = int(match.group(1)), int(match.group(2))
        if minutes < 60 and (hours < 24 or (end and hours == 24 and minutes == 0)):
            return hours * 60 + minutes
    raise ConfigError(
        f"window {spec!r}: {text!r} is not a time; write HH:MM (24-hour clock, 24:00 only "
        "as an end)"
    )


def parse_window(spec: str) -> tuple[WeeklyWindow, str | None]:
    """``"mon-fri 08:00-19:00"``, ``"sat 10:00-14:00"``, ``"22:00-06:00"`` (every day),
    ``"sat-sun"`` (whole days), optionally followed by a timezone
    (``"mon-fri 08:00-19:00 Europe/Berlin"``). Returns the window and the timezone name
    given in the text, if any."""
    tokens = spec.split()
    tz_name: str | None = None
    if tokens and ("/" in tokens[-1] or tokens[-1].upper() == "UTC"):
        tz_name = tokens.pop()
    if not tokens or len(tokens) > 2:
        raise ConfigError(
            f"window {spec!r}: expected '<days> HH:MM-HH:MM' such as 'mon-fri 08:00-19:00', "
            "'22:00-06:00' or 'sat-sun'"
        )
    days_text, range_text = "daily", None
    if len(tokens) == 2:
        days_text, range_text = tokens
    elif ":" in tokens[0]:
        range_text = tokens[0]
    else:
        days_text = tokens[0]
    days = _parse_days(days_text, spec)
    if range_text is None:
        start, end = 0, _DAY_MINUTES
    else:
        first, sep, last = range_text.partition("-")
        if not sep:
            raise ConfigError(f"window {spec!r}: expected a range HH:MM-HH:MM, got {range_text!r}")
        start = _parse_time(first, spec, end=False)
        end = _parse_time(last, spec, end=True)
        if start == end:
            raise ConfigError(
                f"window {spec!r}: start equals end; for the whole day write 00:00-24:00"
            )
    return WeeklyWindow(days, start, end, " ".join(tokens)), tz_name


class AllowedHours:
    """When calls may be made: the union of weekly windows, minus holidays, in one
    timezone. ``is_open(at)`` / ``next_open(at)`` take any aware datetime."""

    __slots__ = ("holidays", "timezone", "tz", "windows")

    def __init__(
        self,
        windows: Iterable[str | WeeklyWindow],
        timezone: str | None = None,
        holidays: Iterable[date] = (),
    ) -> None:
        parsed: list[WeeklyWindow] = []
        named: set[str] = set()
        for window in windows:
            if isinstance(window, WeeklyWindow):
                parsed.append(window)
                continue
            win, tz_name = parse_window(window)
            if tz_name is not None:
                named.add(tz_name)
            parsed.append(win)
        if timezone is not None:
            named.add(timezone)
        if len(named) > 1:
            raise ConfigError(
                f"allowed hours name several timezones ({', '.join(sorted(named))}); give one "
                "timezone per schedule (split it into several schedules otherwise)"
            )
        timezone = named.pop() if named else "UTC"
        if not parsed:
            raise ConfigError("allowed hours need at least one window, e.g. 'mon-fri 08:00-19:00'")
        self.windows = tuple(parsed)
        self.timezone = timezone
        self.tz = zone(timezone)
        self.holidays = frozenset(holidays)

    @property
    def text(self) -> str:
        """Human form for error messages: ``mon-fri 08:00-19:00 Europe/Berlin``."""
        extra = f" except {len(self.holidays)} holiday(s)" if self.holidays else ""
        return f"{', '.join(w.text for w in self.windows)} {self.timezone}{extra}"

    def is_open(self, at: datetime) -> bool:
        local = _aware(at).astimezone(self.tz)
        if local.date() in self.holidays:
            return False
        weekday = local.weekday()
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return any(w.covers(weekday, minute) for w in self.windows)

    def next_open(self, at: datetime) -> datetime | None:
        """``at`` itself when open, else the first moment after it that is open (in the
        schedule's timezone); None when nothing opens within three years."""
        at = _aware(at)
        if self.is_open(at):
            return at.astimezone(self.tz)
        day = at.astimezone(self.tz).date()
        for offset in range(_SEARCH_DAYS):
            current = day + timedelta(days=offset)
            if current in self.holidays:
                continue
            starts = {0}  # a window carried over midnight, or a holiday just ended
            starts.update(w.start for w in self.windows if current.weekday() in w.days)
            for minutes in sorted(starts):
                candidate = local_instant(current, minutes, self.tz)
                if candidate > at and self.is_open(candidate):
                    return candidate
        return None


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("allowed hours need an aware datetime (with tzinfo), e.g. UTC")
    return at


# --------------------------------------------------------------------------- periods


def period_bounds(period: str, at: float, tz: tzinfo) -> tuple[int, int | None]:
    """The period containing epoch second ``at`` as ``(start, end)`` epoch seconds in
    calendar time of ``tz``; ``end`` is None for ``total`` (start 0)."""
    if period == "total":
        return 0, None
    moment = datetime.fromtimestamp(at, tz)
    if period in ("minute", "hour"):
        if period == "minute":
            floor = moment.replace(second=0, microsecond=0)
            step = timedelta(minutes=1)
        else:
            floor = moment.replace(minute=0, second=0, microsecond=0)
            step = timedelta(hours=1)
        start = floor.astimezone(UTC)
        if start.timestamp() > at:  # a fold: the floor went back into the other offset
            start = floor.replace(fold=1).astimezone(UTC)
        return int(start.timestamp()), int((start + step).timestamp())
    day = moment.date()
    if period == "day":
        first, nxt = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        nxt = first + timedelta(days=7)
    elif period == "month":
        first = day.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ConfigError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")
    start_ts = int(local_instant(first, 0, tz).timestamp())
    end_ts = int(local_instant(nxt, 0, tz).timestamp())
    return start_ts, end_ts
