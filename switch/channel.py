"""Channel: one leg of a call (a SIP dialog plus its media channel), with its state machine.

DESIGN.md "Call model": a channel is one leg with a state enum (DOWN, RINGING, EARLY, UP,
HANGUP). Bridges, the B2BUA, the IVR and the ACD look at this object and never at SIP; the
SIP-specific bookkeeping (transaction ids, dialog id, SDP) lives in ``sip`` and is only read
and written by :mod:`switch.drivers.sip`.

Rules:

* Rule 1 -- one explicit transition table (STYLE.md §4.3, the h2 shape)
  ``(state, input) -> state``; a missing key is the single error path
  (:class:`ChannelStateError`). The states follow RFC 3261's view of an INVITE session:

  ====================  ==========================================================
  DOWN                  INVITE received/sent, nothing said yet (100 at most)
  RINGING               alerting: 180 without media (§13.3.1.1)
  EARLY                 early media: 183/180 with SDP (RFC 3960)
  UP                    2xx sent/received (§13.3.1.4)
  HANGUP                final: rejected, cancelled, BYE, timeout
  ====================  ==========================================================

  A 180 after a 183 keeps EARLY (the media is already flowing); a provisional response
  after UP is an input the table refuses (Sippy and loaded proxies do send late 180s, so
  the driver asks :meth:`Channel.can` first and drops it).
* Rule 2 -- the channel does not act: :meth:`Channel.fire` only records the new state and
  when it was entered; the driver and the B2BUA decide what to send.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "TRANSITIONS",
    "Channel",
    "ChannelInput",
    "ChannelState",
    "ChannelStateError",
]


class ChannelState(enum.Enum):
    """Where a leg is (DESIGN.md "Call model")."""

    DOWN = "down"
    RINGING = "ringing"
    EARLY = "early"
    UP = "up"
    HANGUP = "hangup"


class ChannelInput(enum.Enum):
    """What can happen to a leg."""

    RING = "ring"
    """180 without SDP, sent or received."""
    PROGRESS = "progress"
    """183 (or 180) with SDP: early media."""
    ANSWER = "answer"
    """2xx to the INVITE."""
    HANGUP = "hangup"
    """Final failure, CANCEL, BYE, timeout."""


class ChannelStateError(RuntimeError):
    """An input the transition table has no entry for (a programming or protocol race)."""


_S, _I = ChannelState, ChannelInput

TRANSITIONS: dict[tuple[ChannelState, ChannelInput], ChannelState] = {
    (_S.DOWN, _I.RING): _S.RINGING,
    (_S.DOWN, _I.PROGRESS): _S.EARLY,
    (_S.DOWN, _I.ANSWER): _S.UP,
    (_S.DOWN, _I.HANGUP): _S.HANGUP,
    (_S.RINGING, _I.RING): _S.RINGING,
    (_S.RINGING, _I.PROGRESS): _S.EARLY,
    (_S.RINGING, _I.ANSWER): _S.UP,
    (_S.RINGING, _I.HANGUP): _S.HANGUP,
    (_S.EARLY, _I.RING): _S.EARLY,
    (_S.EARLY, _I.PROGRESS): _S.EARLY,
    (_S.EARLY, _I.ANSWER): _S.UP,
    (_S.EARLY, _I.HANGUP): _S.HANGUP,
    (_S.UP, _I.HANGUP): _S.HANGUP,
}
"""Rule 1. HANGUP has no way out: a leg is never reused."""


@dataclass(eq=False, slots=True)
class Channel:
    """One leg.

    Attributes:
        name: unique leg name (``sip/1001-000007``), the ``channel`` of bus events.
        call_id: the switch's id of the call this leg belongs to ("" until assigned).
        role: "caller" (the A leg, inbound) or "callee" (a B leg we originated).
        peer: the user or number at the far end of this leg (caller's user for A, the
            extension for B).
        state: see :class:`ChannelState`.
        media_id: the MediaService channel id (None until media is opened).
        codec: the negotiated voice codec ("PCMU"/"PCMA"), "" until known.
        remote_media: the peer's RTP address from SDP.
        held: the peer put us on hold (sendonly/inactive, RFC 3264 §8.4).
        sip: the SIP driver's private state of this leg (transactions, dialog, SDP).
    """

    name: str
    role: str
    peer: str
    call_id: str = ""
    state: ChannelState = ChannelState.DOWN
    media_id: int | None = None
    codec: str = ""
    remote_media: tuple[str, int] | None = None
    held: bool = False
    state_at: dict[ChannelState, float] = field(default_factory=dict)
    sip: Any = None
    direct_media: bool = False
    """SDP passed through, no media channel (``switch.direct_media``)."""

    def can(self, event: ChannelInput) -> bool:
        """Whether ``event`` is allowed in the current state."""
        return (self.state, event) in TRANSITIONS

    def fire(self, event: ChannelInput, now: float) -> ChannelState:
        """Apply ``event`` (Rule 1); returns the new state.

        Raises:
            ChannelStateError: the table has no entry for (state, event).
        """
        try:
            new = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise ChannelStateError(
                f"{self.name}: {event.value} is not allowed in state {self.state.value}"
            ) from None
        if new is not self.state:
            logger.debug("%s: %s -> %s", self.name, self.state.value, new.value)
            self.state = new
            self.state_at.setdefault(new, now)
        return new

    @property
    def ended(self) -> bool:
        return self.state is ChannelState.HANGUP

    @property
    def answered(self) -> bool:
        return ChannelState.UP in self.state_at

    def __repr__(self) -> str:
        return f"<Channel {self.name} {self.role} {self.state.value} call={self.call_id}>"
