"""REFER in, NOTIFY out: the transfer half of the SIP channel driver (internal).

A mixin of :class:`~switch.drivers.sip.SipChannelDriver`, like
:mod:`switch.drivers.sip_outbound`. It turns an in-dialog REFER (RFC 3515) into a
:class:`~switch.drivers.base.LegReferred` leg event and executes the call manager's
answer as SIP: 202 Accepted plus NOTIFYs carrying ``message/sipfrag`` progress, or a
rejection. The decision (who may transfer where) is the call logic's
(:mod:`switch.transfer`); this module only speaks SIP.

Rules:

* Rule 1 -- a REFER is only taken on an answered leg (it arrives in the leg's dialog, so
  its sender is the party that authenticated the call, RFC 5589 §5); on a leg that is not
  UP it gets 403. Missing or several Refer-To, or one that does not parse: 400
  (``signaling.refer`` Rule 1). A second REFER while one is in progress on the same leg:
  491 Request Pending.
* Rule 2 -- an embedded Replaces (RFC 3891) is resolved here against our own dialogs: it
  matches a leg whose dialog has that Call-ID and whose two tags are the Replaces' to-tag
  and from-tag in either order (we are both ends' peer, so the sender may name them from
  its own side or from ours). ``early-only`` on an answered leg matches nothing (§3).
* Rule 3 -- the handler of ``LegReferred`` must answer synchronously with
  :meth:`ReferLegs.refer_accept` or :meth:`ReferLegs.refer_reject`; a REFER nobody
  answered gets 603 Decline, so no REFER is ever left without a final response.
* Rule 4 -- an INVITE with a Replaces header (RFC 3891 §3) from an authenticated phone
  names a dialog of ours it wants to take over (call pickup, a transfer completed by the
  phones themselves). Checked here: several or a malformed Replaces: 400; no such dialog,
  or one not confirmed yet: 481 (taking over early dialogs is not served); ``early-only``
  naming a confirmed dialog: 486. A match is remembered for the new leg
  (:meth:`ReferLegs.take_replaced`) and the call logic decides who may take it over.
* Rule 5 -- NOTIFYs go in the REFER's dialog with ``Event: refer;id=<CSeq>``; the final
  status terminates the implicit subscription (RFC 3515 §2.4.7). NOTIFYs for a leg that
  already ended are dropped; their responses (or time-outs) are absorbed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signaling.core import SipCore
from signaling.dialog import DialogId
from signaling.errors import LocalSipError, SipParseError
from signaling.events import RequestReceived
from signaling.message import Request
from signaling.refer import (
    SIPFRAG,
    ReferError,
    Replaces,
    notify_headers,
    refer_target,
    sipfrag,
)
from switch.channel import Channel, ChannelState
from switch.drivers.base import LegEvent, LegReferred

logger = logging.getLogger(__name__)

__all__ = ["PendingRefer", "ReferLegs"]


@dataclass(slots=True)
class PendingRefer:
    """A REFER received on a leg, until its final NOTIFY."""

    request: Request
    transaction_id: str
    cseq: int
    answered: bool = False
    accepted: bool = False


class ReferLegs:
    """Mixin: REFER handling of :class:`~switch.drivers.sip.SipChannelDriver`."""

    core: SipCore
    on_event: Callable[[LegEvent], None]
    _flush: Callable[[], None]
    _now: Callable[[], float]
    _aux_txns: set[str]
    _by_dialog: dict[DialogId, Channel]
    _refers: dict[str, PendingRefer]
    _replacing: dict[str, Channel]

    if TYPE_CHECKING:  # provided by SipChannelDriver
        def _respond(self, request: Request, txn: str, status: int, *,
                     to_tag: str | None = None, body: bytes = b"",
                     extra: list[tuple[str, str]] | None = None,
                     reason: str | None = None) -> bool: ...

    # ====================================================================================
    # REFER in
    # ====================================================================================
    def _recv_refer(self, ch: Channel, event: RequestReceived) -> None:
        """Rules 1-3."""
        request, txn = event.request, event.transaction_id
        if ch.ended or ch.state is not ChannelState.UP:
            self._respond(request, txn, 403, reason="Transfer Needs An Answered Call")
            return
        if ch.name in self._refers:  # a transfer of this leg is already in progress
            self._respond(request, txn, 491)
            return
        try:
            target = refer_target(request.headers.get_all("Refer-To"))
            cseq = request.cseq.seq
        except ReferError as exc:
            logger.info("%s: REFER refused (%d): %s", ch.name, exc.status_code, exc.detail)
            self._respond(request, txn, exc.status_code, reason=exc.reason,
                          extra=[("Warning", f'399 softswitch "{exc.detail}"')])
            return
        except SipParseError as exc:
            self._respond(request, txn, 400, reason=exc.reason)
            return
        replaced: Channel | None = None
        if target.replaces is not None:
            r = target.replaces
            replaced = self.leg_of_dialog(r.call_id, r.to_tag, r.from_tag)
            if replaced is not None and r.early_only and replaced.state is ChannelState.UP:
                replaced = None
        pending = PendingRefer(request, txn, cseq)
        self._refers[ch.name] = pending
        logger.info("%s: REFER to %s%s", ch.name, target.uri,
                    " (attended)" if target.attended else "")
        self.on_event(LegReferred(ch, target.user, str(target.uri),
                                  attended=target.attended, replaces=replaced))
        if not pending.answered:
            logger.warning("%s: REFER not handled; declined", ch.name)
            self.refer_reject(ch, 603)

    def leg_of_dialog(self, call_id: str, tag_a: str, tag_b: str) -> Channel | None:
        """Rule 2: the live leg whose dialog is (call_id, {tag_a, tag_b})."""
        tags = {tag_a, tag_b}
        for did, leg in self._by_dialog.items():
            if did.call_id == call_id and {did.local_tag, did.remote_tag} == tags:
                return None if leg.ended else leg
        return None

    def _invite_replaces(self, request: Request) -> tuple[Channel | None, int | None]:
        """Rule 4: (the leg an INVITE takes over, None) or (None, the status to refuse it
        with); (None, None) for an INVITE without Replaces."""
        values = request.headers.get_all("Replaces")
        if not values:
            return None, None
        for name in [n for n, leg in self._replacing.items() if leg.ended]:
            del self._replacing[name]  # INVITEs that never became a call (cancelled)
        if len(values) > 1:
            return None, 400
        try:
            replaces = Replaces.parse(values[0])
        except ReferError as exc:
            logger.info("INVITE with a bad Replaces: %s", exc.detail)
            return None, 400
        leg = self.leg_of_dialog(replaces.call_id, replaces.to_tag, replaces.from_tag)
        if leg is not None and replaces.early_only and leg.state is ChannelState.UP:
            return None, 486
        if leg is None or leg.state is not ChannelState.UP:
            return None, 481
        return leg, None

    def take_replaced(self, channel: Channel) -> Channel | None:
        """The leg the INVITE of ``channel`` asked to replace (Rule 4), once."""
        return self._replacing.pop(channel.name, None)

    # ====================================================================================
    # Verbs of the call manager
    # ====================================================================================
    def refer_accept(self, channel: Channel) -> None:
        """202 Accepted, then the first NOTIFY (100 Trying, RFC 3515 §2.4.5)."""
        pending = self._refers.get(channel.name)
        if pending is None or pending.answered:
            return
        pending.answered = pending.accepted = True
        self._respond(pending.request, pending.transaction_id, 202)
        self.refer_notify(channel, 100)

    def refer_reject(self, channel: Channel, status: int, reason: str | None = None) -> None:
        """Refuse the pending REFER with a final ``status`` (403, 400, 488...)."""
        pending = self._refers.get(channel.name)
        if pending is None or pending.answered:
            return
        pending.answered = True
        del self._refers[channel.name]
        self._respond(pending.request, pending.transaction_id, status, reason=reason)

    def refer_notify(self, channel: Channel, status: int, reason: str | None = None) -> None:
        """Report the referred call's progress (Rule 5); a final ``status`` ends it."""
        pending = self._refers.get(channel.name)
        if pending is None or not pending.accepted:
            return
        if status >= 200:
            del self._refers[channel.name]
        did = channel.sip.dialog_id if channel.sip is not None else None
        if channel.ended or did is None or did not in self.core.dialogs:
            return
        try:
            txn = self.core.send_in_dialog(
                did, "NOTIFY", self._now(), body=sipfrag(status, reason),
                content_type=SIPFRAG, extra=notify_headers(pending.cseq, status))
        except LocalSipError as exc:
            logger.info("%s: NOTIFY %d not sent: %s", channel.name, status, exc)
            return
        self._aux_txns.add(txn)
        self._flush()

    def refer_forget(self, channel: Channel) -> None:
        """Drop the REFER state of a leg that is going away."""
        self._refers.pop(channel.name, None)
