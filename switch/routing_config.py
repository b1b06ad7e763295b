"""``[dialplan]`` and ``[calendars]``: the routing tables of the node configuration.

Parsed and validated from the merged TOML dict by :func:`parse_routing`, following
``switch/config.py``'s rules: frozen dataclasses that check themselves in ``__post_init__``,
and a :class:`~switch.config.ConfigError` naming the dotted key (``dialplan.rules[2].match``)
for every mistake, unknown keys included. Trunk, queue and IVR program names are checked
against the rest of the configuration with :meth:`RoutingConfig.check_references` once those
sections exist (they belong to other tables).

:data:`DEFAULT_ROUTING_TOML` is the block for the embedded default configuration.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from switch.calendar import CalendarSet
from switch.config import ConfigError
from switch.router import PatternError, compile_pattern

__all__ = [
    "DEFAULT_ROUTING_TOML",
    "MEDIA_MODES",
    "SOURCES",
    "TARGETS",
    "DialplanConfig",
    "RoutingConfig",
    "RuleConfig",
    "parse_routing",
]

TARGETS = ("extension", "queue", "ivr", "trunk", "voicemail", "reject")
SOURCES = ("any", "user", "trunk")
MEDIA_MODES = ("anchored", "direct")
_NEEDS = {"queue": "queue", "ivr": "program", "trunk": "trunk"}
"""The key each target kind requires."""

DEFAULT_ROUTING_TOML = """\
[dialplan]
# Callers in these caller lists (storage: caller_lists, list "blocked") get 403 first.
blocked_lists = ["blocked"]
# Callers in this list get vip_priority added to their queue priority.
vip_list = "vip"
vip_priority = 10

# Rules: `match` is an exact number, or an Asterisk pattern starting with "_"
# (X=0-9, Z=1-9, N=2-9, [1-5] a set, "." one or more, "!" zero or more). Exact numbers
# win over patterns, then the most specific pattern (Asterisk order). Targets: extension,
# queue (+ priority), ivr (program), trunk (strip/prepend digits), voicemail (box), reject
# (status). Conditions: calendar + when = "open"|"closed", caller_in / caller_not_in
# (caller lists), source = "user"|"trunk"|"any". Extension rules may set
# media = "direct" (RTP phone to phone: no recording, in-band DTMF or monitoring).
[[dialplan.rules]]
name = "extensions"
match = "_10XX"
target = "extension"

[[dialplan.rules]]
name = "outbound"
match = "_9."
target = "trunk"
trunk = "demo"
strip = 1
source = "user"
enabled = false        # no trunk in the demo: enable once [trunks] has "demo"

[[dialplan.rules]]
name = "hotline"
match = "12345"
target = "ivr"
program = "hotline"

[[dialplan.rules]]
name = "operator"
match = "0"
target = "queue"
queue = "operator"
calendar = "work_hours"
when = "open"

[[dialplan.rules]]
name = "operator-closed"
match = "0"
target = "voicemail"
box = "operator"

[calendars.work_hours]
timezone = "Asia/Shanghai"
rules = ["mon-fri 08:30-18:00", "sat 09:00-12:00"]
holidays = ["2026-10-01..2026-10-07"]
workdays = ["2026-10-11"]
"""


def _close(name: str, known: Collection[str]) -> str:
    found = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {found[0]!r}?)" if found else ""


def _check_type(value: object, kind: type, key: str, what: str) -> None:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"expected {what}, got {value!r}", key=key)
    if not isinstance(value, kind):
        raise ConfigError(f"expected {what}, got {value!r}", key=key)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One ``[[dialplan.rules]]`` entry."""

    match: str
    """Exact number, or an Asterisk pattern starting with ``_``."""
    target: str
    """extension, queue, ivr, trunk, voicemail or reject."""
    name: str = ""
    """Shown in CDRs and logs; defaults to ``match``."""
    extension: str = ""
    """extension: the number to ring; empty = the dialed number after strip/prepend."""
    queue: str = ""
    priority: int = 0
    """queue: the caller's priority (higher is served first)."""
    program: str = ""
    """ivr: the program to run."""
    trunk: str = ""
    box: str = ""
    """voicemail: the mailbox; empty = the dialed number after strip/prepend."""
    status: int = 403
    """reject: the SIP status (400-699)."""
    reason: str = ""
    strip: int = 0
    """Digits removed from the front of the dialed number (the ``9`` of ``9.``)."""
    prepend: str = ""
    """Digits put in front after stripping."""
    calendar: str = ""
    when: str = "open"
    """With ``calendar``: the rule applies when the calendar is "open" or "closed"."""
    caller_in: tuple[str, ...] = ()
    caller_not_in: tuple[str, ...] = ()
    source: str = "any"
    """"user" (authenticated local user), "trunk", or "any"."""
    enabled: bool = True
    media: str = "anchored"
    """extension: "anchored" (the switch relays RTP: recording, in-band DTMF, monitoring)
    or "direct" (SDP passed through, RTP flows phone to phone; ``switch.direct_media``)."""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.match)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool):
                _check_type(value, bool, f.name, "true or false")
            elif isinstance(f.default, int):
                _check_type(value, int, f.name, "an integer")
            elif isinstance(f.default, tuple):
                if not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
                    raise ConfigError(f"expected a list of strings, got {value!r}", key=f.name)
            else:
                _check_type(value, str, f.name, "a string")
        try:
            compile_pattern(self.match)
        except PatternError as exc:
            raise ConfigError(str(exc), key="match") from None
        if self.target not in TARGETS:
            raise ConfigError(f"expected one of {', '.join(TARGETS)}, got {self.target!r}"
                              + _close(self.target, TARGETS), key="target")
        need = _NEEDS.get(self.target)
        if need and not getattr(self, need):
            raise ConfigError(f"target {self.target!r} needs {need} = \"...\"", key=need)
        if self.source not in SOURCES:
            raise ConfigError(f"expected one of {', '.join(SOURCES)}, got {self.source!r}",
                              key="source")
        if self.media not in MEDIA_MODES:
            raise ConfigError(f"expected one of {', '.join(MEDIA_MODES)}, got {self.media!r}"
                              + _close(self.media, MEDIA_MODES), key="media")
        if self.media == "direct" and self.target != "extension":
            raise ConfigError("direct media is only for target = \"extension\"", key="media")
        if self.when not in ("open", "closed"):
            raise ConfigError(f"expected 'open' or 'closed', got {self.when!r}", key="when")
        if not 400 <= self.status <= 699:
            raise ConfigError(f"expected a SIP status between 400 and 699, got {self.status}",
                              key="status")
        if not 0 <= self.strip <= 20:
            raise ConfigError(f"expected an integer between 0 and 20, got {self.strip}",
                              key="strip")
        if any(c not in "0123456789*#+" for c in self.prepend):
            raise ConfigError(f"expected digits, got {self.prepend!r}", key="prepend")


@dataclass(frozen=True, slots=True)
class DialplanConfig:
    """``[dialplan]``."""

    rules: tuple[RuleConfig, ...] = ()
    blocked_lists: tuple[str, ...] = ("blocked",)
    """Callers in any of these caller lists are rejected (403) before any rule."""
    vip_list: str = "vip"
    """Callers in this list get ``vip_priority`` added to their queue priority."""
    vip_priority: int = 10

    def __post_init__(self) -> None:
        if not (isinstance(self.blocked_lists, tuple)
                and all(isinstance(v, str) for v in self.blocked_lists)):
            raise ConfigError(f"expected a list of strings, got {self.blocked_lists!r}",
                              key="dialplan.blocked_lists")
        _check_type(self.vip_list, str, "dialplan.vip_list", "a string")
        _check_type(self.vip_priority, int, "dialplan.vip_priority", "an integer")


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The validated ``[dialplan]`` and ``[calendars]`` sections."""

    dialplan: DialplanConfig = field(default_factory=DialplanConfig)
    calendars: CalendarSet = field(default_factory=CalendarSet)

    def check_references(self, *, queues: Collection[str] | None = None,
                         programs: Collection[str] | None = None,
                         trunks: Collection[str] | None = None) -> None:
        """Check that enabled rules name existing queues, IVR programs and trunks (a None
        collection is not checked).

        Raises:
            ConfigError: naming the rule's key.
        """
        kinds = {"queue": ("queue", queues), "ivr": ("program", programs),
                 "trunk": ("trunk", trunks)}
        for i, rule in enumerate(self.dialplan.rules):
            attr, known = kinds.get(rule.target, ("", None))
            if known is None or not rule.enabled:
                continue
            value = getattr(rule, attr)
            if value not in known:
                raise ConfigError(f"no {attr} called {value!r}" + _close(value, known),
                                  key=f"dialplan.rules[{i}].{attr}")


_RULE_FIELDS = {f.name: f for f in dataclasses.fields(RuleConfig)}
_DIALPLAN_KEYS = ("rules", "blocked_lists", "vip_list", "vip_priority")


def _rule(i: int, table: object) -> RuleConfig:
    key = f"dialplan.rules[{i}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"expected a table [[dialplan.rules]], got {table!r}", key=key)
    for name in table:
        if name not in _RULE_FIELDS:
            raise ConfigError("unknown key" + _close(name, _RULE_FIELDS), key=f"{key}.{name}")
    for required in ("match", "target"):
        if required not in table:
            raise ConfigError("missing", key=f"{key}.{required}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    try:
        return RuleConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError(exc.problem, key=f"{key}.{exc.key}") from None


def parse_routing(data: Mapping[str, Any]) -> RoutingConfig:
    """Build the routing config from a TOML-shaped dict with ``dialplan`` and ``calendars``
    (other top-level keys are ignored: they belong to other sections).

    Raises:
        ConfigError: naming the dotted key of the first problem; a rule's calendar must
            exist in ``[calendars]``.
    """
    dp = data.get("dialplan", {})
    if not isinstance(dp, Mapping):
        raise ConfigError(f"expected a table [dialplan], got {dp!r}", key="dialplan")
    for name in dp:
        if name not in _DIALPLAN_KEYS:
            raise ConfigError("unknown key" + _close(name, _DIALPLAN_KEYS),
                              key=f"dialplan.{name}")
    raw_rules = dp.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError("expected an array of tables [[dialplan.rules]]",
                          key="dialplan.rules")
    rules = tuple(_rule(i, t) for i, t in enumerate(raw_rules))
    blocked = dp.get("blocked_lists", ["blocked"])
    dialplan = DialplanConfig(
        rules=rules,
        blocked_lists=tuple(blocked) if isinstance(blocked, list) else blocked,
        vip_list=dp.get("vip_list", "vip"),
        vip_priority=dp.get("vip_priority", 10),
    )
    cals = data.get("calendars", {})
    if not isinstance(cals, Mapping):
        raise ConfigError(f"expected a table [calendars], got {cals!r}", key="calendars")
    calendars = CalendarSet.from_config(cals)
    for i, rule in enumerate(rules):
        if rule.calendar and rule.calendar not in calendars:
            raise ConfigError(f"no calendar called {rule.calendar!r} in [calendars]"
                              + _close(rule.calendar, calendars.names()),
                              key=f"dialplan.rules[{i}].calendar")
    return RoutingConfig(dialplan, calendars)


def default_routing() -> RoutingConfig:
    """The routing of the embedded default (the hotline demo)."""
    return parse_routing(tomllib.loads(DEFAULT_ROUTING_TOML))
