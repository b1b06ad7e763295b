"""Queues and waiting callers (IVR_CTI_ACD.md §C.1 app_queue, §C.2 mod_callcenter, §C.4).

Rules:

* Rule 1 (order): a caller's score is ``priority + waited_s × priority_weight`` — the
  mod_callcenter model ("a caller's score increases by 1 for every second he waits; you can add
  a base score to move a caller to the front"). Higher score is served first; equal scores are
  FIFO. Because every caller's score grows at the same rate, the order never changes with
  time, so the queue is kept sorted once by the static key ``(enter × weight − priority, seq)``.
  ``priority_weight = 0`` gives strict priority classes, FIFO inside each class (Asterisk
  ``QUEUE_PRIO``). A VIP is a caller with a higher base priority.
* Rule 2 (place): a caller keeps its key for its whole stay in the queue, so a caller whose offer
  fails (agent logged out while ringing, ring timeout) and a callback entry (the caller hung up
  and asked to be called back) keep their place.
* Rule 3 (skills and widening): a caller needs ``skill`` at a level ``<= allowed level`` (1 is
  best, as Avaya skill levels and mod_callcenter tier levels). The allowed level starts at
  ``initial_level`` and grows by ``widen_step`` every ``widen_every_s`` of waiting, up to
  ``max_level`` (mod_callcenter ``tier-rule-wait-second``, Genesys bullseye rings).
* Rule 4 (limits): ``max_len`` callers at most (0 = unlimited, Asterisk ``maxlen``), and
  ``max_wait_s`` before the caller leaves to the ``overflow`` target (another queue, voicemail
  or an IVR step; Asterisk application timeout, mod_callcenter ``max-wait-time``).
* Rule 5 (empty queues): ``join_empty`` and ``leave_empty`` are :class:`EmptyRule` values
  (Asterisk ``joinempty``/``leavewhenempty`` reduced to the two conditions that matter).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from switch.acd.agent import Agent, AgentState

logger = logging.getLogger(__name__)

_UNSTAFFED = (AgentState.LOGGED_OFF, AgentState.NOT_READY)

__all__ = [
    "Caller",
    "EmptyRule",
    "OverflowTarget",
    "Queue",
    "QueueConfig",
    "Strategy",
    "estimate_wait_s",
]


class Strategy(Enum):
    """Agent selection strategies (Asterisk ringall/leastrecent/fewestcalls/rrmemory/linear/
    random/wrandom; mod_callcenter ring-all/longest-idle-agent/…)."""

    RING_ALL = "ring-all"
    LONGEST_IDLE = "longest-idle"
    FEWEST_CALLS = "fewest-calls"
    ROUND_ROBIN = "round-robin"
    LINEAR = "linear"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted-random"


class EmptyRule(Enum):
    """When a queue counts as "empty" for joining or leaving."""

    NEVER = "never"                          # join always / never leave for lack of agents
    NO_AGENT_LOGGED_IN = "no-agent-logged-in"  # no eligible agent logged in at all
    NO_AGENT_AVAILABLE = "no-agent-available"  # every eligible agent logged off or not ready


@dataclass(frozen=True, slots=True)
class OverflowTarget:
    """Where a caller goes when the queue is full, the wait too long, or the queue empty.

    ``kind`` is ``"queue"`` (the engine moves the caller itself, keeping its priority),
    ``"voicemail"`` or ``"ivr"`` (the shell routes the call to ``target``).
    """

    kind: str
    target: str

    def __post_init__(self) -> None:
        if self.kind not in ("queue", "voicemail", "ivr"):
            raise ValueError(f"overflow kind must be queue, voicemail or ivr, not {self.kind!r}")
        if not self.target:
            raise ValueError("overflow target is empty")

    def label(self) -> str:
        """``kind:target`` for the log."""
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue's configuration (IVR_CTI_ACD.md §C.8 item 1). Units are in the names."""

    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    skill: str = ""                       # required skill; "" means the queue name
    ring_timeout_s: float = 15.0          # ring one agent this long (Asterisk ``timeout``)
    wrapup_s: float = 0.0                 # after-call work (Asterisk ``wrapuptime``)
    max_no_answer: int = 3                # missed offers in a row -> not ready (0 = never)
    auto_not_ready_reason: str = "no-answer"
    max_len: int = 0                      # 0 = unlimited
    max_wait_s: float | None = None
    overflow: OverflowTarget | None = None
    join_empty: EmptyRule = EmptyRule.NEVER
    leave_empty: EmptyRule = EmptyRule.NEVER
    priority_weight: float = 1.0          # score points per waited second
    initial_level: int = 1
    widen_every_s: float | None = None
    widen_step: int = 1
    max_level: int | None = None
    announce_frequency_s: float | None = None
    announce_position: bool = True
    announce_holdtime: bool = True
    moh_class: str = "default"
    weight: int = 0                       # higher-weight queues get shared agents first
    default_aht_s: float = 180.0          # EWT estimate before any call was handled

    def __post_init__(self) -> None:
        if not self.name or "|" in self.name:
            raise ValueError(f"bad queue name {self.name!r}")
        if self.ring_timeout_s <= 0 or self.wrapup_s < 0 or self.max_len < 0:
            raise ValueError("ring_timeout_s must be > 0, wrapup_s and max_len >= 0")
        if self.widen_every_s is not None and self.widen_every_s <= 0:
            raise ValueError("widen_every_s must be > 0")
        if self.announce_frequency_s is not None and self.announce_frequency_s <= 0:
            raise ValueError("announce_frequency_s must be > 0")
        if self.max_wait_s is not None and self.max_wait_s <= 0:
            raise ValueError("max_wait_s must be > 0")

    @property
    def required_skill(self) -> str:
        """The skill agents need for this queue."""
        return self.skill or self.name


@dataclass(slots=True)
class Caller:
    """A waiting caller (or a callback entry holding a caller's place).

    Attributes:
        call_id: the call.
        queue: queue it waits in.
        priority: base score (VIP > 0).
        enter_time: when it entered this queue.
        seq: engine-wide arrival counter, the FIFO tie-break.
        orig_position: position at entry (for the log).
        skill: required skill.
        initial_level: allowed skill level at entry.
        level: allowed skill level now (the engine updates it at each widening deadline).
        offered_to: agents currently being offered this call (several for ring-all).
        offer_started: when the current offer began.
        timed_out: max wait passed while an offer was ringing; leave if the offer fails.
        callback_number: set when the caller left and asked to be called back.
    """

    call_id: str
    queue: str
    priority: int
    enter_time: float
    seq: int
    orig_position: int = 0
    skill: str = ""
    initial_level: int = 1
    level: int = 1
    offered_to: set[str] = field(default_factory=set)
    offer_started: float = 0.0
    timed_out: bool = False
    callback_number: str | None = None

    def key(self, priority_weight: float) -> tuple[float, int]:
        """Static sort key (Rule 1): ascending key = descending score."""
        return (self.enter_time * priority_weight - self.priority, self.seq)

    def score(self, now: float, priority_weight: float) -> float:
        """mod_callcenter score: base priority + waited seconds × weight."""
        return self.priority + (now - self.enter_time) * priority_weight


class Queue:
    """A queue: its config, its callers in score order, and round-robin memory."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self._keys: list[tuple[float, int]] = []
        self._callers: list[Caller] = []
        self._by_id: dict[str, Caller] = {}
        self.rr_last_position: int | None = None
        self.foreign_skills = 0  # callers needing another skill than the queue's

    @property
    def name(self) -> str:
        """The queue name."""
        return self.config.name

    def __len__(self) -> int:
        return len(self._callers)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._by_id

    def callers(self) -> list[Caller]:
        """Callers in service order (a copy)."""
        return list(self._callers)

    def ordered(self) -> Sequence[Caller]:
        """Callers in service order, without copying (do not insert or remove while iterating)."""
        return self._callers

    def get(self, call_id: str) -> Caller | None:
        """The caller with this call id, if waiting here."""
        return self._by_id.get(call_id)

    def is_full(self) -> bool:
        """True if ``max_len`` callers are already waiting."""
        return 0 < self.config.max_len <= len(self._callers)

    def insert(self, caller: Caller) -> int:
        """Insert at the caller's place (Rule 2) and return its 1-based position."""
        if caller.call_id in self._by_id:
            raise ValueError(f"call {caller.call_id} already in queue {self.name}")
        key = caller.key(self.config.priority_weight)
        index = bisect.bisect_left(self._keys, key)
        self._keys.insert(index, key)
        self._callers.insert(index, caller)
        self._by_id[caller.call_id] = caller
        self.foreign_skills += caller.skill != self.config.required_skill
        return index + 1

    def remove(self, call_id: str) -> tuple[Caller, int]:
        """Remove a caller; return it and the 1-based position it had."""
        caller = self._by_id.pop(call_id)
        key = caller.key(self.config.priority_weight)
        index = bisect.bisect_left(self._keys, key)
        if self._callers[index] is not caller:
            raise RuntimeError("queue order corrupted")
        del self._keys[index]
        del self._callers[index]
        self.foreign_skills -= caller.skill != self.config.required_skill
        return caller, index + 1

    def position(self, call_id: str) -> int:
        """1-based position of a waiting caller (Raises ``KeyError`` if absent)."""
        caller = self._by_id[call_id]
        return bisect.bisect_left(self._keys, caller.key(self.config.priority_weight)) + 1

    def eligible(self, agent: Agent) -> bool:
        """True if the agent has this queue's skill at a level the queue may ever use."""
        level = agent.skills.get(self.config.required_skill)
        cap = self.config.max_level
        return level is not None and (cap is None or level <= cap)

    def staffing(self, agents: Iterable[Agent]) -> tuple[int, int]:
        """(staffed, ready) eligible agents; staffed = logged in and not "not ready"."""
        staffed = ready = 0
        for agent in agents:
            if agent.state not in _UNSTAFFED and self.eligible(agent):
                staffed += 1
                ready += agent.state is AgentState.READY
        return staffed, ready

    def is_empty(self, agents: Iterable[Agent], rule: EmptyRule) -> bool:
        """Whether the queue counts as empty under ``rule`` (Rule 5)."""
        if rule is EmptyRule.NEVER:
            return False
        absent = (AgentState.LOGGED_OFF,) if rule is EmptyRule.NO_AGENT_LOGGED_IN else \
            _UNSTAFFED
        return not any(a.state not in absent and self.eligible(a) for a in agents)

    def allowed_level(self, caller: Caller, now: float) -> int:
        """Highest skill level this caller may be given to now (Rule 3, widening)."""
        level = caller.initial_level
        every = self.config.widen_every_s
        if every is not None:
            steps = math.floor(max(0.0, now - caller.enter_time) / every + 1e-9)
            level += steps * self.config.widen_step
        if self.config.max_level is not None:
            level = min(level, self.config.max_level)
        return level

    def next_widening(self, caller: Caller, now: float) -> float | None:
        """When the allowed level next grows, or None if it no longer can."""
        every = self.config.widen_every_s
        if every is None:
            return None
        cap = self.config.max_level
        if cap is not None and self.allowed_level(caller, now) >= cap:
            return None
        steps = math.floor(max(0.0, now - caller.enter_time) / every + 1e-9) + 1
        return caller.enter_time + steps * every


def estimate_wait_s(position: int, staffed: int, ready: int, aht_s: float) -> float | None:
    """Expected wait for the caller at ``position`` (1 = next).

    A simple deterministic estimate (the one Asterisk's ``announce-holdtime`` approximates with
    a running average): callers ahead that cannot be served by the ``ready`` agents at once
    are served at the rate of ``staffed`` agents each finishing a call every ``aht_s``::

        EWT = max(0, position - ready) × aht_s / staffed

    Returns None when no agent is staffed (the wait is unbounded).
    """
    if staffed <= 0:
        return None
    return max(0, position - ready) * aht_s / staffed
