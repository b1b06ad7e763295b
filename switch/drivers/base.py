"""The channel driver seam: what the B2BUA asks of a leg, and what a leg reports back.

STYLE.md §4.2 ``drivers/base.py`` (Asterisk's ``ast_channel_tech``): a driver maps one
signalling protocol onto :class:`~switch.channel.Channel` objects. The call manager
(:mod:`switch.b2bua`) only speaks the verbs of :class:`ChannelDriver` and reacts to the
leg events below, so it never sees SIP (DESIGN.md "Call model").

Leg events are driver-level facts about one channel (past tense, frozen); the call manager
turns them into bus events (:mod:`switch.events`) with call ids and wall-clock times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from switch.channel import Channel

__all__ = [
    "ChannelDriver",
    "LegAnswered",
    "LegEvent",
    "LegHeld",
    "LegHungUp",
    "LegOffered",
    "LegRejected",
    "LegRinging",
]


@dataclass(frozen=True, slots=True)
class LegOffered:
    """A new inbound call on ``channel`` (authenticated; media already opened)."""

    channel: Channel
    caller: str
    """The caller's user (the authenticated digest user for local phones)."""
    dialed: str
    """The number dialed (Request-URI user part)."""
    caller_name: str = ""
    source: str = "user"
    trunk: str = ""
    """For ``source == "trunk"``: the trunk the call came in on (``switch.trunks``)."""


@dataclass(frozen=True, slots=True)
class LegRinging:
    """An outbound leg is alerting; ``early_media`` when it sent SDP (183/180 with SDP)."""

    channel: Channel
    early_media: bool


@dataclass(frozen=True, slots=True)
class LegAnswered:
    """An outbound leg was answered (2xx received and media set up)."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class LegRejected:
    """An outbound leg failed before answer with SIP ``status`` (408 for a timeout)."""

    channel: Channel
    status: int


@dataclass(frozen=True, slots=True)
class LegHungUp:
    """A leg ended from its far side: BYE, CANCEL (``cancelled``), or the dialog died."""

    channel: Channel
    cancelled: bool = False
    reason: str = "bye"


@dataclass(frozen=True, slots=True)
class LegHeld:
    """The far side put the leg on hold (``held``) or took it off hold."""

    channel: Channel
    held: bool


LegEvent = LegOffered | LegRinging | LegAnswered | LegRejected | LegHungUp | LegHeld


class ChannelDriver(Protocol):
    """The verbs the call manager uses on legs (all idempotent on an ended leg)."""

    def lookup(self, number: str) -> list[Any]:
        """Where an extension can be reached now (its registered contacts)."""
        ...

    def new_outbound(self, peer: str) -> Channel:
        """A fresh callee channel (DOWN, not yet sent anywhere)."""
        ...

    async def originate(self, channel: Channel, target: Any, *, caller: str,
                        caller_name: str = "", codec: str = "PCMU",
                        near: int | None = None) -> None:
        """Open the leg's media and send the call to ``target`` (one contact)."""
        ...

    def ring(self, channel: Channel) -> None:
        """Tell an inbound leg's caller that the other side is alerting (180)."""
        ...

    def progress(self, channel: Channel) -> None:
        """Start early media on an inbound leg (183 with our SDP)."""
        ...

    def answer(self, channel: Channel) -> None:
        """Answer an inbound leg (200 with our SDP)."""
        ...

    def reject(self, channel: Channel, status: int, reason: str = "") -> None:
        """Refuse an inbound leg that was not answered."""
        ...

    def cancel(self, channel: Channel) -> None:
        """Stop an outbound leg that was not answered (CANCEL)."""
        ...

    def hangup(self, channel: Channel) -> None:
        """End an answered leg (BYE); for unanswered legs, cancel or reject."""
        ...

    async def release(self, channel: Channel) -> dict[str, Any] | None:
        """Close the leg's media; returns its last RTP statistics (None without media)."""
        ...
