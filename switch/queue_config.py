"""``[queues.<name>]``: ACD queue settings read from TOML (STYLE.md §4.7, config Rule 1).

Each table becomes a :class:`QueueSettings`: the pure engine's
:class:`~switch.acd.queue.QueueConfig` plus what only the live shell needs (the music on
hold, the announcement voice, the agents logged in at start-up). Every mistake is a
:class:`~switch.config.ConfigError` naming the dotted key (``queues.support.strategy``), and
unknown keys are errors, as everywhere else in the configuration.

Keys (all optional; IVR_CTI_ACD.md §C.8 item 1 and :mod:`switch.acd.queue` explain them):

=====================  =======================================================================
strategy               ring-all, longest-idle, fewest-calls, round-robin, linear, random,
                       weighted-random
skill                  required skill ("" = the queue name)
ring_timeout_s         how long one offer rings an agent's device
wrapup_s               after-call work before the agent is offered the next call
max_no_answer          missed offers in a row before the agent goes not ready (0 = never)
max_len, max_wait_s    limits (0 = unlimited); exceeding them leaves for ``overflow``
overflow               "queue:NAME", "voicemail:BOX" or "ivr:PROGRAM" ("" = none)
join_empty,            never, no-agent-logged-in, no-agent-available
leave_empty
priority_weight        score points per waited second (0 = strict priority classes)
initial_level,         skill-level widening (Rule 3 of switch.acd.queue)
widen_every_s,
widen_step, max_level
announce_frequency_s   position/expected-wait announcement period (0 = never)
announce_position,     what the announcement says
announce_holdtime
moh                    music on hold: a call-progress tone name ("ringback") or a prompt file
callback_key           a key ("1") a waiting caller presses to be called back, keeping its
                       place ("" = no callback; the announcements then offer it)
weight                 queues with a higher weight get shared agents first
default_aht_s          handle time assumed for the expected wait before any call was handled
static_agents          agents logged in (ready) at start-up: ["AGENT@EXTENSION", ...] or
                       ["AGENT@EXTENSION:LEVEL"]; an agent listed in several queues gets the
                       skill of each
=====================  =======================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switch.acd.queue import EmptyRule, OverflowTarget, QueueConfig, Strategy
from switch.config import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["MOH_TONES", "QueueSettings", "StaticAgent", "parse_queues"]

MOH_TONES = ("ringback", "dial", "call_waiting")
"""Call-progress tones usable as music on hold (``MediaService.tone`` names)."""

_AGENT_RE = re.compile(r"^([^@|:\s]+)@([0-9A-Za-z_.+-]+)(?::([1-9][0-9]?))?$")


@dataclass(frozen=True, slots=True)
class StaticAgent:
    """An agent logged in from the configuration at start-up (until CTI logs agents in)."""

    agent_id: str
    extension: str
    level: int = 1


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """One ``[queues.<name>]`` table."""

    acd: QueueConfig
    """The engine's view of the queue."""
    moh: str = "ringback"
    """Music on hold: a tone of :data:`MOH_TONES` or a prompt file name/path."""
    static_agents: tuple[StaticAgent, ...] = field(default_factory=tuple)
    """Agents logged in at start-up."""
    callback_key: str = ""
    """The DTMF key that asks for a callback while waiting ("" = none)."""

    @property
    def name(self) -> str:
        return self.acd.name


# key -> (kind, default); kinds: "float", "int", "bool", "str", "enum:<Enum>"
_FLOATS = ("ring_timeout_s", "wrapup_s", "priority_weight", "default_aht_s")
_OPTIONAL_FLOATS = ("max_wait_s", "widen_every_s", "announce_frequency_s")
_INTS = ("max_no_answer", "max_len", "initial_level", "widen_step", "weight")
_OPTIONAL_INTS = ("max_level",)
_BOOLS = ("announce_position", "announce_holdtime")
_STRS = ("skill",)
_ENUMS: dict[str, type] = {"strategy": Strategy, "join_empty": EmptyRule,
                           "leave_empty": EmptyRule}
_SHELL = ("overflow", "moh", "static_agents", "callback_key")
KNOWN_KEYS = (*_ENUMS, *_STRS, *_FLOATS, *_OPTIONAL_FLOATS, *_INTS, *_OPTIONAL_INTS, *_BOOLS,
              *_SHELL)


def _number(value: object, key: str, integer: bool) -> float | int:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        noun = "a whole number" if integer else "a number"
        raise ConfigError(f"expected {noun} >= 0, got {value!r}", key=key)
    return value if integer else float(value)


def _overflow(value: object, key: str) -> OverflowTarget | None:
    if not isinstance(value, str):
        raise ConfigError(f"expected \"queue:NAME\", \"voicemail:BOX\" or \"ivr:PROGRAM\", "
                          f"got {value!r}", key=key)
    if not value:
        return None
    kind, _, target = value.partition(":")
    try:
        return OverflowTarget(kind, target)
    except ValueError as exc:
        raise ConfigError(str(exc), key=key) from None


def _agents(value: object, key: str) -> tuple[StaticAgent, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"expected a list of \"AGENT@EXTENSION\", got {value!r}", key=key)
    agents = []
    for i, item in enumerate(value):
        match = _AGENT_RE.match(item) if isinstance(item, str) else None
        if match is None:
            raise ConfigError(f"expected \"AGENT@EXTENSION\" or \"AGENT@EXTENSION:LEVEL\", "
                              f"got {item!r}", key=f"{key}[{i}]")
        agents.append(StaticAgent(match[1], match[2], int(match[3] or 1)))
    ids = [a.agent_id for a in agents]
    if len(set(ids)) != len(ids):
        raise ConfigError("an agent is listed twice", key=key)
    return tuple(agents)


def parse_queue(name: str, table: Mapping[str, Any]) -> QueueSettings:
    """One ``[queues.<name>]`` table -> QueueSettings.

    Raises:
        ConfigError: naming ``queues.<name>.<key>``.
    """
    prefix = f"queues.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"expected a table, got {table!r}", key=prefix)
    kwargs: dict[str, Any] = {}
    for k, value in table.items():
        key = f"{prefix}.{k}"
        if k not in KNOWN_KEYS:
            raise ConfigError("unknown key", key=key)
        if k in _ENUMS:
            choices = [m.value for m in _ENUMS[k]]  # type: ignore[attr-defined]
            if value not in choices:
                raise ConfigError(f"expected one of {', '.join(choices)}, got {value!r}", key=key)
            kwargs[k] = _ENUMS[k](value)
        elif k in _STRS:
            if not isinstance(value, str):
                raise ConfigError(f"expected a string, got {value!r}", key=key)
            kwargs[k] = value
        elif k in _BOOLS:
            if not isinstance(value, bool):
                raise ConfigError(f"expected true or false, got {value!r}", key=key)
            kwargs[k] = value
        elif k in _FLOATS or k in _OPTIONAL_FLOATS:
            number = _number(value, key, integer=False)
            kwargs[k] = None if k in _OPTIONAL_FLOATS and number == 0 else number
        elif k in _INTS or k in _OPTIONAL_INTS:
            number = _number(value, key, integer=True)
            kwargs[k] = None if k in _OPTIONAL_INTS and number == 0 else number
    overflow = _overflow(table.get("overflow", ""), f"{prefix}.overflow")
    moh = table.get("moh", "ringback")
    if not isinstance(moh, str) or not moh:
        raise ConfigError(f"expected a tone name or a prompt file, got {moh!r}",
                          key=f"{prefix}.moh")
    agents = _agents(table.get("static_agents", []), f"{prefix}.static_agents")
    key = table.get("callback_key", "")
    if not isinstance(key, str) or (key and (len(key) != 1 or key not in "0123456789*#")):
        raise ConfigError(f"expected one DTMF key (0-9, * or #) or \"\", got {key!r}",
                          key=f"{prefix}.callback_key")
    try:
        acd = QueueConfig(name=name, overflow=overflow, moh_class=moh, **kwargs)
    except ValueError as exc:
        raise ConfigError(str(exc), key=prefix) from None
    return QueueSettings(acd, moh, agents, key)


def parse_queues(table: Mapping[str, Any]) -> dict[str, QueueSettings]:
    """The whole ``[queues]`` table -> {name: QueueSettings}, in file order.

    Cross-queue check: a ``queue:`` overflow must name a configured queue.

    Raises:
        ConfigError: naming ``queues.<name>.<key>``.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"expected a table [queues], got {table!r}", key="queues")
    queues = {}
    for name, sub in table.items():
        if not name or "|" in name or "\n" in name:
            raise ConfigError("bad queue name", key=f"queues.{name}")
        queues[str(name)] = parse_queue(str(name), sub)
    for q in queues.values():
        target = q.acd.overflow
        if target is not None and target.kind == "queue" and target.target not in queues:
            raise ConfigError(f"no queue named {target.target!r}",
                              key=f"queues.{q.name}.overflow")
    return queues
