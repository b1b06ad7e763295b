"""Direct media: the B2BUA passes SDP through and RTP flows phone to phone.

Issue 4 point 2: media is anchored by default (the switch relays RTP through
:mod:`switch.media`, so recording, in-band DTMF and monitoring work), and a dial-plan rule
may say ``media = "direct"`` for an extension target (:mod:`switch.routing_config`). A
direct call opens no media channel at all: it costs only signalling, which is what the
calls-per-second benchmark (``benchmarks.bench_b2bua``) measures.

Rules:

* Rule 1 -- the SDP bodies are relayed, each leg keeping its own ``o=`` line (RFC 3264 §5:
  the origin identifies *our* session on that leg; §8: its version is incremented only
  when the body we send changed, :class:`~signaling.offer_answer.SdpSession`). Everything
  else -- connection addresses, ports, codecs, directions -- is the phones' own, so the
  callee sees the caller's RTP address and vice versa.
* Rule 2 -- the caller's INVITE must carry an offer; a direct-media route with a late-offer
  INVITE (no SDP) is anchored instead (:mod:`switch.late_offer`), because relaying the
  answer would need the ACK of one leg to carry the other's answer.
* Rule 3 -- provisional responses: a callee's 1xx with SDP (early media) is relayed as a
  183 with that SDP; a 180 without SDP becomes a 180 (there is no local ringback: we have
  no media). The 2xx's answer (or the early answer, RFC 3261 §13.2.1) answers the caller.
* Rule 4 -- re-INVITEs with SDP (hold, resume, address change) are relayed to the other
  leg and its final response relayed back (RFC 3261 §14.2; a second one while one is
  pending gets 491). A re-INVITE without SDP gets our last description (as anchored legs
  do). Hold is detected from the offer (sendonly/inactive/``c=0.0.0.0``) for the bus.
* Rule 5 -- what is unavailable on direct calls: recording, in-band and RFC 4733 DTMF
  detection (SIP INFO digits are still answered 200 but not seen), call monitoring, music
  on hold, codec transcoding and RTP statistics / RTP-timeout in CDRs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signaling.dialog import DialogId
from signaling.errors import LocalSipError, SipParseError
from signaling.events import RequestReceived, ResponseReceived
from signaling.location import Binding
from signaling.message import Request, Response
from signaling.offer_answer import SdpSession
from signaling.sdp import SdpError, SessionDescription
from signaling.sdp import parse as parse_sdp
from signaling.uri import SipUri
from switch.channel import Channel, ChannelInput
from switch.drivers.base import LegAnswered, LegEvent, LegHeld, LegOffered, LegRejected, LegRinging

if TYPE_CHECKING:
    from signaling.core import SipCore
    from switch.overload import OverloadGuard

logger = logging.getLogger(__name__)

__all__ = ["DirectLeg", "DirectMediaLegs", "is_hold", "restamp"]

SDP = "application/sdp"
_STATIC = {0: "PCMU", 8: "PCMA", 9: "G722", 18: "G729", 3: "GSM"}


@dataclass(slots=True)
class DirectLeg:
    """The direct-media state of one leg (``SipLeg.direct``)."""

    remote_body: bytes = b""
    """The last SDP this leg's phone sent us (offer or answer)."""
    peer: Channel | None = None
    """The other leg of the call, once connected (re-INVITEs are relayed to it)."""
    relay: tuple[Request, str, Channel] | None = None
    """On the leg we sent a relayed re-INVITE to: (the origin's request, its server
    transaction, the origin leg), answered when our re-INVITE gets its final response."""
    last_sent: bytes | None = None
    """The last body we sent on this leg, with ``o=`` version 0 (``restamp``)."""


def restamp(body: bytes, session: SdpSession, state: DirectLeg) -> bytes:
    """Rule 1: ``body`` with ``session``'s origin (and the right ``o=`` version).

    A byte-level rewrite of the one ``o=`` line (RFC 8866 §5.2: ``o=<username>
    <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``), keeping the
    phone's address fields: no parse and no copy of the description on the call path.
    The version follows :meth:`SdpSession.stamp`: incremented only when the body changed.

    Raises:
        SdpError: the body has no well-formed ``o=`` line.
    """
    start = 0 if body.startswith(b"o=") else body.find(b"\no=") + 1
    if start <= 0 and not body.startswith(b"o="):
        raise SdpError("no o= line")
    end = body.find(b"\n", start)
    end = len(body) if end < 0 else end
    line = body[start:end].rstrip(b"\r")
    fields = line[2:].split(b" ")
    if len(fields) != 6:
        raise SdpError(f"bad o= line {line[:80]!r}")
    tail = b" ".join(fields[3:])
    head = f"o={session.username} {session.session_id} ".encode()
    zero = body[:start] + head + b"0 " + tail + body[start + len(line):]
    if state.last_sent is not None and zero != state.last_sent:
        session.version += 1
    state.last_sent = zero
    return body[:start] + head + str(session.version).encode() + b" " + tail + \
        body[start + len(line):]


def is_hold(sd: SessionDescription) -> bool:
    """An offer that puts us on hold: no audio stream the sender wants to receive
    (sendonly/inactive, or ``c=0.0.0.0``: RFC 3264 §8.4)."""
    audio = [m for m in sd.media if m.media == "audio" and m.port != 0]
    if not audio:
        return False
    for m in audio:
        conn = sd.media_connection(m)
        if sd.media_direction(m) in ("sendrecv", "recvonly") and not (
                conn is not None and conn.is_hold_address):
            return False
    return True


def codec_of(body: bytes) -> str:
    """The first voice codec of the first audio stream of an SDP body, for CDRs and
    events ("" if unknown). A scan of the ``m=audio`` line and its ``a=rtpmap`` lines
    rather than a parse: it runs for every direct call."""
    at = body.find(b"m=audio ")
    while at >= 0:
        end = body.find(b"\n", at)
        fields = body[at:end if end >= 0 else len(body)].split()
        section_end = body.find(b"\nm=", at)
        section = body[at:section_end if section_end >= 0 else len(body)]
        if len(fields) > 3 and fields[1] != b"0":
            for fmt in fields[3:]:
                name = ""
                key = b"a=rtpmap:" + fmt + b" "
                i = section.find(key)
                if i >= 0:
                    name = section[i + len(key):].split(b"/", 1)[0].decode("ascii", "replace")
                elif fmt.isdigit():
                    name = _STATIC.get(int(fmt), "")
                if name and name.lower() not in ("telephone-event", "cn"):
                    return name.upper()
        at = body.find(b"m=audio ", at + 8)
    return ""


class DirectMediaLegs:
    """Mixin of :class:`~switch.drivers.sip.SipChannelDriver`: direct-media legs."""

    core: SipCore
    domain: str
    on_event: Callable[[LegEvent], None]
    _now: Callable[[], float]
    _flush: Callable[[], None]
    _by_server_txn: dict[str, Channel]
    _by_client_txn: dict[str, Channel]
    _by_dialog: dict[DialogId, Channel]
    stats: dict[str, int]
    overload: OverloadGuard

    direct_media_for: Callable[[str, str], bool] | None = None
    """Set by the call manager: (dialed, caller) -> whether the route wants direct media."""

    if TYPE_CHECKING:  # provided by SipChannelDriver
        from switch.drivers.sip_outbound import SipLeg

        def _new_leg(self) -> SipLeg: ...
        def _name(self, user: str) -> str: ...
        def _respond(self, request: Request, txn: str, status: int, *,
                     to_tag: str | None = None, body: bytes = b"",
                     extra: list[tuple[str, str]] | None = None,
                     reason: str | None = None) -> bool: ...
        def _end_remote(self, ch: Channel, event: LegEvent) -> None: ...
        def _bye(self, ch: Channel) -> None: ...
        def progress(self, channel: Channel) -> None: ...
        def ring(self, channel: Channel) -> None: ...
        def _recv_late_invite(self, event: RequestReceived, user: str,
                              trunk: Any = None) -> None: ...
        def _send_invite(self, channel: Channel, uri: SipUri, caller: str,
                         caller_name: str) -> None: ...

    # -- the caller's INVITE -------------------------------------------------------------
    def _direct_or_late(self, event: RequestReceived, user: str, trunk: Any = None) -> bool:
        """Take an authenticated INVITE that is a direct-media call (this module) or a
        late offer (``switch.late_offer``); False leaves it to the anchored path. Calls
        from a trunk (``trunk``: ``switch.trunks.inbound``'s match) are always anchored:
        their route comes from the DID map, not the user dial plan that ``media`` reads."""
        request = event.request
        if trunk is None and self._wants_direct(request, user):
            self._recv_direct_invite(event, user)
            return True
        if not request.body:
            self._recv_late_invite(event, user, trunk)
            return True
        return False

    def _wants_direct(self, request: Request, user: str) -> bool:
        if self.direct_media_for is None or not request.body:
            return False
        try:
            dialed = request.uri_parsed.user or ""
        except SipParseError:
            return False
        return self.direct_media_for(dialed, user)

    def _recv_direct_invite(self, event: RequestReceived, user: str) -> None:
        """Rule 1/2: a caller leg with the caller's offer kept as is; no media opened."""
        request = event.request
        try:
            if (request.content_type or "").split(";")[0].strip().lower() != SDP:
                raise SdpError("the body is not application/sdp")
            parse_sdp(request.body)  # a broken offer gets 488 here, not from the callee
        except SdpError as exc:
            self.stats["rejected_sdp"] += 1
            self._respond(request, event.transaction_id, 488, to_tag=self.core.ids.tag(),
                          extra=[("Warning", f'304 softswitch "{exc.detail}"')])
            return
        try:
            dialed = request.uri_parsed.user or ""
            caller_name = request.from_.display or ""
        except SipParseError:
            dialed, caller_name = "", ""
        ch = Channel(self._name(user), "caller", user, codec=codec_of(request.body))
        ch.direct_media = True
        leg = ch.sip = self._new_leg()
        leg.invite = request
        leg.server_txn = event.transaction_id
        leg.local_tag = self.core.ids.tag()
        leg.direct = DirectLeg(remote_body=request.body)
        self._by_server_txn[event.transaction_id] = ch
        self.overload.count_in(leg)
        self.on_event(LegOffered(ch, user, dialed, caller_name))

    # -- the callee legs -----------------------------------------------------------------
    def originate_direct(self, channel: Channel, target: Any, caller_leg: Channel, *,
                         caller: str, caller_name: str = "") -> None:
        """INVITE ``target`` (a Binding) with the caller's offer (Rule 1); synchronous:
        there is no media to open."""
        binding: Binding = target
        leg = channel.sip
        channel.direct_media = True
        leg.direct = DirectLeg()
        try:
            uri = SipUri.parse(binding.contact)
            leg.local_body = restamp(caller_leg.sip.direct.remote_body, leg.sdp, leg.direct)
        except (SipParseError, SdpError) as exc:
            logger.warning("%s: cannot offer to %r: %s", channel.name, binding.contact, exc)
            self._end_remote(channel, LegRejected(channel, 480))
            return
        channel.codec = caller_leg.codec
        self._send_invite(channel, uri, caller, caller_name)

    @staticmethod
    def _sdp_of(response: Response) -> bytes:
        ctype = (response.content_type or "").split(";")[0].strip().lower()
        return response.body if response.body and ctype == SDP else b""

    def _direct_provisional(self, ch: Channel, response: Response) -> None:
        """Rule 3: remember early SDP; the call manager relays it (``relay_progress``)."""
        body = self._sdp_of(response)
        if body:
            ch.sip.direct.remote_body = body
        early = bool(ch.sip.direct.remote_body)
        ch.fire(ChannelInput.PROGRESS if early else ChannelInput.RING, self._now())
        self.on_event(LegRinging(ch, early))

    def _direct_answered(self, ch: Channel, response: Response) -> None:
        """Rule 3: the 2xx's answer, or the early one (§13.2.1), answers the caller."""
        body = self._sdp_of(response)
        if body:
            ch.sip.direct.remote_body = body
        if not ch.sip.direct.remote_body:
            logger.info("%s: 2xx without an SDP answer", ch.name)
            self._bye(ch)
            self._end_remote(ch, LegRejected(ch, 488))
            return
        ch.codec = codec_of(ch.sip.direct.remote_body) or ch.codec
        ch.fire(ChannelInput.ANSWER, self._now())
        self.on_event(LegAnswered(ch))

    def relay_progress(self, caller_leg: Channel, callee_leg: Channel) -> None:
        """Rule 3: 183 with the callee's early SDP, or 180 when it sent none."""
        body = callee_leg.sip.direct.remote_body
        if not body:
            self.ring(caller_leg)
            return
        try:
            caller_leg.sip.local_body = restamp(body, caller_leg.sip.sdp, caller_leg.sip.direct)
        except SdpError as exc:
            logger.info("%s: early SDP not relayed: %s", callee_leg.name, exc.detail)
            self.ring(caller_leg)
            return
        self.progress(caller_leg)

    def connect_direct(self, caller_leg: Channel, callee_leg: Channel) -> bool:
        """Pair the legs and put the callee's answer in the caller's 200 (Rule 1)."""
        try:
            caller_leg.sip.local_body = restamp(callee_leg.sip.direct.remote_body,
                                                caller_leg.sip.sdp, caller_leg.sip.direct)
        except SdpError as exc:
            logger.info("%s: answer not relayed: %s", callee_leg.name, exc.detail)
            return False
        caller_leg.codec = callee_leg.codec or caller_leg.codec
        caller_leg.sip.direct.peer = callee_leg
        callee_leg.sip.direct.peer = caller_leg
        return True

    # -- re-INVITEs (Rule 4) -------------------------------------------------------------
    def _relay_reinvite(self, ch: Channel, event: RequestReceived) -> None:
        request, txn = event.request, event.transaction_id
        leg = ch.sip
        if not request.body:
            self._respond(request, txn, 200, body=leg.local_body)
            return
        peer = leg.direct.peer
        if peer is None or peer.ended or peer.sip.dialog_id is None:
            self._respond(request, txn, 500, extra=[("Retry-After", "1")])
            return
        if peer.sip.direct.relay is not None or peer.sip.reinvite_txn is not None:
            self._respond(request, txn, 491)  # RFC 3261 §14.2: one at a time
            return
        try:
            offer = parse_sdp(request.body)
            body = restamp(request.body, peer.sip.sdp, peer.sip.direct)
        except SdpError as exc:
            self.stats["rejected_sdp"] += 1
            self._respond(request, txn, 488, extra=[("Warning", f'304 softswitch "{exc.detail}"')])
            return
        try:
            out = self.core.send_in_dialog(peer.sip.dialog_id, "INVITE", self._now(),
                                           body=body, content_type=SDP)
        except LocalSipError as exc:
            logger.info("%s: re-INVITE not relayed: %s", ch.name, exc)
            self._respond(request, txn, 500, extra=[("Retry-After", "1")])
            return
        peer.sip.local_body = body
        peer.sip.reinvite_txn = out
        peer.sip.direct.relay = (request, txn, ch)
        leg.direct.remote_body = request.body
        self._by_client_txn[out] = peer
        self._flush()
        held = is_hold(offer)
        if held != ch.held:
            ch.held = held
            self.on_event(LegHeld(ch, held))

    def _relay_response(self, ch: Channel, event: ResponseReceived) -> None:
        """The final response to a relayed re-INVITE goes back to its origin."""
        response = event.response
        if response.status < 200:
            return
        leg = ch.sip
        self._by_client_txn.pop(event.transaction_id, None)
        leg.reinvite_txn = None
        relay, leg.direct.relay = leg.direct.relay, None
        if relay is None:
            return
        request, txn, origin = relay
        if response.status >= 300:
            self._respond(request, txn, response.status, reason=response.reason)
            return
        body = self._sdp_of(response)
        if body:
            leg.direct.remote_body = body
            try:
                origin.sip.local_body = restamp(body, origin.sip.sdp, origin.sip.direct)
            except SdpError as exc:
                logger.info("%s: bad SDP in relayed answer: %s", ch.name, exc.detail)
        self._respond(request, txn, 200, body=origin.sip.local_body)

