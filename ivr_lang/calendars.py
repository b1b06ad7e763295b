"""Business-hours calendars: weekly opening hours plus dated exceptions (CN holidays).

A calendar is a list of rules, each a line of the script::

    calendar 工作时间:
      mon-fri 08:30-18:00          # weekly hours (several ranges allowed)
      sat 09:00-12:00
      closed 2026-10-01..2026-10-07  # public holiday: closed all day
      open 2026-10-11 08:30-18:00    # make-up working day (调休)

Day words: mon..sun, 周一..周日, 星期一..星期日, ranges like ``mon-fri`` or ``周一至周五``,
``daily``/``每天``, ``weekdays``/``工作日``, ``weekend``/``周末``. Exceptions win over weekly
rules. Evaluation takes the call's local datetime as an argument (pure: no clock read).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from . import ast as A

__all__ = ["Calendar", "compile_calendar", "day_set", "rule_problems"]

_DAYS: dict[str, int] = {}
for _i, (_en, _zh) in enumerate(zip(("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                                    "一二三四五六日", strict=True)):
    _DAYS[_en] = _i
    _DAYS["周" + _zh] = _i
    _DAYS["星期" + _zh] = _i
_DAYS["周天"] = _DAYS["星期天"] = 6
_GROUPS = {"daily": range(7), "每天": range(7), "weekdays": range(5), "工作日": range(5),
           "weekend": range(5, 7), "周末": range(5, 7)}
_RANGE_RE = re.compile(r"^(.+?)(?:-|至|到)(.+)$")
EXCEPTION_KINDS = {"closed": "closed", "休息": "closed", "open": "open", "上班": "open"}
DAY_WORDS = sorted([*_DAYS, *_GROUPS, *EXCEPTION_KINDS, "mon-fri", "mon-sat", "sat-sun",
                    "周一至周五", "周一至周六"])


def day_set(word: str) -> frozenset[int] | None:
    """Weekdays (0 = Monday) named by a day word or range, or None if not a day word."""
    if word in _DAYS:
        return frozenset({_DAYS[word]})
    if word in _GROUPS:
        return frozenset(_GROUPS[word])
    m = _RANGE_RE.match(word)
    if m and m.group(1) in _DAYS and m.group(2) in _DAYS:
        a, b = _DAYS[m.group(1)], _DAYS[m.group(2)]
        return frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 7),
                                                                      *range(0, b + 1)])
    return None


def _minutes(hhmm: str) -> int | None:
    h, _, m = hhmm.partition(":")
    hour, minute = int(h), int(m)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        return None
    return hour * 60 + minute


def _date(text: str) -> _dt.date | None:
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        return None


def rule_problems(rule: A.CalRule) -> list[tuple[str, str]]:
    """(English, Chinese) descriptions of what is wrong with one rule, empty if fine."""
    out: list[tuple[str, str]] = []
    kind = rule.kind.text
    for a, b in rule.times:
        ma, mb = _minutes(a), _minutes(b)
        if ma is None or mb is None:
            out.append((f"impossible time in {a}-{b}", f"时间 {a}-{b} 不存在"))
        elif ma >= mb:
            out.append((f"time range {a}-{b} is empty", f"时间段 {a}-{b} 为空"))
    for a, b in rule.dates:
        da, db = _date(a), _date(b)
        if da is None or db is None:
            out.append((f"impossible date in {a}..{b}", f"日期 {a}..{b} 不存在"))
        elif da > db:
            out.append((f"date range {a}..{b} is reversed", f"日期范围 {a}..{b} 起止颠倒"))
    if kind in EXCEPTION_KINDS:
        if not rule.dates:
            out.append((f"'{kind}' needs a date", f"'{kind}' 需要写日期"))
        if EXCEPTION_KINDS[kind] == "open" and not rule.times:
            out.append(("'open' needs opening hours", "'open' 需要写上班时间"))
    elif rule.dates:
        out.append(("dates belong on 'closed' or 'open' lines",
                    "日期只能写在 'closed' 或 'open' 行"))
    elif not rule.times:
        out.append((f"'{kind}' needs opening hours like 08:30-18:00",
                    f"'{kind}' 需要写时间段，例如 08:30-18:00"))
    return out


@dataclass(frozen=True, slots=True)
class Calendar:
    """Compiled calendar: weekly minute ranges and dated exceptions."""

    name: str
    weekly: tuple[tuple[frozenset[int], int, int], ...]
    closed: tuple[tuple[_dt.date, _dt.date], ...]
    open_days: tuple[tuple[_dt.date, _dt.date, int, int], ...]

    def is_open(self, at: _dt.datetime) -> bool:
        """Whether the service is open at local time ``at``."""
        day = at.date()
        minute = at.hour * 60 + at.minute
        special = [(a, b) for d0, d1, a, b in self.open_days if d0 <= day <= d1]
        if special:
            return any(a <= minute < b for a, b in special)
        if any(d0 <= day <= d1 for d0, d1 in self.closed):
            return False
        wd = at.weekday()
        return any(wd in days and a <= minute < b for days, a, b in self.weekly)


def compile_calendar(decl: A.CalendarDecl) -> Calendar:
    """Compile a checked declaration (rules with problems are skipped)."""
    weekly: list[tuple[frozenset[int], int, int]] = []
    closed: list[tuple[_dt.date, _dt.date]] = []
    open_days: list[tuple[_dt.date, _dt.date, int, int]] = []
    for rule in decl.rules:
        if rule_problems(rule):
            continue
        kind = EXCEPTION_KINDS.get(rule.kind.text)
        times = [(_minutes(a), _minutes(b)) for a, b in rule.times]
        dates = [(_date(a), _date(b)) for a, b in rule.dates]
        if kind == "closed":
            closed.extend((a, b) for a, b in dates if a and b)
        elif kind == "open":
            open_days.extend((d0, d1, a, b) for d0, d1 in dates for a, b in times
                             if d0 and d1 and a is not None and b is not None)
        else:
            days = day_set(rule.kind.text)
            if days is not None:
                weekly.extend((days, a, b) for a, b in times if a is not None and b is not None)
    return Calendar(decl.name.text, tuple(weekly), tuple(closed), tuple(open_days))
