"""Allowed-hours windows and budget periods at their boundaries: month ends (leap
years), DST changes in Europe/Berlin and America/New_York, overnight windows, holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tollway.core.cost.windows import AllowedHours, local_instant, parse_window, period_bounds
from tollway.core.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)  # type: ignore[misc]


def ts(moment: datetime) -> float:
    return moment.timestamp()


# --------------------------------------------------------------------------- parsing


def test_window_text_forms_parse_to_days_and_minutes() -> None:
    win, tz = parse_window("mon-fri 08:00-19:00")
    assert (sorted(win.days), win.start, win.end, tz) == ([0, 1, 2, 3, 4], 480, 1140, None)
    win, tz = parse_window("sat 10:00-14:00 Europe/Berlin")
    assert (sorted(win.days), tz) == ([5], "Europe/Berlin")
    win, _ = parse_window("22:00-06:00")
    assert win.days == frozenset(range(7)) and win.overnight
    win, _ = parse_window("sat-sun")
    assert (sorted(win.days), win.start, win.end) == ([5, 6], 0, 1440)
    win, _ = parse_window("fri-mon 00:00-24:00")
    assert sorted(win.days) == [0, 4, 5, 6]
    win, _ = parse_window("mon,wed,fri 09:00-12:00")
    assert sorted(win.days) == [0, 2, 4]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("mon-fri 8-19", "not a time"),
        ("funday 08:00-10:00", "not a day"),
        ("mon 08:00-08:00", "start equals end"),
        ("mon 25:00-26:00", "not a time"),
        ("mon 08:00", "expected a range"),
        ("", "expected"),
    ],
)
def test_malformed_windows_are_config_errors_that_say_what_to_write(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_window(spec)


def test_a_schedule_with_two_timezones_is_rejected() -> None:
    with pytest.raises(ConfigError, match="one timezone"):
        AllowedHours(["mon 08:00-10:00 Europe/Berlin"], timezone="America/New_York")


# --------------------------------------------------------------------------- is_open / next_open


def test_weekday_window_opens_at_start_and_closes_at_end_in_local_time() -> None:
    hours = AllowedHours(["mon-fri 08:00-19:00"], "Europe/Berlin")
    assert not hours.is_open(at(BERLIN, 2025, 1, 6, 7, 59, 59))  # Monday
    assert hours.is_open(at(BERLIN, 2025, 1, 6, 8, 0))
    assert hours.is_open(at(BERLIN, 2025, 1, 6, 18, 59, 59))
    assert not hours.is_open(at(BERLIN, 2025, 1, 6, 19, 0))
    assert not hours.is_open(at(BERLIN, 2025, 1, 11, 12, 0))  # Saturday
    # Same instant seen from UTC: 07:30Z is 08:30 in Berlin (CET, +1).
    assert hours.is_open(datetime(2025, 1, 6, 7, 30, tzinfo=UTC))


def test_next_open_after_friday_close_is_monday_morning() -> None:
    hours = AllowedHours(["mon-fri 08:00-19:00"], "Europe/Berlin")
    nxt = hours.next_open(at(BERLIN, 2025, 1, 10, 19, 0))
    assert nxt == at(BERLIN, 2025, 1, 13, 8, 0)
    assert hours.next_open(at(BERLIN, 2025, 1, 8, 9, 0)) == at(BERLIN, 2025, 1, 8, 9, 0)


def test_overnight_window_spans_midnight_from_the_listed_day() -> None:
    hours = AllowedHours(["fri 22:00-06:00"], "UTC")
    assert not hours.is_open(datetime(2025, 1, 10, 21, 59, tzinfo=UTC))  # Fri
    assert hours.is_open(datetime(2025, 1, 10, 22, 0, tzinfo=UTC))
    assert hours.is_open(datetime(2025, 1, 11, 5, 59, tzinfo=UTC))  # Sat morning
    assert not hours.is_open(datetime(2025, 1, 11, 6, 0, tzinfo=UTC))
    assert not hours.is_open(datetime(2025, 1, 11, 23, 0, tzinfo=UTC))  # Sat night: not listed
    assert not hours.is_open(datetime(2025, 1, 10, 3, 0, tzinfo=UTC))  # Thu night did not start
    nxt = hours.next_open(datetime(2025, 1, 11, 6, 0, tzinfo=UTC))
    assert nxt == datetime(2025, 1, 17, 22, 0, tzinfo=UTC)


def test_daily_overnight_window_is_open_just_after_midnight() -> None:
    hours = AllowedHours(["22:00-06:00"])
    assert hours.is_open(datetime(2025, 3, 1, 0, 0, tzinfo=UTC))
    assert hours.next_open(datetime(2025, 3, 1, 12, 0, tzinfo=UTC)) == datetime(
        2025, 3, 1, 22, 0, tzinfo=UTC
    )


def test_union_of_windows_is_open_in_either() -> None:
    hours = AllowedHours(["mon-fri 08:00-19:00", "sat 10:00-14:00"], "Europe/Berlin")
    assert hours.is_open(at(BERLIN, 2025, 1, 11, 10, 0))
    assert not hours.is_open(at(BERLIN, 2025, 1, 11, 14, 0))
    assert hours.next_open(at(BERLIN, 2025, 1, 10, 20, 0)) == at(BERLIN, 2025, 1, 11, 10, 0)


def test_holiday_closes_the_whole_local_date_even_inside_an_overnight_window() -> None:
    hours = AllowedHours(
        ["mon-fri 08:00-19:00", "daily 22:00-02:00"], "Europe/Berlin",
        holidays=[date(2025, 12, 25), date(2025, 12, 26)],
    )
    assert not hours.is_open(at(BERLIN, 2025, 12, 25, 10, 0))  # Thursday, a holiday
    assert not hours.is_open(at(BERLIN, 2025, 12, 26, 1, 0))  # carried over from the 25th
    assert hours.is_open(at(BERLIN, 2025, 12, 24, 23, 0))
    # Next open after Christmas morning: Saturday the 27th at 00:00, still inside the
    # overnight window that started on the (holiday) 26th at 22:00.
    assert hours.next_open(at(BERLIN, 2025, 12, 25, 9, 0)) == at(BERLIN, 2025, 12, 27, 0, 0)


def test_window_keeps_wall_clock_hours_across_the_berlin_spring_change() -> None:
    hours = AllowedHours(["daily 08:00-19:00"], "Europe/Berlin")
    # 30 March 2025: clocks jump 02:00 CET -> 03:00 CEST. 08:00 local is 06:00Z after.
    assert not hours.is_open(datetime(2025, 3, 30, 5, 59, tzinfo=UTC))
    assert hours.is_open(datetime(2025, 3, 30, 6, 0, tzinfo=UTC))
    assert hours.is_open(datetime(2025, 3, 29, 7, 0, tzinfo=UTC))  # 08:00 CET the day before
    assert hours.next_open(datetime(2025, 3, 30, 0, 0, tzinfo=UTC)) == datetime(
        2025, 3, 30, 6, 0, tzinfo=UTC
    )


def test_window_starting_inside_the_spring_gap_opens_when_the_clock_jumps() -> None:
    hours = AllowedHours(["sun 02:30-05:00"], "Europe/Berlin")
    # 02:30 does not exist on 30 March 2025: the first instant at or after it is 03:00 CEST.
    nxt = hours.next_open(at(BERLIN, 2025, 3, 30, 0, 0))
    assert nxt == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    assert nxt.astimezone(BERLIN).hour == 3
    before = nxt.astimezone(UTC) - timedelta(seconds=1)  # 01:59:59 CET
    assert hours.is_open(nxt) and not hours.is_open(before)


def test_repeated_fall_back_hour_is_inside_the_window_both_times() -> None:
    hours = AllowedHours(["sun 01:00-02:00"], "America/New_York")
    # 2 November 2025: 01:00-02:00 EDT happens, then again as EST.
    first = at(NEW_YORK, 2025, 11, 2, 1, 30, fold=0)
    second = at(NEW_YORK, 2025, 11, 2, 1, 30, fold=1)
    assert ts(second) - ts(first) == 3600
    assert hours.is_open(first) and hours.is_open(second)
    assert not hours.is_open(at(NEW_YORK, 2025, 11, 2, 2, 0))


def test_next_open_across_the_new_york_spring_change_is_a_wall_clock_morning() -> None:
    hours = AllowedHours(["mon-fri 09:00-17:00"], "America/New_York")
    # Friday 7 March 2025 (EST, -5) closes; Monday 10 March opens at 09:00 EDT (-4).
    nxt = hours.next_open(at(NEW_YORK, 2025, 3, 7, 17, 0))
    assert nxt == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert hours.is_open(datetime(2025, 3, 7, 14, 0, tzinfo=UTC))  # 09:00 EST
    assert not hours.is_open(datetime(2025, 3, 10, 12, 30, tzinfo=UTC))  # 08:30 EDT


def test_schedule_that_never_opens_has_no_next_open() -> None:
    hours = AllowedHours(["mon 08:00-09:00"], holidays=[
        date(2025, 1, 6) + timedelta(weeks=w) for w in range(200)
    ])
    assert hours.next_open(datetime(2025, 1, 6, 9, 0, tzinfo=UTC)) is None


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        AllowedHours(["mon 08:00-09:00"]).is_open(datetime(2025, 1, 6, 8, 30))


# --------------------------------------------------------------------------- periods


def bounds(period: str, moment: datetime, tz: ZoneInfo | type[UTC] = UTC) -> tuple[datetime, datetime | None]:
    start, end = period_bounds(period, moment.timestamp(), tz)  # type: ignore[arg-type]
    return (
        datetime.fromtimestamp(start, tz),  # type: ignore[arg-type]
        None if end is None else datetime.fromtimestamp(end, tz),  # type: ignore[arg-type]
    )


def test_month_resets_on_the_first_including_february_of_leap_and_common_years() -> None:
    assert bounds("month", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)) == (
        datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
    )
    assert bounds("month", datetime(2024, 3, 1, tzinfo=UTC))[0] == datetime(2024, 3, 1, tzinfo=UTC)
    assert bounds("month", datetime(2025, 2, 28, 12, tzinfo=UTC))[1] == datetime(
        2025, 3, 1, tzinfo=UTC
    )
    assert bounds("month", datetime(2025, 12, 31, 23, 0, tzinfo=UTC))[1] == datetime(
        2026, 1, 1, tzinfo=UTC
    )


def test_month_in_berlin_resets_at_berlin_midnight_not_utc() -> None:
    # 31 Jan 2025 23:30Z is already 1 Feb 00:30 in Berlin: the February period.
    start, end = bounds("month", datetime(2025, 1, 31, 23, 30, tzinfo=UTC), BERLIN)
    assert start == at(BERLIN, 2025, 2, 1) and end == at(BERLIN, 2025, 3, 1)
    # March 2025 contains the spring change: it is one hour shorter than 31 days.
    start, end = bounds("month", at(BERLIN, 2025, 3, 15), BERLIN)
    assert end is not None and ts(end) - ts(start) == 31 * 86400 - 3600


def test_day_periods_on_dst_change_days_last_23_and_25_hours() -> None:
    spring = period_bounds("day", ts(at(NEW_YORK, 2025, 3, 9, 12)), NEW_YORK)
    fall = period_bounds("day", ts(at(NEW_YORK, 2025, 11, 2, 12)), NEW_YORK)
    assert spring[1] - spring[0] == 23 * 3600  # type: ignore[operator]
    assert fall[1] - fall[0] == 25 * 3600  # type: ignore[operator]
    assert spring[0] == ts(at(NEW_YORK, 2025, 3, 9))
    berlin = period_bounds("day", ts(at(BERLIN, 2025, 10, 26, 23, 59)), BERLIN)
    assert berlin[1] - berlin[0] == 25 * 3600  # type: ignore[operator]


def test_a_call_one_second_before_midnight_and_one_at_midnight_land_in_different_days() -> None:
    before = period_bounds("day", ts(at(BERLIN, 2025, 6, 1, 23, 59, 59)), BERLIN)
    after = period_bounds("day", ts(at(BERLIN, 2025, 6, 2)), BERLIN)
    assert before[1] == after[0] == ts(at(BERLIN, 2025, 6, 2))


def test_week_starts_monday_local_midnight() -> None:
    start, end = bounds("week", at(BERLIN, 2025, 3, 30, 12), BERLIN)  # Sunday, DST day
    assert start == at(BERLIN, 2025, 3, 24) and end == at(BERLIN, 2025, 3, 31)
    assert end is not None and ts(end) - ts(start) == 7 * 86400 - 3600


def test_hours_and_minutes_follow_the_clock_through_the_fall_back_hour() -> None:
    first = at(BERLIN, 2025, 10, 26, 2, 30, fold=0)  # CEST
    second = at(BERLIN, 2025, 10, 26, 2, 30, fold=1)  # CET, an hour later
    a = period_bounds("hour", ts(first), BERLIN)
    b = period_bounds("hour", ts(second), BERLIN)
    assert a == (int(ts(first)) - 1800, int(ts(first)) + 1800)
    assert b == (a[1], a[1] + 3600)
    m = period_bounds("minute", ts(second) + 42, BERLIN)
    assert m == (int(ts(second)), int(ts(second)) + 60)


def test_hour_periods_in_a_half_hour_zone_start_at_local_full_hours() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    start, end = period_bounds("hour", ts(datetime(2025, 1, 1, 0, 10, tzinfo=UTC)), kolkata)
    assert datetime.fromtimestamp(start, kolkata).minute == 0
    assert start == ts(datetime(2024, 12, 31, 23, 30, tzinfo=UTC)) and end == start + 3600


def test_total_period_never_resets() -> None:
    assert period_bounds("total", 1e9, UTC) == (0, None)


def test_local_instant_of_a_gap_time_is_the_jump() -> None:
    jump = local_instant(date(2025, 3, 9), 2 * 60 + 30, NEW_YORK)
    assert jump.astimezone(UTC) == datetime(2025, 3, 9, 7, 0, tzinfo=UTC)
