"""Business-hours calendars for the dial plan, built on the IVR's calendar module.

One rule language for hotline staff: a switch calendar is written with exactly the lines an
IVR script's ``calendar`` block takes (``ivr_lang/calendars.py``)::

    [calendars.work_hours]
    timezone = "Asia/Shanghai"
    rules = ["mon-fri 08:30-18:00", "sat 09:00-12:00"]
    holidays = ["2026-10-01..2026-10-07"]      # closed all day
    workdays = ["2026-10-11"]                  # make-up working days (调休)

``holidays`` and ``workdays`` are shorthands: each holiday becomes a ``closed`` rule, each
make-up working day an ``open`` rule with the opening hours of ``workday_as`` (Monday by
default), because in China a 调休 Saturday or Sunday works a normal weekday. Exceptions win
over weekly hours, as in the IVR.

The IVR's :class:`ivr_lang.calendars.Calendar` evaluates naive local times; this module adds
the time zone: :meth:`ZonedCalendar.is_open` converts an aware datetime into the calendar's
zone first, and takes a naive one as already local. Pure: no clock is read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr_lang import ast as A
from ivr_lang.calendars import EXCEPTION_KINDS, Calendar, compile_calendar, day_set, rule_problems
from switch.config import ConfigError

__all__ = ["CalendarSet", "ZonedCalendar", "parse_rule", "zoned_calendar"]

DEFAULT_TIMEZONE = "Asia/Shanghai"
_TIME_RANGE = re.compile(r"^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$")
_DATE_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?$")


def _span(key: str) -> A.Span:
    return A.Span(file=key, line=1, col=1)


def parse_rule(line: str, key: str) -> A.CalRule:
    """One calendar line (``mon-fri 08:30-18:00``) as the IVR's AST rule, checked.

    Raises:
        ConfigError: naming ``key`` when the line is not a valid calendar rule.
    """
    words = line.split()
    if not words:
        raise ConfigError("expected a rule like 'mon-fri 08:30-18:00', got an empty string",
                          key=key)
    kind, times, dates = words[0], [], []
    for word in words[1:]:
        if m := _TIME_RANGE.match(word):
            times.append((m.group(1), m.group(2)))
        elif m := _DATE_RANGE.match(word):
            dates.append((m.group(1), m.group(2) or m.group(1)))
        else:
            raise ConfigError(f"{word!r} in {line!r} is neither a time range like 08:30-18:00 "
                              "nor a date like 2026-10-01 or 2026-10-01..2026-10-07", key=key)
    if kind not in EXCEPTION_KINDS and day_set(kind) is None:
        raise ConfigError(f"{kind!r} is not a day word (mon..sun, mon-fri, daily, weekdays, "
                          "weekend, 周一..周日, closed, open)", key=key)
    rule = A.CalRule(A.Name(kind, _span(key)), tuple(times), tuple(dates), _span(key))
    problems = rule_problems(rule)
    if problems:
        raise ConfigError(f"{problems[0][0]} in {line!r}", key=key)
    return rule


@dataclass(frozen=True, slots=True)
class ZonedCalendar:
    """An IVR calendar plus the time zone its hours are in."""

    calendar: Calendar
    tz: ZoneInfo

    @property
    def name(self) -> str:
        return self.calendar.name

    def local(self, when: dt.datetime) -> dt.datetime:
        """``when`` in the calendar's zone (a naive datetime is taken as already local)."""
        return when if when.tzinfo is None else when.astimezone(self.tz)

    def is_open(self, when: dt.datetime) -> bool:
        """Whether the service is open at ``when``."""
        return self.calendar.is_open(self.local(when))


def _weekday_hours(rules: Iterable[A.CalRule], weekday: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for rule in rules:
        days = day_set(rule.kind.text)
        if days is not None and weekday in days:
            out.extend(rule.times)
    return out


def zoned_calendar(name: str, table: Mapping[str, object], key: str) -> ZonedCalendar:
    """Compile one ``[calendars.NAME]`` table (see the module docstring).

    Raises:
        ConfigError: naming the dotted key of the first problem.
    """
    known = {"timezone", "rules", "holidays", "workdays", "workday_as"}
    for k in table:
        if k not in known:
            raise ConfigError(f"unknown key (expected one of {', '.join(sorted(known))})",
                              key=f"{key}.{k}")
    tz_name = table.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(tz_name, str):
        raise ConfigError(f"expected a time zone name like 'Asia/Shanghai', got {tz_name!r}",
                          key=f"{key}.timezone")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {tz_name!r}", key=f"{key}.timezone") from None
    rules = [parse_rule(line, f"{key}.rules[{i}]")
             for i, line in enumerate(_strings(table.get("rules", []), f"{key}.rules"))]
    for i, text in enumerate(_strings(table.get("holidays", []), f"{key}.holidays")):
        rules.append(parse_rule(f"closed {text}", f"{key}.holidays[{i}]"))
    base = table.get("workday_as", "mon")
    days = day_set(base) if isinstance(base, str) else None
    if days is None or len(days) != 1:
        raise ConfigError(f"expected one day word like 'mon', got {base!r}",
                          key=f"{key}.workday_as")
    hours = _weekday_hours(rules, next(iter(days)))
    workdays = _strings(table.get("workdays", []), f"{key}.workdays")
    if workdays and not hours:
        raise ConfigError(f"make-up working days need opening hours on {base!r}",
                          key=f"{key}.workdays")
    for i, text in enumerate(workdays):
        spans = " ".join(f"{a}-{b}" for a, b in hours)
        rules.append(parse_rule(f"open {text} {spans}", f"{key}.workdays[{i}]"))
    if not rules:
        raise ConfigError("a calendar needs at least one rule", key=f"{key}.rules")
    decl = A.CalendarDecl(A.Name(name, _span(key)), tuple(rules), _span(key))
    return ZonedCalendar(compile_calendar(decl), tz)


def _strings(value: object, key: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not all(
            isinstance(v, str) for v in value):
        raise ConfigError(f"expected a list of strings, got {value!r}", key=key)
    return list(value)


class CalendarSet:
    """The node's named calendars: ``is_open(name, when)``."""

    def __init__(self, calendars: Iterable[ZonedCalendar] = ()) -> None:
        self._by_name = {c.name: c for c in calendars}

    @classmethod
    def from_config(cls, tables: Mapping[str, object], section: str = "calendars"
                    ) -> CalendarSet:
        """Compile the ``[calendars]`` section: one sub-table per calendar.

        Raises:
            ConfigError: naming the dotted key of the first problem.
        """
        out = []
        for name, table in tables.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"expected a table [{section}.{name}], got {table!r}",
                                  key=f"{section}.{name}")
            out.append(zoned_calendar(name, table, f"{section}.{name}"))
        return cls(out)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def get(self, name: str) -> ZonedCalendar:
        """The calendar called ``name``.

        Raises:
            KeyError: no such calendar.
        """
        return self._by_name[name]

    def is_open(self, name: str, when: dt.datetime) -> bool:
        """Whether calendar ``name`` is open at ``when``.

        Raises:
            KeyError: no such calendar (the dial plan checks names when it is compiled).
        """
        return self._by_name[name].is_open(when)
