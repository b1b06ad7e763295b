"""Campaign calls on the node's event bus: the dialer's Rule 6, split from
:mod:`switch.campaigns.dialer`.

Every campaign call is also a call of the switch: ``CallOffered`` (source ``campaign``),
``CallRouted`` naming the campaign, ``CallAnswered``, ``CallHungUp`` with a Q.850-style
cause, the side that ended it and the SIP status of a failure. So it gets a CDR like any
other call (``CdrCollector``), CTI clients see it, and the campaign and the outcome are
tagged on the CDR (``campaign``, ``campaign_outcome``). A dial that was never placed (no
route) publishes nothing: no call, no CDR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from switch.campaigns.answer import CALLEE_HUNG_UP
from switch.campaigns.model import Campaign, Outcome
from switch.campaigns.scheduler import DialContact
from switch.events import CallAnswered, CallHungUp, CallOffered, CallRouted

logger = logging.getLogger(__name__)

__all__ = ["CallEvents", "call_ids"]


def call_ids(campaign: Campaign, dial: DialContact) -> tuple[str, str]:
    """(call id, channel name) of one attempt: stable, unique per attempt."""
    return (f"campaign-{campaign.id}-{dial.contact.id}-{dial.attempt_no}",
            f"campaign/{dial.contact.phone}-{dial.attempt_no}")


class CallEvents:
    """Publishes the events of campaign calls (see the module docstring).

    Args:
        bus: the node's event bus (None: nothing is published).
        tagger: ``tagger(call_id, key, value)`` tags the call's CDR.
        wall: the clock (epoch seconds) of the events.
        caller: the calling number of campaign calls.
    """

    def __init__(self, bus: Any, tagger: Callable[[str, str, str], None] | None,
                 wall: Callable[[], float], caller: str) -> None:
        self.bus = bus
        self.tagger = tagger
        self.wall = wall
        self.caller = caller

    def _publish(self, cls: type, campaign: Campaign, dial: DialContact,
                 **fields: Any) -> None:
        if self.bus is None:
            return
        call_id, channel = call_ids(campaign, dial)
        self.bus.publish(cls(at=self.wall(), call_id=call_id, channel=channel, **fields))

    def start(self, campaign: Campaign, dial: DialContact, via: str) -> None:
        """The call is placed: offered by the campaign, routed to ``via``."""
        self._publish(CallOffered, campaign, dial, caller=self.caller,
                      callee=dial.contact.phone, source="campaign", caller_name=campaign.name)
        self._publish(CallRouted, campaign, dial, rule=f"campaign {campaign.name}", target=via)

    def answered(self, campaign: Campaign, dial: DialContact, codec: str) -> None:
        self._publish(CallAnswered, campaign, dial, codec=codec)

    def end(self, campaign: Campaign, dial: DialContact, outcome: Outcome, detail: str, *,
            answered: bool, sip_status: int | None) -> None:
        """The call ended with ``outcome``: tag the CDR, publish the hang-up and its cause."""
        call_id, _ = call_ids(campaign, dial)
        if self.tagger is not None:
            self.tagger(call_id, "campaign", campaign.name)
            self.tagger(call_id, "campaign_outcome", outcome.value)
        cause, side, status = "normal_clearing", "system", None
        if not answered:
            status = sip_status
            cause = {Outcome.BUSY: "user_busy", Outcome.NO_ANSWER: "no_answer"}.get(
                outcome, "shutdown" if detail == "shutdown" else "call_rejected")
        elif detail == CALLEE_HUNG_UP:
            side = "callee"
        self._publish(CallHungUp, campaign, dial, cause=cause, side=side, sip_status=status)
