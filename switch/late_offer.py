"""Late offer: a caller's INVITE without SDP (RFC 3261 §13.2.1, RFC 3264 §5).

Some phones, PBXes and carriers send the INVITE with no body and expect the UAS to make
the offer. The rules here (a mixin of :class:`~switch.drivers.sip.SipChannelDriver`):

* Rule 1 -- the caller leg is anchored (also on a direct-media route, see
  :mod:`switch.direct_media` Rule 2): its media channel is opened at once with PCMU and no
  remote address, and our offer (PCMU, PCMA, telephone-event) is what the 200 carries.
* Rule 2 -- no early media to a late-offer caller: an offer may not go in an unreliable
  provisional response (RFC 3261 §13.2.1 puts it in the first reliable non-failure
  message; we do not do 100rel), so ``progress`` sends a plain 180 instead of 183.
* Rule 3 -- the ACK carries the answer (§13.2.1). It is checked against our offer
  (``process_answer``); the remote address and hold state then apply as for a re-INVITE.
  If the caller picked PCMA, the leg's media channel is reopened with PCMA, bridged
  again to the other leg (the engine fixes a channel's codec at open and transcodes
  between legs) and its new port re-offered to the caller with a re-INVITE. An ACK
  without a usable answer ends the call with BYE (§13.2.1: "the UAS ... MUST terminate
  the session").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from signaling.errors import LocalSipError, SipParseError
from signaling.events import RequestReceived
from signaling.message import Request
from signaling.offer_answer import (
    NegotiatedMedia,
    OfferAnswerError,
    make_offer,
    process_answer,
)
from signaling.sdp import SdpError
from signaling.sdp import parse as parse_sdp
from switch.channel import Channel
from switch.drivers.base import LegEvent, LegHungUp, LegOffered
from switch.media.errors import MediaError
from switch.media.service import MediaService

if TYPE_CHECKING:
    from signaling.core import SipCore
    from switch.drivers.sip_outbound import SipLeg
    from switch.overload import OverloadGuard

logger = logging.getLogger(__name__)

__all__ = ["LateOfferLegs"]

_G711 = ("PCMU", "PCMA")
_TELEPHONE_EVENT_PT = 101
_SDP = "application/sdp"


class LateOfferLegs:
    """Mixin: caller legs whose INVITE had no offer (see the module docstring)."""

    core: SipCore
    media: MediaService
    on_event: Callable[[LegEvent], None]
    _by_server_txn: dict[str, Channel]
    _by_client_txn: dict[str, Channel]
    _now: Callable[[], float]
    _flush: Callable[[], None]
    stats: dict[str, int]
    overload: OverloadGuard

    media_peer: Callable[[Channel], int | None] | None = None
    """Set by the call manager: the media channel a leg is bridged to (Rule 3)."""

    if TYPE_CHECKING:  # provided by SipChannelDriver
        def _new_leg(self) -> SipLeg: ...
        def _name(self, user: str) -> str: ...
        def _sdp_host(self, local: tuple[str, int]) -> str: ...
        def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None: ...
        def _bye(self, ch: Channel) -> None: ...
        def _end_remote(self, ch: Channel, event: LegEvent) -> None: ...
        def _apply_remote(self, ch: Channel, negotiated: NegotiatedMedia) -> None: ...
        def reject(self, channel: Channel, status: int, reason: str = "") -> None: ...

    def _recv_late_invite(self, event: RequestReceived, user: str, trunk: Any = None) -> None:
        """Rule 1: a caller leg whose offer we make; media opens in a task. ``trunk`` (a
        ``switch.trunks.inbound`` match) makes it a trunk call routed by its DID."""
        request = event.request
        self.stats["late_offers"] = self.stats.get("late_offers", 0) + 1
        try:
            dialed = request.uri_parsed.user or ""
            caller_name = request.from_.display or ""
        except SipParseError:
            dialed, caller_name = "", ""
        trunk_name = ""
        if trunk is not None:
            dialed, trunk_name = trunk.called, trunk.trunk.name
        ch = Channel(self._name(user), "caller", user, codec=_G711[0])
        leg = ch.sip = self._new_leg()
        leg.invite = request
        leg.server_txn = event.transaction_id
        leg.local_tag = self.core.ids.tag()
        leg.late_offer = True
        self._by_server_txn[event.transaction_id] = ch
        self.overload.count_in(leg)
        self._spawn(self._open_late(ch, dialed, user, caller_name, trunk_name),
                    f"open-{ch.name}")

    async def _open_late(self, ch: Channel, dialed: str, user: str, caller_name: str,
                         trunk: str = "") -> None:
        leg: SipLeg = ch.sip
        try:
            info = await self.media.open_channel(codec=ch.codec, dtmf_pt=_TELEPHONE_EVENT_PT)
        except MediaError as exc:
            logger.error("%s: no media channel: %s", ch.name, exc)
            self.reject(ch, 503)
            return
        ch.media_id = info.channel_id
        if ch.ended:  # cancelled while the media opened
            await self.media.close_channel(info.channel_id)
            ch.media_id = None
            return
        leg.local_addr = (self._sdp_host(info.local_addr), info.local_addr[1])
        leg.offer = leg.sdp.stamp(make_offer(
            list(_G711), leg.local_addr[0], leg.local_addr[1], session_id=leg.sdp.session_id,
            session_version=leg.sdp.version))
        leg.local_body = bytes(leg.offer)
        self.on_event(LegOffered(ch, user, dialed, caller_name, "trunk" if trunk else "user",
                                 trunk))

    def _late_ack(self, ch: Channel, ack: Request) -> None:
        """Rule 3: the answer in the ACK."""
        leg: SipLeg = ch.sip
        leg.late_offer = None
        ctype = (ack.content_type or "").split(";")[0].strip().lower()
        try:
            if not ack.body or ctype != _SDP or leg.offer is None:
                raise OfferAnswerError("the ACK carries no SDP answer")
            negotiated = process_answer(leg.offer, parse_sdp(ack.body))
        except (SdpError, OfferAnswerError) as exc:
            logger.info("%s: late offer not answered (%s); ending the call", ch.name,
                        exc.detail)
            self._bye(ch)
            self._end_remote(ch, LegHungUp(ch, reason="no-sdp-answer"))
            return
        leg.negotiated = negotiated
        if negotiated.codec == ch.codec or ch.media_id is None:
            self._apply_remote(ch, negotiated)
            return
        self._spawn(self._late_recodec(ch, negotiated), f"recodec-{ch.name}")

    async def _late_recodec(self, ch: Channel, negotiated: NegotiatedMedia) -> None:
        """Rule 3: reopen the caller's channel with the codec it chose and re-bridge."""
        old = ch.media_id
        if old is None:
            return
        remote = (negotiated.remote_address, negotiated.remote_port)
        peer = self.media_peer(ch) if self.media_peer is not None else None
        try:
            info = await self.media.open_channel(
                codec=negotiated.codec, remote=remote, near=old,
                dtmf_pt=negotiated.telephone_event_pt or _TELEPHONE_EVENT_PT)
        except MediaError as exc:
            logger.error("%s: cannot reopen media as %s: %s", ch.name, negotiated.codec, exc)
            self._bye(ch)
            self._end_remote(ch, LegHungUp(ch, reason="media-failure"))
            return
        ch.media_id, ch.codec, ch.remote_media = info.channel_id, negotiated.codec, remote
        await self.media.close_channel(old)
        if ch.ended:
            return
        if peer is not None:
            try:
                await self.media.bridge(info.channel_id, peer)
            except MediaError as exc:
                logger.error("%s: re-bridge failed: %s", ch.name, exc)
        # The caller still sends to the port of our first offer: re-offer the new port with
        # the chosen codec alone (as the outbound codec switch does, sip_outbound Rule 2).
        leg: SipLeg = ch.sip
        leg.local_addr = (self._sdp_host(info.local_addr), info.local_addr[1])
        leg.offer = leg.sdp.stamp(make_offer(
            [negotiated.codec], leg.local_addr[0], leg.local_addr[1],
            session_id=leg.sdp.session_id, session_version=leg.sdp.version))
        leg.local_body = bytes(leg.offer)
        self._apply_remote(ch, negotiated)
        if leg.dialog_id is None:
            return
        try:
            txn = self.core.send_in_dialog(leg.dialog_id, "INVITE", self._now(),
                                           body=leg.local_body, content_type=_SDP)
        except LocalSipError as exc:
            logger.info("%s: re-INVITE not sent: %s", ch.name, exc)
            return
        leg.reinvite_txn = txn
        self._by_client_txn[txn] = ch
        self._flush()
