"""The calling window under a fake clock: weekly hours, weekends, holidays, make-up days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from switch.calendar import CalendarSet, zoned_calendar
from switch.campaigns import CallingWindow, CampaignError, compile_window, is_inside, next_opening

CN = ZoneInfo("Asia/Shanghai")


def at(day: str, hhmm: str, sec: int = 0) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(h, m, sec), tzinfo=CN)


@pytest.fixture
def calendars() -> CalendarSet:
    # 2026: National Day 10-01..10-07 closed; Saturday 10-10 is a make-up working day.
    return CalendarSet([zoned_calendar("workdays", {
        "timezone": "Asia/Shanghai", "rules": ["mon-fri 00:00-24:00"],
        "holidays": ["2026-10-01..2026-10-07"], "workdays": ["2026-10-10"]}, "calendars.w")])


WEEKDAYS = CallingWindow(("mon-fri 09:00-20:00",))
WORKING_DAYS = CallingWindow(("daily 09:00-20:00",), calendar="workdays")


@pytest.mark.parametrize(("day", "hhmm", "inside"), [
    ("2026-11-30", "08:59", False),   # Monday before opening
    ("2026-11-30", "09:00", True),
    ("2026-11-30", "19:59", True),
    ("2026-11-30", "20:00", False),   # the end is exclusive
    ("2026-11-28", "12:00", False),   # Saturday
    ("2026-11-29", "12:00", False),   # Sunday
])
def test_weekly_hours(day: str, hhmm: str, inside: bool) -> None:
    assert is_inside(WEEKDAYS, at(day, hhmm)) is inside


def test_minute_resolution_last_second_inside() -> None:
    assert is_inside(WEEKDAYS, at("2026-11-30", "19:59", 59))


def test_other_timezone_instant_is_converted() -> None:
    # 01:30 UTC is 09:30 in Shanghai.
    when = dt.datetime(2026, 11, 30, 1, 30, tzinfo=dt.UTC)
    assert is_inside(WEEKDAYS, when)
    assert not is_inside(WEEKDAYS, when - dt.timedelta(hours=1))


@pytest.mark.parametrize(("day", "inside"), [
    ("2026-09-30", True),    # Wednesday, normal working day
    ("2026-10-01", False),   # holiday (Thursday)
    ("2026-10-05", False),   # holiday (Monday)
    ("2026-10-08", True),    # back to work
    ("2026-10-10", True),    # make-up Saturday (调休)
    ("2026-10-11", False),   # ordinary Sunday
])
def test_holidays_and_make_up_days(calendars: CalendarSet, day: str, inside: bool) -> None:
    assert is_inside(WORKING_DAYS, at(day, "10:00"), calendars) is inside
    assert not is_inside(WORKING_DAYS, at(day, "20:30"), calendars)


def test_next_opening_inside_is_now() -> None:
    now = at("2026-11-30", "10:15", 30)
    assert next_opening(WEEKDAYS, now) == now


def test_next_opening_after_hours_is_next_morning() -> None:
    assert next_opening(WEEKDAYS, at("2026-11-30", "20:00")) == at("2026-12-01", "09:00")
    assert next_opening(WEEKDAYS, at("2026-11-30", "06:00")) == at("2026-11-30", "09:00")


def test_next_opening_skips_weekend() -> None:
    assert next_opening(WEEKDAYS, at("2026-12-04", "21:00")) == at("2026-12-07", "09:00")


def test_next_opening_skips_holiday_week_to_make_up_day(calendars: CalendarSet) -> None:
    opening = next_opening(WORKING_DAYS, at("2026-09-30", "20:00"), calendars)
    assert opening == at("2026-10-08", "09:00")
    opening = next_opening(WORKING_DAYS, at("2026-10-09", "20:05"), calendars)
    assert opening == at("2026-10-10", "09:00")   # Saturday make-up day
    opening = next_opening(WORKING_DAYS, at("2026-10-10", "20:05"), calendars)
    assert opening == at("2026-10-12", "09:00")   # Sunday skipped


def test_several_ranges_a_day() -> None:
    window = CallingWindow(("mon-fri 09:00-12:00", "mon-fri 14:00-18:00"))
    assert not is_inside(window, at("2026-11-30", "13:00"))
    assert next_opening(window, at("2026-11-30", "12:00")) == at("2026-11-30", "14:00")


def test_compiled_window_timestamps() -> None:
    win = compile_window(WEEKDAYS)
    t = at("2026-11-28", "10:00").timestamp()    # Saturday
    assert not win.is_inside_ts(t)
    assert win.next_opening_ts(t) == at("2026-11-30", "09:00").timestamp()


@pytest.mark.parametrize(("window", "message"), [
    (CallingWindow(("mon-fri 20:00-09:00",)), "empty"),
    (CallingWindow(("someday 09:00-10:00",)), "day word"),
    (CallingWindow(()), "needs hours"),
    (CallingWindow(("mon-fri 09:00-20:00",), timezone="Mars/Base"), "time zone"),
    (CallingWindow(("mon-fri 09:00-20:00",), calendar="nope"), "no calendar"),
])
def test_bad_windows(window: CallingWindow, message: str) -> None:
    with pytest.raises(CampaignError, match=message):
        compile_window(window, CalendarSet())


def test_calendar_in_other_timezone_rejected(calendars: CalendarSet) -> None:
    window = CallingWindow(("daily 09:00-20:00",), timezone="UTC", calendar="workdays")
    with pytest.raises(CampaignError, match="one time zone"):
        compile_window(window, calendars)


def test_never_open_window_has_no_opening(calendars: CalendarSet) -> None:
    never = CalendarSet([zoned_calendar("shut", {
        "timezone": "Asia/Shanghai", "rules": ["sat 10:00-11:00"]}, "c")])
    window = CallingWindow(("mon-fri 09:00-20:00",), calendar="shut")
    assert next_opening(window, at("2026-11-30", "10:00"), never) is None
