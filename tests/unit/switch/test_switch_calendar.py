"""Switch calendars: the IVR's rule language plus time zones, holidays and 调休 days."""

from __future__ import annotations

import datetime as dt

import pytest

from switch.calendar import CalendarSet, parse_rule, zoned_calendar
from switch.config import ConfigError

CN_2026 = {
    "timezone": "Asia/Shanghai",
    "rules": ["mon-fri 08:30-12:00 13:30-18:00", "周六 09:00-12:00"],
    "holidays": ["2026-10-01..2026-10-07", "2026-01-01"],
    "workdays": ["2026-09-27", "2026-10-10"],
}


def test_weekly_hours_with_lunch_break_and_saturday() -> None:
    cal = zoned_calendar("wh", CN_2026, "calendars.wh")
    assert cal.is_open(dt.datetime(2026, 11, 30, 8, 30))        # Monday opening minute
    assert not cal.is_open(dt.datetime(2026, 11, 30, 8, 29))
    assert not cal.is_open(dt.datetime(2026, 11, 30, 12, 30))   # lunch
    assert cal.is_open(dt.datetime(2026, 11, 30, 17, 59))
    assert not cal.is_open(dt.datetime(2026, 11, 30, 18, 0))    # ranges are half-open
    assert cal.is_open(dt.datetime(2026, 11, 28, 11, 0))        # Saturday morning
    assert not cal.is_open(dt.datetime(2026, 11, 28, 14, 0))
    assert not cal.is_open(dt.datetime(2026, 11, 29, 10, 0))    # Sunday


def test_holidays_close_and_makeup_workdays_open_with_monday_hours() -> None:
    cal = zoned_calendar("wh", CN_2026, "calendars.wh")
    assert not cal.is_open(dt.datetime(2026, 10, 1, 10, 0))     # National Day (Thursday)
    assert not cal.is_open(dt.datetime(2026, 10, 7, 10, 0))
    assert cal.is_open(dt.datetime(2026, 10, 8, 10, 0))
    assert not cal.is_open(dt.datetime(2026, 1, 1, 10, 0))
    sunday_makeup = dt.datetime(2026, 9, 27, 10, 0)             # a Sunday worked (调休)
    assert sunday_makeup.weekday() == 6
    assert cal.is_open(sunday_makeup)
    assert not cal.is_open(sunday_makeup.replace(hour=12, minute=30))  # Monday's lunch too
    saturday_makeup = dt.datetime(2026, 10, 10, 15, 0)          # Saturday with weekday hours
    assert cal.is_open(saturday_makeup)


def test_time_zone_conversion_of_aware_datetimes() -> None:
    cal = zoned_calendar("wh", CN_2026, "calendars.wh")
    assert cal.is_open(dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC))       # 10:00 CST
    assert not cal.is_open(dt.datetime(2026, 11, 30, 11, 0, tzinfo=dt.UTC))  # 19:00 CST
    ny = zoned_calendar("ny", {"timezone": "America/New_York", "rules": ["daily 09:00-17:00"]},
                        "calendars.ny")
    assert ny.is_open(dt.datetime(2026, 7, 1, 14, 0, tzinfo=dt.UTC))         # 10:00 EDT
    assert not ny.is_open(dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC))     # 08:00 EDT


def test_calendar_set() -> None:
    cals = CalendarSet.from_config({"wh": CN_2026, "always": {"rules": ["daily 00:00-24:00"]}})
    assert cals.names() == ("wh", "always")
    assert cals.is_open("always", dt.datetime(2026, 10, 1, 3, 0))
    assert not cals.is_open("wh", dt.datetime(2026, 10, 1, 10, 0))
    with pytest.raises(KeyError):
        cals.is_open("nope", dt.datetime(2026, 10, 1, 3, 0))


def test_rule_parsing_matches_the_ivr_ast() -> None:
    rule = parse_rule("closed 2026-10-01..2026-10-07", "k")
    assert rule.kind.text == "closed" and rule.dates == (("2026-10-01", "2026-10-07"),)
    rule = parse_rule("open 2026-10-11 08:30-18:00", "k")
    assert rule.dates == (("2026-10-11", "2026-10-11"),) and rule.times == (("08:30", "18:00"),)


@pytest.mark.parametrize(("table", "key", "message"), [
    ({"rules": ["mon-fri 18:00-08:30"]}, "calendars.c.rules[0]", "is empty"),
    ({"rules": ["mon-fri 25:00-26:00"]}, "calendars.c.rules[0]", "impossible time"),
    ({"rules": ["someday 08:00-09:00"]}, "calendars.c.rules[0]", "not a day word"),
    ({"rules": ["mon-fri 8am-5pm"]}, "calendars.c.rules[0]", "neither a time range"),
    ({"rules": ["mon-fri"]}, "calendars.c.rules[0]", "needs opening hours"),
    ({"rules": ["mon 08:00-09:00"], "holidays": ["2026-02-30"]}, "calendars.c.holidays[0]",
     "impossible date"),
    ({"rules": ["sat 08:00-09:00"], "workdays": ["2026-10-11"]}, "calendars.c.workdays",
     "need opening hours"),
    ({"rules": ["mon 08:00-09:00"], "timezone": "Mars/Olympus"}, "calendars.c.timezone",
     "unknown time zone"),
    ({"rules": "mon 08:00-09:00"}, "calendars.c.rules", "list of strings"),
    ({"rule": ["mon 08:00-09:00"]}, "calendars.c.rule", "unknown key"),
    ({}, "calendars.c.rules", "at least one rule"),
])
def test_errors_name_the_key(table: dict[str, object], key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        CalendarSet.from_config({"c": table})
    assert info.value.key == key
