"""The router (dial plan): a dialed number, the caller and the calendar -> a target.

Pure (DESIGN.md "Three rings"): no I/O and no clock; the caller's local time and the caller
lists are arguments. Compiled once from ``[dialplan]`` (:mod:`switch.routing_config`).

Matching follows Asterisk's extension syntax (extensions.conf, "Pattern Matching"):

* a rule's ``match`` without a leading ``_`` is an exact number (``12345``, ``0``);
* with ``_`` it is a pattern: ``X`` = 0-9, ``Z`` = 1-9, ``N`` = 2-9, ``[1-5]`` / ``[135]`` a
  set, ``.`` one or more of anything, ``!`` zero or more of anything (both only at the end),
  ``-`` is ignored (eye candy), anything else (digits, ``*``, ``#``, ``+``) is literal.

Order (Rule 1): exact numbers before patterns; patterns sorted the way Asterisk's
``ext_cmp_pattern`` sorts them -- position by position, the element matching fewer
characters first (a digit, then N with 8, Z with 9, X with 10; a set by its size), ``.``
after every character class, ``!`` after ``.``, and the end of a pattern last (so ``_12X``
comes before ``_12``). Among rules with the same match, those with more conditions come
first, then the configuration order. The first enabled rule whose conditions all hold wins.

Rule 2: callers in one of ``blocked_lists`` are rejected (403) before any rule, with the
rule name ``blocked-caller``; a number no rule takes is rejected with 404 ``no-route``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switch.calendar import CalendarSet
    from switch.routing_config import RoutingConfig, RuleConfig

__all__ = [
    "CompiledRule",
    "DialPlan",
    "Extension",
    "Ivr",
    "Pattern",
    "PatternError",
    "Queue",
    "Reject",
    "RouteDecision",
    "Target",
    "Trunk",
    "Voicemail",
    "compile_pattern",
    "describe_target",
]

_LITERALS = frozenset("0123456789*#+")
_CLASSES = {"X": "0123456789", "Z": "123456789", "N": "23456789"}
_DOT, _BANG, _END = 0x18000, 0x28000, 0x30000  # Asterisk pbx.c ext_cmp_pattern_pos


class PatternError(ValueError):
    """A ``match`` string that is neither a number nor a valid pattern."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled ``match``: a regex and Asterisk's sort weights."""

    text: str
    exact: bool
    regex: re.Pattern[str]
    weights: tuple[int, ...]

    def matches(self, dialed: str) -> bool:
        return self.regex.fullmatch(dialed) is not None

    def sort_key(self) -> tuple[int, tuple[int, ...]]:
        return (0, ()) if self.exact else (1, self.weights)


def _parse_set(text: str, start: int) -> tuple[str, int]:
    end = text.find("]", start)
    if end < 0:
        raise PatternError(f"'[' at position {start} has no closing ']'")
    body, chars = text[start + 1:end], set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = body[i], body[i + 2]
            if lo not in _LITERALS or hi not in _LITERALS or lo > hi:
                raise PatternError(f"bad range {lo}-{hi} in [{body}]")
            chars.update(chr(c) for c in range(ord(lo), ord(hi) + 1) if chr(c) in _LITERALS)
            i += 3
        else:
            if body[i] not in _LITERALS:
                raise PatternError(f"{body[i]!r} cannot stand in a set [{body}]")
            chars.add(body[i])
            i += 1
    if not chars:
        raise PatternError("empty set []")
    return "".join(sorted(chars)), end + 1


def compile_pattern(match: str) -> Pattern:
    """Compile a rule's ``match`` (see the module docstring).

    Raises:
        PatternError: with a message saying what is wrong.
    """
    if not match:
        raise PatternError("empty match")
    if not match.startswith("_"):
        if any(c not in _LITERALS for c in match):
            hint = " (patterns start with '_', e.g. '_9.')" if any(
                c in "XZNxzn.![" for c in match) else ""
            raise PatternError(f"{match!r} is not a number{hint}")
        return Pattern(match, True, re.compile(re.escape(match)), ())
    parts: list[str] = []
    weights: list[int] = []
    text, i = match[1:], 0
    while i < len(text):
        c = text[i]
        if c == "-":
            i += 1
            continue
        if c in ".!":
            if text[i + 1:].replace("-", ""):
                raise PatternError(f"{c!r} must end the pattern {match!r}")
            parts.append(".+" if c == "." else ".*")
            weights.append(_DOT if c == "." else _BANG)
            i += 1
            continue
        if c == "[":
            chars, i = _parse_set(text, i)
            parts.append("[" + re.escape(chars) + "]")
            weights.append(len(chars) << 8 | ord(chars[0]))
            continue
        if c.upper() in _CLASSES:
            chars = _CLASSES[c.upper()]
            parts.append("[" + chars + "]")
            weights.append(len(chars) << 8 | ord(chars[0]))
        elif c in _LITERALS:
            parts.append(re.escape(c))
            weights.append(0x100 | ord(c))
        else:
            raise PatternError(f"{c!r} at position {i + 1} of {match!r} is not allowed "
                               "(use digits * # +, X Z N, [..], . or !)")
        i += 1
    if not parts:
        raise PatternError(f"{match!r} has nothing after '_'")
    weights.append(_END)
    return Pattern(match, False, re.compile("".join(parts)), tuple(weights))


# --- targets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extension:
    """Ring every registered contact of a local user (forking)."""

    number: str


@dataclass(frozen=True, slots=True)
class Queue:
    """Enter an ACD queue."""

    name: str
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Ivr:
    """Run an IVR program."""

    program: str


@dataclass(frozen=True, slots=True)
class Trunk:
    """Dial out through a trunk; ``number`` is after strip/prepend."""

    name: str
    number: str


@dataclass(frozen=True, slots=True)
class Voicemail:
    """Leave a message in a mailbox."""

    box: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the call with a SIP status."""

    status: int
    reason: str = ""


Target = Extension | Queue | Ivr | Trunk | Voicemail | Reject


def describe_target(target: Target) -> str:
    """A short text for CDRs and logs: ``queue:operator``, ``trunk:demo/013800000000``."""
    match target:
        case Extension(number):
            return f"extension:{number}"
        case Queue(name, _):
            return f"queue:{name}"
        case Ivr(program):
            return f"ivr:{program}"
        case Trunk(name, number):
            return f"trunk:{name}/{number}"
        case Voicemail(box):
            return f"voicemail:{box}"
        case Reject(status, _):
            return f"reject:{status}"
    raise TypeError(f"not a target: {target!r}")


# --- compiled rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One ``[[dialplan.rules]]`` entry, ready to match."""

    index: int
    config: RuleConfig
    pattern: Pattern

    @property
    def name(self) -> str:
        return self.config.name

    def n_conditions(self) -> int:
        c = self.config
        return (bool(c.calendar) + bool(c.caller_in) + bool(c.caller_not_in)
                + (c.source != "any"))

    def sort_key(self) -> tuple[object, ...]:
        return (self.pattern.sort_key(), -self.n_conditions(), self.index)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What the router decided, with the rule for CDRs and logs."""

    dialed: str
    number: str
    """The dialed number after the rule's strip/prepend."""
    target: Target
    rule: CompiledRule | None
    rule_name: str
    skipped: tuple[tuple[str, str], ...] = ()
    """With ``explain=True``: (rule name, why it did not apply) for each rule that matched
    the number but not the conditions."""

    def describe(self) -> str:
        return f"{self.dialed} -> {describe_target(self.target)} (rule {self.rule_name})"


def _in_any(caller: str, names: Collection[str], lists: Mapping[str, Collection[str]]) -> bool:
    return any(caller in lists.get(name, ()) for name in names)


class DialPlan:
    """The compiled dial plan (Rules 1 and 2)."""

    def __init__(self, rules: list[CompiledRule], calendars: CalendarSet, *,
                 blocked_lists: tuple[str, ...] = ("blocked",), vip_list: str = "vip",
                 vip_priority: int = 0) -> None:
        self.rules = tuple(sorted(rules, key=CompiledRule.sort_key))
        self.calendars = calendars
        self.blocked_lists = blocked_lists
        self.vip_list = vip_list
        self.vip_priority = vip_priority

    @classmethod
    def from_config(cls, config: RoutingConfig) -> DialPlan:
        """Compile a validated :class:`~switch.routing_config.RoutingConfig`."""
        dp = config.dialplan
        rules = [CompiledRule(i, rule, compile_pattern(rule.match))
                 for i, rule in enumerate(dp.rules)]
        return cls(rules, config.calendars, blocked_lists=dp.blocked_lists,
                   vip_list=dp.vip_list, vip_priority=dp.vip_priority)

    def _why_not(self, rule: CompiledRule, caller: str, source: str, now_local: dt.datetime,
                 lists: Mapping[str, Collection[str]]) -> str | None:
        c = rule.config
        if not c.enabled:
            return "disabled"
        if c.source != "any" and source != c.source:
            return f"source is {source}, not {c.source}"
        if c.calendar and self.calendars.is_open(c.calendar, now_local) != (c.when == "open"):
            return f"calendar {c.calendar} is not {c.when}"
        if c.caller_in and not _in_any(caller, c.caller_in, lists):
            return f"caller not in {', '.join(c.caller_in)}"
        if c.caller_not_in and _in_any(caller, c.caller_not_in, lists):
            return f"caller in {', '.join(c.caller_not_in)}"
        return None

    def route(self, dialed: str, caller: str, source: str, now_local: dt.datetime,
              lists: Mapping[str, Collection[str]] | None = None, *,
              explain: bool = False) -> RouteDecision:
        """Route one call attempt.

        Args:
            dialed: the number dialed (Request-URI user part).
            caller: the caller's number (From user part, or the authenticated user).
            source: "user" (authenticated local user) or "trunk".
            now_local: the time of the call; aware datetimes are converted into each
                calendar's zone, naive ones are taken as local.
            lists: caller list name -> numbers (``vip``, ``blocked``...), from storage.
            explain: collect why matching rules were skipped (for ``route test`` and logs).
        """
        lists = lists or {}
        if _in_any(caller, self.blocked_lists, lists):
            return RouteDecision(dialed, dialed, Reject(403, "caller blocked"), None,
                                 "blocked-caller")
        skipped: list[tuple[str, str]] = []
        for rule in self.rules:
            if not rule.pattern.matches(dialed):
                continue
            why = self._why_not(rule, caller, source, now_local, lists)
            if why is not None:
                if explain:
                    skipped.append((rule.name, why))
                continue
            number = rule.config.prepend + dialed[rule.config.strip:]
            return RouteDecision(dialed, number, self._target(rule.config, number, caller,
                                                              lists), rule, rule.name,
                                 tuple(skipped))
        return RouteDecision(dialed, dialed, Reject(404, "no route"), None, "no-route",
                             tuple(skipped))

    def _target(self, c: RuleConfig, number: str, caller: str,
                lists: Mapping[str, Collection[str]]) -> Target:
        if c.target == "extension":
            return Extension(c.extension or number)
        if c.target == "queue":
            boost = self.vip_priority if caller in lists.get(self.vip_list, ()) else 0
            return Queue(c.queue, c.priority + boost)
        if c.target == "ivr":
            return Ivr(c.program)
        if c.target == "trunk":
            return Trunk(c.trunk, number)
        if c.target == "voicemail":
            return Voicemail(c.box or number)
        return Reject(c.status, c.reason)
