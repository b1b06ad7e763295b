"""ACD inputs and actions: the frozen dataclasses that cross the sans-IO boundary.

Inputs are past-tense events the shell feeds to :meth:`AcdEngine.handle` (``CallerArrived``,
``OfferAnswered``…); actions are imperative instructions it returns (``OfferCall``,
``WithdrawOffer``, ``BridgeCall``…), following STYLE.md §4.4. Names follow the CSTA vocabulary
of IVR_CTI_ACD.md §B.4/§B.8 where one exists (offer = CSTA Delivered, bridge = Established).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from switch.acd.agent import AgentState, Device
from switch.acd.log import QueueLogEntry
from switch.acd.queue import OverflowTarget

__all__ = [
    "AcdAction",
    "AcdInput",
    "AgentLoggedIn",
    "AgentLoggedOut",
    "AgentNotReady",
    "AgentReady",
    "AgentStateChanged",
    "Announce",
    "BridgeCall",
    "CallEnded",
    "CallPickedUp",
    "CallTransferred",
    "CallbackQueued",
    "CallbackRequested",
    "CallbackScheduled",
    "CallerAbandoned",
    "CallerArrived",
    "LogEntry",
    "OfferAnswered",
    "OfferCall",
    "OfferRejected",
    "Overflow",
    "PlaceCallback",
    "PlayMusic",
    "PriorityChanged",
    "StopMusic",
    "WithdrawOffer",
    "WrapUpEnded",
]

# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class CallerArrived:
    """A caller enters ``queue``. ``skill``/``level`` override the queue's requirement;
    ``max_wait_s`` the queue's maximum wait (an IVR ``queue ... maxwait``)."""

    queue: str
    call_id: str
    priority: int = 0
    skill: str = ""
    level: int | None = None
    max_wait_s: float | None = None


@dataclass(frozen=True, slots=True)
class CallerAbandoned:
    """The caller hung up while waiting (or while ringing at an agent)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    """The caller leaves but keeps its place; call back ``number``."""

    call_id: str
    number: str


@dataclass(frozen=True, slots=True)
class AgentLoggedIn:
    """An agent logs in on a device with skills ``{skill: level}`` (1 = best)."""

    agent_id: str
    device: Device
    skills: Mapping[str, int]
    ready: bool = True
    position: int | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class AgentLoggedOut:
    """The agent logs out (after the current call, if busy)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentReady:
    """The agent becomes ready (also ends wrap-up early)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentNotReady:
    """The agent goes not ready with a reason (after the current call, if busy)."""

    agent_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OfferAnswered:
    """The agent's device answered the offer of ``call_id``."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferRejected:
    """The agent's device refused the offer (busy, declined, unreachable)."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A connected call ended; ``by_agent`` tells who hung up."""

    call_id: str
    by_agent: bool = False


@dataclass(frozen=True, slots=True)
class CallTransferred:
    """The agent transferred the connected call to ``target``."""

    call_id: str
    target: str


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    """The agent finished after-call work early (pending state applies)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class CallPickedUp:
    """Agent ``agent_id`` takes the waiting caller ``call_id`` of ``queue`` out of turn
    (CSTA GroupPickupCall from the desk): the call is offered to that agent alone."""

    queue: str
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """A supervisor sets the base priority of the waiting caller ``call_id``."""

    queue: str
    call_id: str
    priority: int


@dataclass(frozen=True, slots=True)
class CallbackQueued:
    """A callback entry for ``number`` joins ``queue`` at time ``at`` (now when None)
    without a live caller (scheduled from the desk or a CRM, IVR_CTI_ACD.md §C.4)."""

    queue: str
    call_id: str
    number: str
    at: float | None = None
    priority: int = 0


AcdInput = (CallerArrived | CallerAbandoned | CallbackRequested | AgentLoggedIn | AgentLoggedOut
            | AgentReady | AgentNotReady | OfferAnswered | OfferRejected | CallEnded
            | CallTransferred | WrapUpEnded | CallPickedUp | PriorityChanged | CallbackQueued)

# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class OfferCall:
    """Ring ``device`` for ``call_id`` for at most ``ring_timeout_s``."""

    call_id: str
    queue: str
    agent_id: str
    device: Device
    ring_timeout_s: float
    callback_number: str | None = None


@dataclass(frozen=True, slots=True)
class WithdrawOffer:
    """Stop ringing ``device`` (reason: answered-elsewhere, caller-abandoned, ring-timeout,
    rejected, agent-logged-out, agent-not-ready, callback, stale)."""

    call_id: str
    agent_id: str
    device: Device
    reason: str


@dataclass(frozen=True, slots=True)
class BridgeCall:
    """Connect the waiting caller to the agent who answered."""

    call_id: str
    queue: str
    agent_id: str
    device: Device


@dataclass(frozen=True, slots=True)
class PlaceCallback:
    """The agent answered a callback entry: dial ``number`` and bridge it to the agent."""

    call_id: str
    queue: str
    agent_id: str
    device: Device
    number: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell the caller its position and expected wait (None = unknown)."""

    call_id: str
    queue: str
    position: int | None
    expected_wait_s: float | None


@dataclass(frozen=True, slots=True)
class PlayMusic:
    """Start music on hold for the caller."""

    call_id: str
    moh_class: str


@dataclass(frozen=True, slots=True)
class StopMusic:
    """Stop music on hold for the caller."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Overflow:
    """The caller leaves ``queue`` (reason full/join-empty/timeout/empty) for ``target``.

    ``target is None``: continue in the IVR after the queue step. For ``kind == "queue"`` the
    engine has already entered the caller into the target queue.
    """

    call_id: str
    queue: str
    reason: str
    target: OverflowTarget | None


@dataclass(frozen=True, slots=True)
class CallbackScheduled:
    """A callback entry now holds the caller's place at ``position``."""

    call_id: str
    queue: str
    number: str
    position: int


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """An agent changed state (CTI ``agent.*`` events)."""

    agent_id: str
    old: AgentState
    new: AgentState
    reason: str


@dataclass(frozen=True, slots=True)
class LogEntry:
    """Append ``entry`` to the queue log (the shell's LogSink)."""

    entry: QueueLogEntry


AcdAction = (OfferCall | WithdrawOffer | BridgeCall | PlaceCallback | Announce | PlayMusic
             | StopMusic | Overflow | CallbackScheduled | AgentStateChanged | LogEntry)
