"""The calling window: when a campaign may start calls (pure: time is an argument).

A window is weekly hours written as calendar lines (``mon-fri 09:00-20:00``; the same
language as the dial plan's calendars and the IVR's ``calendar`` blocks), in a time zone,
optionally intersected with a node calendar from ``[calendars.NAME]``
(:mod:`switch.calendar`). The calendar brings the Chinese public holidays (closed all day)
and the make-up working days (调休: a Saturday or Sunday that works as a weekday), so
"09:00-20:00 on working days" is ``daily 09:00-20:00`` intersected with a calendar whose
rules are ``mon-fri 00:00-24:00`` plus its holidays and workdays.

Rules:

* Rule 1 -- the window is evaluated at minute resolution, exactly as
  :meth:`ivr_lang.calendars.Calendar.is_open`: 09:00:00 to 19:59:59 are inside
  ``09:00-20:00``. A call is only *started* inside the window; one started at 19:59 may
  last past 20:00.
* Rule 2 -- a day's open ranges come from the calendar's dated rules first (``open`` make-up
  days, then ``closed`` holidays) and from the weekly rules otherwise, the precedence of
  ``Calendar.is_open``.
* Rule 3 -- the window and its calendar must be in the same time zone (their days must be
  the same days); a mismatch is a configuration error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr_lang.calendars import Calendar
from switch.calendar import CalendarSet, ZonedCalendar, zoned_calendar
from switch.campaigns.model import CallingWindow, CampaignError
from switch.config import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["CompiledWindow", "compile_window", "is_inside", "next_opening"]

SEARCH_DAYS = 400
"""How far :func:`next_opening` looks ahead: more than a year, past any holiday season."""

Ranges = list[tuple[int, int]]


def _day_ranges(cal: Calendar, day: dt.date) -> Ranges:
    """Open minute ranges of ``cal`` on ``day`` (Rule 2)."""
    special = [(a, b) for d0, d1, a, b in cal.open_days if d0 <= day <= d1]
    if special:
        return _merge(special)
    if any(d0 <= day <= d1 for d0, d1 in cal.closed):
        return []
    wd = day.weekday()
    return _merge([(a, b) for days, a, b in cal.weekly if wd in days])


def _merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: Ranges = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _intersect(xs: Ranges, ys: Ranges) -> Ranges:
    out: Ranges = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if a < b:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


@dataclass(frozen=True, slots=True)
class CompiledWindow:
    """A calling window ready to evaluate; built by :func:`compile_window`."""

    spec: CallingWindow
    hours: ZonedCalendar
    """The weekly hours as a calendar."""
    calendar: ZonedCalendar | None

    @property
    def tz(self) -> ZoneInfo:
        return self.hours.tz

    def day_ranges(self, day: dt.date) -> Ranges:
        """Minute ranges of local ``day`` during which calls may start."""
        ranges = _day_ranges(self.hours.calendar, day)
        if self.calendar is not None and ranges:
            ranges = _intersect(ranges, _day_ranges(self.calendar.calendar, day))
        return ranges

    def is_inside(self, when: dt.datetime) -> bool:
        """Whether a call may start at ``when`` (aware; naive is taken as local time)."""
        local = self.hours.local(when)
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.day_ranges(local.date()))

    def next_opening(self, after: dt.datetime) -> dt.datetime | None:
        """The first instant at or after ``after`` inside the window (``after`` itself when
        it is inside), as an aware local datetime; None when the window never opens within
        :data:`SEARCH_DAYS`."""
        local = self.hours.local(after)
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.tz)
        minute_now = local.hour * 60 + local.minute
        for offset in range(SEARCH_DAYS):
            day = local.date() + dt.timedelta(days=offset)
            for a, b in self.day_ranges(day):
                if offset == 0 and b <= minute_now:
                    continue
                if offset == 0 and a <= minute_now:
                    return local
                start = dt.datetime.combine(day, dt.time(0), tzinfo=self.tz)
                return start + dt.timedelta(minutes=a)
        return None

    def is_inside_ts(self, now: float) -> bool:
        """:meth:`is_inside` for epoch seconds (the scheduler's ``now``)."""
        return self.is_inside(dt.datetime.fromtimestamp(now, self.tz))

    def next_opening_ts(self, now: float) -> float | None:
        """:meth:`next_opening` for epoch seconds."""
        opening = self.next_opening(dt.datetime.fromtimestamp(now, self.tz))
        return None if opening is None else max(now, opening.timestamp())


def compile_window(spec: CallingWindow, calendars: CalendarSet | None = None
                   ) -> CompiledWindow:
    """Check and compile a window; ``calendars`` resolves ``spec.calendar``.

    Raises:
        CampaignError: a bad hours line, unknown time zone, unknown calendar or a calendar in
            another time zone (Rule 3).
    """
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CampaignError(f"unknown time zone {spec.timezone!r}") from None
    if not spec.rules:
        raise CampaignError("a calling window needs hours, e.g. 'mon-fri 09:00-20:00'")
    try:
        hours = zoned_calendar("calling_window",
                               {"timezone": spec.timezone, "rules": list(spec.rules)}, "window")
    except ConfigError as exc:
        raise CampaignError(f"bad calling window: {exc.problem}") from None
    calendar: ZonedCalendar | None = None
    if spec.calendar:
        if calendars is None or spec.calendar not in calendars:
            known = ", ".join(calendars.names()) if calendars is not None else ""
            raise CampaignError(f"no calendar called {spec.calendar!r}"
                                + (f" (known: {known})" if known else ""))
        calendar = calendars.get(spec.calendar)
        if calendar.tz.key != hours.tz.key:
            raise CampaignError(f"calendar {spec.calendar!r} is in {calendar.tz.key}, the "
                                f"calling window in {hours.tz.key}: use one time zone")
    return CompiledWindow(spec, hours, calendar)


def _compiled(window: CallingWindow | CompiledWindow,
              calendars: CalendarSet | None) -> CompiledWindow:
    return window if isinstance(window, CompiledWindow) else compile_window(window, calendars)


def is_inside(window: CallingWindow | CompiledWindow, when: dt.datetime,
              calendars: CalendarSet | None = None) -> bool:
    """Whether a call may start at ``when`` (see :meth:`CompiledWindow.is_inside`)."""
    return _compiled(window, calendars).is_inside(when)


def next_opening(window: CallingWindow | CompiledWindow, after: dt.datetime,
                 calendars: CalendarSet | None = None) -> dt.datetime | None:
    """The first instant at or after ``after`` inside the window, or None (see
    :meth:`CompiledWindow.next_opening`)."""
    return _compiled(window, calendars).next_opening(after)
