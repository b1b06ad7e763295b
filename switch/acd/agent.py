"""Agent state machine (IVR_CTI_ACD.md §B.4 CSTA agent states, §C.2 mod_callcenter agents).

States follow CSTA SetAgentState / the CTI event names (§B.8): logged off, ready, not ready
(with a reason), busy, working after call (wrap-up), plus ``RESERVED``: a call is being
offered to the agent (wellClient "agentAllocated", mod_callcenter state "Receiving").

The transition table has the h2 shape (STYLE.md §4.3):
``dict[(AgentState, AgentInput)] -> (AgentEffect | None, AgentState)``. A missing key is the
single error path: :func:`transition` raises :class:`AgentStateError`. The engine performs the
side effect the table names; the table itself mutates nothing.

Requests that cannot take effect at once are remembered as a *pending* state, like CSTA's
``pendingAgentState`` on AgentWorkingAfterCall: "not ready" or "log out" during a call applies
when the call (and its wrap-up) ends.

    LOGGED_OFF --LOGIN--> NOT_READY --SET_READY--> READY --OFFER--> RESERVED --ANSWER--> BUSY
    RESERVED --REJECT/RING_TIMEOUT (count a miss)/WITHDRAW--> READY
    BUSY --CALL_END--> WRAP_UP --WRAPUP_END/SET_READY--> READY (or the pending state)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

logger = logging.getLogger(__name__)

__all__ = [
    "TRANSITIONS",
    "AcdError",
    "Agent",
    "AgentEffect",
    "AgentInput",
    "AgentState",
    "AgentStateError",
    "Device",
    "transition",
]


class AcdError(Exception):
    """Root of the ACD's errors (misuse of the engine API)."""


class AgentStateError(AcdError):
    """An input that the agent state table does not allow in the current state."""

    def __init__(self, state: AgentState, agent_input: AgentInput) -> None:
        super().__init__(f"agent input {agent_input.name} not allowed in state {state.name}")
        self.state = state
        self.agent_input = agent_input


class AgentState(Enum):
    """Agent states (CSTA names: loggedOff, ready, notReady, busy, workingAfterCall)."""

    LOGGED_OFF = "logged_off"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"
    BUSY = "busy"
    WRAP_UP = "wrap_up"


class AgentInput(Enum):
    """Inputs to the agent machine."""

    LOGIN = "login"
    LOGOUT = "logout"
    SET_READY = "set_ready"
    SET_NOT_READY = "set_not_ready"
    OFFER = "offer"
    ANSWER = "answer"
    REJECT = "reject"
    RING_TIMEOUT = "ring_timeout"
    WITHDRAW = "withdraw"
    CALL_END = "call_end"
    WRAPUP_END = "wrapup_end"


class AgentEffect(Enum):
    """Side effects the engine performs for a transition."""

    COUNT_MISS = "count_miss"              # a missed offer: maybe auto not-ready
    CANCEL_OFFER = "cancel_offer"          # withdraw the offer; the call goes back to the queue
    SET_PENDING = "set_pending"            # remember not-ready/logout for after the call
    CLEAR_PENDING = "clear_pending"        # "ready" during a call cancels a pending request
    START_WRAPUP = "start_wrapup"          # arm the wrap-up deadline
    APPLY_PENDING = "apply_pending"        # move on to the pending state, if any
    RESET_MISSES = "reset_misses"          # an answered offer clears the miss counter


S = AgentState
I = AgentInput  # noqa: E741 - table shorthand
E = AgentEffect

TRANSITIONS: dict[tuple[AgentState, AgentInput], tuple[AgentEffect | None, AgentState]] = {
    (S.LOGGED_OFF, I.LOGIN): (None, S.NOT_READY),
    (S.NOT_READY, I.SET_READY): (None, S.READY),
    (S.NOT_READY, I.SET_NOT_READY): (None, S.NOT_READY),      # change of reason
    (S.NOT_READY, I.LOGOUT): (None, S.LOGGED_OFF),
    (S.READY, I.SET_READY): (None, S.READY),
    (S.READY, I.SET_NOT_READY): (None, S.NOT_READY),
    (S.READY, I.LOGOUT): (None, S.LOGGED_OFF),
    (S.READY, I.OFFER): (None, S.RESERVED),
    (S.RESERVED, I.ANSWER): (E.RESET_MISSES, S.BUSY),
    (S.RESERVED, I.REJECT): (E.COUNT_MISS, S.READY),
    (S.RESERVED, I.RING_TIMEOUT): (E.COUNT_MISS, S.READY),
    (S.RESERVED, I.WITHDRAW): (None, S.READY),
    (S.RESERVED, I.SET_NOT_READY): (E.CANCEL_OFFER, S.NOT_READY),
    (S.RESERVED, I.LOGOUT): (E.CANCEL_OFFER, S.LOGGED_OFF),
    (S.RESERVED, I.SET_READY): (None, S.RESERVED),
    (S.BUSY, I.CALL_END): (E.START_WRAPUP, S.WRAP_UP),
    (S.BUSY, I.SET_NOT_READY): (E.SET_PENDING, S.BUSY),
    (S.BUSY, I.LOGOUT): (E.SET_PENDING, S.BUSY),
    (S.BUSY, I.SET_READY): (E.CLEAR_PENDING, S.BUSY),
    (S.WRAP_UP, I.WRAPUP_END): (E.APPLY_PENDING, S.READY),
    (S.WRAP_UP, I.SET_READY): (E.CLEAR_PENDING, S.READY),     # CSTA: ready ends ACW early
    (S.WRAP_UP, I.SET_NOT_READY): (E.SET_PENDING, S.WRAP_UP),
    (S.WRAP_UP, I.LOGOUT): (None, S.LOGGED_OFF),
}


def transition(state: AgentState, agent_input: AgentInput) -> tuple[AgentEffect | None, AgentState]:
    """Look up one transition.

    Returns:
        ``(side effect or None, new state)``.

    Raises:
        AgentStateError: the pair is not in :data:`TRANSITIONS`.
    """
    try:
        return TRANSITIONS[(state, agent_input)]
    except KeyError:
        raise AgentStateError(state, agent_input) from None


@dataclass(frozen=True, slots=True)
class Device:
    """Where an agent takes calls: a registered extension or an outside number via a trunk."""

    kind: str
    address: str

    def __post_init__(self) -> None:
        if self.kind not in ("extension", "external"):
            raise ValueError(f"device kind must be 'extension' or 'external', not {self.kind!r}")
        if not self.address:
            raise ValueError("device address is empty")


@dataclass(slots=True)
class Agent:
    """One agent's mutable record, owned by the engine.

    Attributes:
        agent_id: agent identifier.
        device: where offers ring.
        skills: skill name -> level (1 = best, as Avaya skill levels / mod_callcenter tiers).
        position: order for the linear and round-robin strategies (login order by default).
        weight: relative weight for the weighted-random strategy.
        state: current :class:`AgentState`.
        reason: not-ready reason (empty otherwise).
        state_since: when the current state began.
        idle_since: when the agent last became available after a call or a pause; the key of
            the longest-idle strategy (offers that were missed or withdrawn do not reset it).
        login_time: when the agent logged in.
        calls_answered: per queue, calls answered (fewest-calls strategy).
        missed_in_row: consecutive missed offers (auto not-ready at the queue's limit).
        pending: state requested during a call, applied when the call and wrap-up end.
        pending_reason: reason for a pending not-ready.
        call_id: the call offered to or handled by the agent.
        call_queue: queue of that call.
        wrapup_until: wrap-up deadline.
    """

    agent_id: str
    device: Device
    skills: dict[str, int]
    position: int
    weight: float = 1.0
    state: AgentState = AgentState.LOGGED_OFF
    reason: str = ""
    state_since: float = 0.0
    idle_since: float = 0.0
    login_time: float = 0.0
    calls_answered: dict[str, int] = field(default_factory=dict)
    missed_in_row: int = 0
    pending: AgentState | None = None
    pending_reason: str = ""
    call_id: str | None = None
    call_queue: str | None = None
    wrapup_until: float | None = None
