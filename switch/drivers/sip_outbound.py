"""Outbound SIP legs: the half of the SIP channel driver that places calls (internal).

Split from :mod:`switch.drivers.sip` (which documents the rules) to keep modules small:
:class:`OutboundLegs` is a mixin of :class:`~switch.drivers.sip.SipChannelDriver` holding
extension lookup, the INVITE we send (RFC 3261 §13.2), the responses to it (§13.2.2:
provisional, early media, 2xx, failures) and the codec switch of Rule 2 (RFC 3264 §8:
a new offer in the confirmed dialog). It also holds :class:`SipLeg`, the SIP state of a
channel, shared by both halves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signaling.core import SipCore
from signaling.dialog import DialogId
from signaling.errors import LocalSipError, SipParseError
from signaling.events import ResponseReceived
from signaling.location import Binding
from signaling.message import Request, Response
from signaling.offer_answer import (
    NegotiatedMedia,
    OfferAnswerError,
    SdpSession,
    make_offer,
    process_answer,
)
from signaling.registrar import Registrar
from signaling.sdp import SdpError, SessionDescription
from signaling.sdp import parse as parse_sdp
from signaling.transport import uri_address
from signaling.uri import SipUri
from switch.channel import Channel, ChannelInput, ChannelState
from switch.direct_media import DirectMediaLegs
from switch.drivers.base import LegAnswered, LegEvent, LegRejected, LegRinging
from switch.late_offer import LateOfferLegs
from switch.media.errors import MediaError
from switch.media.service import MediaService

logger = logging.getLogger(__name__)

__all__ = ["G711", "SDP", "TELEPHONE_EVENT_PT", "OutboundLegs", "SipLeg"]

SDP = "application/sdp"
G711 = ("PCMU", "PCMA")
TELEPHONE_EVENT_PT = 101
"""The telephone-event payload type of our offers (``offer_answer.TELEPHONE_EVENT``)."""


@dataclass(slots=True)
class SipLeg:
    """The SIP side of one channel (only the SIP driver reads or writes it)."""

    sdp: SdpSession
    invite: Request | None = None
    server_txn: str | None = None
    client_txn: str | None = None
    local_tag: str = ""
    dialog_id: DialogId | None = None
    offer: SessionDescription | None = None
    local_body: bytes = b""
    negotiated: NegotiatedMedia | None = None
    final_sent: bool = False
    cancel_requested: bool = False
    direct: Any = None
    """``switch.direct_media.DirectLeg`` on direct-media legs."""
    late_offer: Any = None
    """``switch.late_offer``: our offer in the 2xx, until the ACK brings the answer."""
    overload_counted: bool = False
    """``switch.overload``: counted as an inbound call in setup."""
    reinvite_txn: str | None = None
    local_addr: tuple[str, int] = ("127.0.0.1", 0)
    on_challenge: Callable[[Channel, Response], bool] | None = None
    """Answers a 401/407 to our INVITE by sending it again (trunk legs,
    ``switch.trunks.outbound``); True = resent, the challenge is not a failure."""


class OutboundLegs(DirectMediaLegs, LateOfferLegs):
    """Mixin: outbound legs of :class:`~switch.drivers.sip.SipChannelDriver` (with the
    direct-media and late-offer legs of :mod:`switch.direct_media`, :mod:`switch.late_offer`)."""

    core: SipCore
    media: MediaService
    registrar: Registrar
    domain: str
    wall: Callable[[], float]
    on_event: Callable[[LegEvent], None]
    _flush: Callable[[], None]
    _now: Callable[[], float]
    _by_client_txn: dict[str, Channel]
    _ended_txns: dict[str, Channel]
    _by_dialog: dict[DialogId, Channel]

    if TYPE_CHECKING:  # provided by SipChannelDriver
        def _new_leg(self) -> SipLeg: ...
        def _name(self, user: str) -> str: ...
        def _sdp_host(self, local: tuple[str, int]) -> str: ...
        def _end_remote(self, ch: Channel, event: LegEvent) -> None: ...
        def _apply_remote(self, ch: Channel, negotiated: NegotiatedMedia) -> None: ...
        def _bye(self, ch: Channel) -> None: ...
        def _bye_dialog(self, did: DialogId) -> None: ...
        def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None: ...
        def _direct_provisional(self, ch: Channel, response: Response) -> None: ...
        def _direct_answered(self, ch: Channel, response: Response) -> None: ...
        def _relay_response(self, ch: Channel, event: ResponseReceived) -> None: ...

    # ====================================================================================
    # Outbound legs
    # ====================================================================================
    def lookup(self, number: str) -> list[Binding]:
        """The live contacts of extension ``number``: its AOR in each of our domains
        (``SipUri.canonical_aor`` form, with and without our port), highest q first."""
        wall = self.wall()
        port = self.core.config.port
        seen: set[str] = set()
        out: list[Binding] = []
        for domain in sorted(self.registrar.domains or {self.domain}):
            for aor in (f"sip:{number}@{domain}", f"sip:{number}@{domain}:{port}"):
                for binding in self.registrar.lookup(aor, wall):
                    if binding.contact not in seen:
                        seen.add(binding.contact)
                        out.append(binding)
        return out

    def new_outbound(self, peer: str) -> Channel:
        ch = Channel(self._name(peer), "callee", peer)
        ch.sip = self._new_leg()
        return ch

    async def originate(self, channel: Channel, target: Any, *, caller: str,
                        caller_name: str = "", codec: str = "PCMU",
                        near: int | None = None) -> None:
        """Rule 2: open media, offer ``codec`` first, INVITE ``target`` (a Binding)."""
        binding: Binding = target
        leg: SipLeg = channel.sip
        try:
            info = await self.media.open_channel(codec=codec, near=near,
                                                 dtmf_pt=TELEPHONE_EVENT_PT)
        except MediaError as exc:
            logger.error("%s: no media channel: %s", channel.name, exc)
            self._end_remote(channel, LegRejected(channel, 503))
            return
        channel.media_id = info.channel_id
        channel.codec = codec
        if channel.ended:
            return  # cancelled while the media opened; release() closes it
        leg.local_addr = (self._sdp_host(info.local_addr), info.local_addr[1])
        codecs = [codec, *[c for c in G711 if c != codec]]
        leg.offer = leg.sdp.stamp(make_offer(
            codecs, leg.local_addr[0], leg.local_addr[1], session_id=leg.sdp.session_id,
            session_version=leg.sdp.version))
        leg.local_body = bytes(leg.offer)
        try:
            uri = SipUri.parse(binding.contact)
        except SipParseError as exc:
            logger.warning("%s: bad contact %r: %s", channel.name, binding.contact, exc)
            self._end_remote(channel, LegRejected(channel, 480))
            return
        self._send_invite(channel, uri, caller, caller_name)

    def _send_invite(self, channel: Channel, uri: SipUri, caller: str,
                     caller_name: str) -> None:
        """INVITE ``uri`` with the leg's offer (``leg.local_body``), From the caller as a
        user of our domain; a CANCEL asked for meanwhile goes out at once (§9.1)."""
        leg: SipLeg = channel.sip
        display = (caller_name or caller).replace('"', "")
        request = self.core.create_request(
            "INVITE", str(uri), from_=f'"{display}" <sip:{caller}@{self.domain}>',
            to=f"<sip:{channel.peer}@{self.domain}>", body=leg.local_body, content_type=SDP,
            contact=self.core.contact(caller))
        leg.invite = request
        txn = self.core.send_request(request, uri_address(uri), self._now())
        leg.client_txn = txn
        self._by_client_txn[txn] = channel
        self._flush()
        if leg.cancel_requested:
            self.core.cancel(txn, self._now())
            self._flush()

    def _on_response(self, event: ResponseReceived) -> bool:
        txn = event.transaction_id
        if txn in self._aux_txns:
            if event.response.status >= 200:
                self._aux_txns.discard(txn)
            return True
        ch = self._by_client_txn.get(txn) or self._ended_txns.get(txn)
        if ch is None:
            return False
        leg: SipLeg = ch.sip
        if txn == leg.reinvite_txn and leg.direct is not None:
            self._relay_response(ch, event)  # switch.direct_media Rule 4
            return True
        if txn == leg.reinvite_txn:
            self._reinvite_response(ch, event)
            return True
        status = event.response.status
        if (status in (401, 407) and leg.on_challenge is not None and not ch.ended
                and leg.on_challenge(ch, event.response)):
            self._by_client_txn.pop(txn, None)
            return True
        if status >= 300:
            self._by_client_txn.pop(txn, None)  # 2xx: kept, more forks may answer (§13.2.2.4)
        if event.dialog_id is not None and status < 300 and status > 100:
            self._by_dialog.setdefault(event.dialog_id, ch)
        if status < 200:
            if status > 100:
                self._provisional(ch, event.response)
        elif status < 300:
            self._answered(ch, event)
        elif not ch.ended:
            self._end_remote(ch, LegRejected(ch, status))
        return True

    def _remote_sdp(self, ch: Channel, response: Response) -> NegotiatedMedia | None:
        leg: SipLeg = ch.sip
        ctype = (response.content_type or "").split(";")[0].strip().lower()
        if not response.body or ctype != SDP or leg.offer is None:
            return None
        return process_answer(leg.offer, parse_sdp(response.body))

    def _provisional(self, ch: Channel, response: Response) -> None:
        if ch.ended or ch.state is ChannelState.UP:
            return  # a late 180 (after the 200) changes nothing
        leg: SipLeg = ch.sip
        if leg.direct is not None:
            self._direct_provisional(ch, response)
            return
        try:
            negotiated = self._remote_sdp(ch, response) if leg.negotiated is None else None
        except (SdpError, OfferAnswerError) as exc:
            logger.info("%s: ignoring bad early SDP: %s", ch.name, exc.detail)
            negotiated = None
        if negotiated is not None and negotiated.codec == ch.codec:
            leg.negotiated = negotiated
            self._apply_remote(ch, negotiated)
        early = leg.negotiated is not None
        ch.fire(ChannelInput.PROGRESS if early else ChannelInput.RING, self._now())
        self.on_event(LegRinging(ch, early))

    def _answered(self, ch: Channel, event: ResponseReceived) -> None:
        leg: SipLeg = ch.sip
        did = event.dialog_id
        if ch.ended or ch.state is ChannelState.UP:
            # A 2xx after CANCEL, or a second fork's 2xx: ACKed by the core, now BYE.
            if did is not None and did != leg.dialog_id:
                self._bye_dialog(did)
            return
        leg.dialog_id = did
        if leg.direct is not None and did is not None:
            self._direct_answered(ch, event.response)
            return
        try:
            negotiated = self._remote_sdp(ch, event.response) or leg.negotiated
        except (SdpError, OfferAnswerError) as exc:
            logger.info("%s: bad SDP answer: %s", ch.name, exc.detail)
            negotiated = None
        if negotiated is None or did is None:
            self._bye(ch)
            self._end_remote(ch, LegRejected(ch, 488))
            return
        leg.negotiated = negotiated
        ch.fire(ChannelInput.ANSWER, self._now())
        if negotiated.codec != ch.codec:
            self._spawn(self._switch_codec(ch, negotiated), f"recodec-{ch.name}")
            return
        self._apply_remote(ch, negotiated)
        self.on_event(LegAnswered(ch))

    async def _switch_codec(self, ch: Channel, negotiated: NegotiatedMedia) -> None:
        """Rule 2: the callee chose the other law; reopen media and re-offer it alone."""
        leg: SipLeg = ch.sip
        old = ch.media_id
        remote = (negotiated.remote_address, negotiated.remote_port)
        try:
            info = await self.media.open_channel(codec=negotiated.codec, remote=remote,
                                                 near=old, dtmf_pt=TELEPHONE_EVENT_PT)
        except MediaError as exc:
            logger.error("%s: cannot reopen media as %s: %s", ch.name, negotiated.codec, exc)
            self._bye(ch)
            self._end_remote(ch, LegRejected(ch, 488))
            return
        ch.media_id, ch.codec, ch.remote_media = info.channel_id, negotiated.codec, remote
        if old is not None:
            await self.media.close_channel(old)
        if ch.ended:
            return
        leg.local_addr = (self._sdp_host(info.local_addr), info.local_addr[1])
        leg.offer = leg.sdp.stamp(make_offer(
            [negotiated.codec], leg.local_addr[0], leg.local_addr[1],
            session_id=leg.sdp.session_id, session_version=leg.sdp.version))
        leg.local_body = bytes(leg.offer)
        if leg.dialog_id is not None:
            try:
                txn = self.core.send_in_dialog(leg.dialog_id, "INVITE", self._now(),
                                               body=leg.local_body, content_type=SDP)
            except LocalSipError as exc:
                logger.info("%s: re-INVITE not sent: %s", ch.name, exc)
            else:
                leg.reinvite_txn = txn
                self._by_client_txn[txn] = ch
                self._flush()
        self.on_event(LegAnswered(ch))

    def _reinvite_response(self, ch: Channel, event: ResponseReceived) -> None:
        if event.response.status < 200:
            return
        leg: SipLeg = ch.sip
        self._by_client_txn.pop(event.transaction_id, None)
        leg.reinvite_txn = None
        if event.response.status >= 300:
            logger.info("%s: our re-INVITE got %d", ch.name, event.response.status)
            return
        try:
            negotiated = self._remote_sdp(ch, event.response)
        except (SdpError, OfferAnswerError) as exc:
            logger.info("%s: bad SDP in re-INVITE answer: %s", ch.name, exc.detail)
            return
        if negotiated is not None:
            leg.negotiated = negotiated
            self._apply_remote(ch, negotiated)

