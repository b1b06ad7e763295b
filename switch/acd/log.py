"""The append-only queue log: one record per ACD transition (IVR_CTI_ACD.md §C.1, §C.8 item 3).

Modelled on Asterisk's ``queue_log`` (``epoch|callid|queue|agent|EVENT|params…``, see
docs.asterisk.org Operation/Logging/Queue-Logs), which Wazo/XiVO also use as the single source
of their statistics. Rules:

* Rule 1: the engine never writes storage; it *returns* :class:`QueueLogEntry` values inside
  ``LogEntry`` actions, and the shell hands them to a :class:`LogSink` (storage implements it).
* Rule 2: every KPI in :mod:`switch.acd.kpi` is computed from these records alone, so the data
  fields below are a contract. Durations are seconds with millisecond precision (Asterisk
  uses whole seconds; a simulator needs finer grain to tell "waited 0 s" from "waited").
* Rule 3: entries are never updated or deleted.

Data fields per event (``data`` tuple, all strings as in Asterisk):

=================  ==========================================================================
ENTERQUEUE         priority, position                         (Asterisk: url, callerid)
RINGNOANSWER       ringtime_s                                  (agent did not answer in time)
RINGCANCELED       ringtime_s, reason                          (offer withdrawn: other agent won,
                                                               caller left, agent logged out…)
CONNECT            holdtime_s, ringtime_s, device, kind        (kind = "live" | "callback")
COMPLETECALLER     holdtime_s, calltime_s, origposition        (caller hung up)
COMPLETEAGENT      holdtime_s, calltime_s, origposition        (agent hung up)
TRANSFER           target, holdtime_s, calltime_s, origposition
ABANDON            position, origposition, waittime_s
EXITWITHTIMEOUT    position, origposition, waittime_s, target  (max wait reached)
EXITEMPTY          position, origposition, waittime_s, target  (leave-when-empty rule)
FULL               target                                      (join refused: max length)
JOINEMPTY          target                                      (join refused: no agents)
CALLBACK           position, waittime_s, number                (caller left, keeps the place)
PICKUP             position, waittime_s                        (an agent took this caller out
                                                               of turn; its offer follows)
PRIORITY           old_priority, new_priority, position        (a supervisor re-prioritised it)
AGENTLOGIN         device
AGENTLOGOFF        device, logintime_s
PAUSE              reason                                      (agent not ready)
UNPAUSE            (none)                                      (agent ready again)
WRAPUP             wrapup_s                                    (end of after-call work; call_id =
                                                               the call it followed)
AGENTSTATE         old_state, new_state, reason                (every agent state change; the
                                                               source of occupancy)
=================  ==========================================================================

FULL, JOINEMPTY, CALLBACK, PICKUP, PRIORITY, WRAPUP and AGENTSTATE are ours; the rest keep
Asterisk's names and meaning. Agent-only records use queue ``"NONE"`` and call id ``"NONE"``
as Asterisk does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

logger = logging.getLogger(__name__)

__all__ = ["NONE", "LogSink", "MemoryLogSink", "QueueEvent", "QueueLogEntry", "fmt_s"]

NONE = "NONE"


class QueueEvent(StrEnum):
    """Queue log event names (Asterisk queue_log vocabulary plus a few of ours)."""

    ENTERQUEUE = "ENTERQUEUE"
    RINGNOANSWER = "RINGNOANSWER"
    RINGCANCELED = "RINGCANCELED"
    CONNECT = "CONNECT"
    COMPLETECALLER = "COMPLETECALLER"
    COMPLETEAGENT = "COMPLETEAGENT"
    TRANSFER = "TRANSFER"
    ABANDON = "ABANDON"
    EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
    EXITEMPTY = "EXITEMPTY"
    FULL = "FULL"
    JOINEMPTY = "JOINEMPTY"
    CALLBACK = "CALLBACK"
    PICKUP = "PICKUP"
    PRIORITY = "PRIORITY"
    AGENTLOGIN = "AGENTLOGIN"
    AGENTLOGOFF = "AGENTLOGOFF"
    PAUSE = "PAUSE"
    UNPAUSE = "UNPAUSE"
    WRAPUP = "WRAPUP"
    AGENTSTATE = "AGENTSTATE"


def fmt_s(seconds: float) -> str:
    """Format a duration for a data field: seconds with millisecond precision."""
    return f"{seconds:.3f}"


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    """One immutable queue log record.

    Attributes:
        time: when the transition happened (the ``now`` the engine was given), seconds.
        queue: queue name, or ``"NONE"`` for agent-only records.
        call_id: the caller's call id, or ``"NONE"``.
        agent: agent id, or ``"NONE"``.
        event: what happened.
        data: event-specific fields, see the module docstring.
    """

    time: float
    queue: str
    call_id: str
    agent: str
    event: QueueEvent
    data: tuple[str, ...] = field(default_factory=tuple)

    def to_line(self) -> str:
        """Serialise as an Asterisk-style ``time|callid|queue|agent|EVENT|data…`` line."""
        for part in (self.queue, self.call_id, self.agent, *self.data):
            if "|" in part or "\n" in part:
                raise ValueError(f"queue log field may not contain '|' or newline: {part!r}")
        return "|".join((f"{self.time:.3f}", self.call_id, self.queue, self.agent,
                         self.event.value, *self.data))

    @classmethod
    def from_line(cls, line: str) -> QueueLogEntry:
        """Parse a line written by :meth:`to_line` (raises ``ValueError`` if malformed)."""
        parts = line.rstrip("\n").split("|")
        if len(parts) < 5:
            raise ValueError(f"queue log line has {len(parts)} fields, need at least 5")
        return cls(float(parts[0]), parts[2], parts[1], parts[3], QueueEvent(parts[4]),
                   tuple(parts[5:]))


class LogSink(Protocol):
    """Where the shell appends queue log entries (storage implements it)."""

    def append(self, entry: QueueLogEntry) -> None:
        """Append one entry; never reorder or rewrite earlier ones."""


class MemoryLogSink:
    """A list-backed :class:`LogSink` for tests, the simulator and live KPIs in memory."""

    def __init__(self) -> None:
        self.entries: list[QueueLogEntry] = []

    def append(self, entry: QueueLogEntry) -> None:
        """Append one entry, refusing entries that go back in time."""
        if self.entries and entry.time < self.entries[-1].time:
            raise ValueError("queue log entries must be appended in time order")
        self.entries.append(entry)
