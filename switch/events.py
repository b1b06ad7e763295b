"""Call, agent and queue events: what the switch publishes on its event bus.

DESIGN.md "Call model": a channel driver turns SIP into call events, so bridges, the IVR, the
ACD, the CTI server, the CDR writer and wallboards never see SIP. These dataclasses are that
vocabulary (Sippy B2BUA's CCEvents idea, STYLE.md §2.4), published on :mod:`switch.bus`.

Rules:

* Rule 1 -- every event is a frozen, slotted, keyword-only dataclass: immutable, so one
  instance is safely shared by every subscriber's queue.
* Rule 2 -- ``at`` is wall-clock UNIX seconds given by the publisher (the shell's clock);
  nothing here reads a clock. CDR times and CTI event times come from it.
* Rule 3 -- call events carry ``call_id`` (the switch's id of the call, shared by all its
  legs) and ``channel`` (the leg the event is about). Names are past tense (STYLE.md §4.4).

``side`` and ``cause`` of :class:`CallHungUp` use the values in :data:`HANGUP_SIDES` and
Q.850-style cause names (``normal_clearing``, ``user_busy``, ``no_answer``,
``call_rejected``, ``originator_cancel``, ``network_failure``, ``shutdown``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HANGUP_SIDES",
    "AgentStateChanged",
    "CallAnswered",
    "CallBridged",
    "CallDequeued",
    "CallEvent",
    "CallHeld",
    "CallHungUp",
    "CallOffered",
    "CallQueued",
    "CallResumed",
    "CallRinging",
    "CallRouted",
    "CallTransferred",
    "DigitReceived",
    "Event",
    "LegMediaStats",
    "QueueStats",
    "RecordingStarted",
    "RecordingStopped",
]

HANGUP_SIDES = ("caller", "callee", "system")
"""Who ended a call: the calling party, the called party, or the switch itself (timeout,
shutdown, rejection by the dial plan)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Root of every bus event."""

    at: float
    """Wall-clock UNIX seconds when it happened (Rule 2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent(Event):
    """An event about one leg of a call."""

    call_id: str
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered(CallEvent):
    """A new call attempt arrived (inbound INVITE) or was placed (originate)."""

    caller: str
    callee: str
    source: str = "user"
    """"user" (an authenticated local user), "trunk" or "internal" (originated)."""
    caller_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRouted(CallEvent):
    """The dial plan chose a target: ``rule`` is the matched rule's name ("" for none)."""

    rule: str
    target: str
    """The target as text, e.g. ``queue:operator`` (``switch.router.describe_target``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRinging(CallEvent):
    """The called side is alerting (180/183)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(CallEvent):
    """The leg was answered (200 OK to the INVITE)."""

    codec: str = ""
    """The negotiated codec (``PCMA``, ``PCMU``...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallBridged(CallEvent):
    """This leg's media is now connected to ``other_channel``."""

    other_channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHungUp(CallEvent):
    """The leg ended. ``sip_status`` is the final response for unanswered attempts."""

    cause: str
    side: str
    sip_status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitReceived(CallEvent):
    """A DTMF digit (RFC 4733, SIP INFO or in-band)."""

    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHeld(CallEvent):
    """The leg was put on hold (re-INVITE with sendonly/inactive, RFC 3264 §8.4)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResumed(CallEvent):
    """The leg came off hold."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(CallEvent):
    """The call was sent on to ``target`` ("blind" or "attended", RFC 5589)."""

    target: str
    mode: str = "blind"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallQueued(CallEvent):
    """The caller entered an ACD queue."""

    queue: str
    priority: int = 0
    position: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallDequeued(CallEvent):
    """The caller left a queue: ``reason`` answered, abandoned, timeout, full, closed."""

    queue: str
    reason: str
    agent_id: str = ""
    waited_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LegMediaStats(CallEvent):
    """RTP statistics of a leg, published just before its :class:`CallHungUp` so the CDR
    carries them (RFC 3550 §6.4: cumulative loss, interarrival jitter)."""

    codec: str
    packets_received: int
    packets_lost: int
    jitter_ms: float
    rtt_ms: float | None = None
    remote: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(CallEvent):
    """Recording of the call started; ``ref`` names the recording (file or row id)."""

    ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStopped(CallEvent):
    """Recording stopped after ``duration_s``."""

    ref: str
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(Event):
    """An agent changed state (mirrors ``switch.acd.AgentStateChanged`` with a time)."""

    agent_id: str
    old: str
    new: str
    reason: str = ""
    call_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats(Event):
    """A snapshot of one queue for wallboards."""

    queue: str
    waiting: int
    agents_ready: int
    agents_busy: int
    longest_wait_s: float = 0.0
