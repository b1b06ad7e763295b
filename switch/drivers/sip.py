"""The SIP channel driver: SIP dialogs <-> :class:`~switch.channel.Channel` legs.

STYLE.md §4.2: the only module of ``switch`` that speaks SIP. It turns the sans-IO core's
events into leg events (:mod:`switch.drivers.base`) for the call manager, and executes the
manager's verbs as SIP messages, with the leg's media channel opened through
:class:`~switch.media.service.MediaService` (media is always anchored here).

Rules:

* Rule 1 -- inbound INVITEs are authenticated first (RFC 3261 §22.3: a proxy-like element
  challenges with 407 + Proxy-Authenticate), with the node's one
  :class:`~signaling.auth.DigestAuthenticator`, so REGISTER and INVITE share nonces and
  the brute-force lockout (403 + Retry-After while locked).
* Rule 2 -- offer/answer (RFC 3264): the caller's offer is answered with one codec
  (``offer_answer`` Rule 2), and the media channel is opened with that codec and the
  caller's telephone-event payload type. Outbound legs offer the caller's codec first and
  the other G.711 law second; when the callee picks the other one, the leg's media channel
  is reopened with it and a re-INVITE offers the new port with that codec only (the media
  engine fixes a channel's codec at open; it transcodes between the two legs).
* Rule 3 -- re-INVITE (RFC 3261 §14.2, RFC 3264 §8.4): a hold offer (sendonly, inactive,
  ``c=0.0.0.0``) is answered with the mirrored direction and our sending is paused; an
  offer we cannot accept gets 488 and the session goes on unchanged. A re-INVITE without
  SDP gets our current description as the offer in the 200.
* Rule 4 -- DTMF in SIP INFO (``application/dtmf-relay``, ``application/dtmf``) goes to
  ``MediaService.info_digit``, so INFO, RFC 4733 and in-band digits meet in one arbiter.
* Rule 5 -- every verb is idempotent on an ended leg; late responses for ended legs are
  cleaned up here (a 2xx to a cancelled INVITE gets ACK + BYE, RFC 3261 §15).

The outbound half (lookup, originate, responses to our INVITEs, the codec switch) lives in
:mod:`switch.drivers.sip_outbound` as a mixin; together they are the one SIP driver.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from signaling.auth import DigestAuthenticator
from signaling.core import SipCore
from signaling.dialog import DialogId
from signaling.errors import LocalSipError, SipParseError
from signaling.events import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    DialogTerminated,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from signaling.location import UserCredentials
from signaling.message import Request, make_response
from signaling.offer_answer import (
    NegotiatedMedia,
    OfferAnswerError,
    SdpSession,
    make_answer,
)
from signaling.registrar import Registrar
from signaling.sdp import SdpError, SessionDescription
from signaling.sdp import parse as parse_sdp
from switch.channel import Channel, ChannelInput, ChannelState
from switch.drivers.base import (
    LegEvent,
    LegHeld,
    LegHungUp,
    LegOffered,
    LegRejected,
)
from switch.media.dtmf_info import DtmfInfoError, parse_info_dtmf
from switch.media.errors import MediaError
from switch.media.service import MediaService
from switch.overload import OverloadGuard

from .sip_outbound import G711, SDP, TELEPHONE_EVENT_PT, OutboundLegs, SipLeg
from .sip_refer import PendingRefer, ReferLegs

logger = logging.getLogger(__name__)

__all__ = ["SipChannelDriver", "SipLeg"]

class SipChannelDriver(OutboundLegs, ReferLegs):
    """Maps SIP to channels (see the module docstring for the rules).

    ``trunk_inbound`` (``switch.trunks.inbound.TrunkInbound``, set by the app) recognises
    INVITEs from trunks by source address; those skip Rule 1 (carriers are not challenged).

    Args:
        core: the node's SIP core.
        flush: sends what the core produced (``SipDriver.flush``).
        now: the core's monotonic clock (``SipDriver.now``).
        media: the media service legs open their channels on.
        on_event: receives every :data:`~switch.drivers.base.LegEvent` (the call manager).
        auth: the node's digest authenticator (shared with REGISTER: same lockout).
        lookup_user: username -> credentials (``RegistrationService.lookup_user``).
        registrar: the location service extensions are looked up in.
        domain: our SIP domain (From/To of the legs we originate).
        media_host: the address put in our SDP when media binds to a wildcard.
        wall: wall clock for digest nonces and registrar lookups.
    """

    def __init__(self, core: SipCore, flush: Callable[[], None], now: Callable[[], float],
                 media: MediaService, on_event: Callable[[LegEvent], None], *,
                 auth: DigestAuthenticator, lookup_user: Callable[[str], UserCredentials | None],
                 registrar: Registrar, domain: str, media_host: str | None = None,
                 wall: Callable[[], float]) -> None:
        self.trunk_inbound: Any = None
        self.core = core
        self._flush = flush
        self._now = now
        self.media = media
        self.on_event = on_event
        self.auth = auth
        self.lookup_user = lookup_user
        self.registrar = registrar
        self.domain = domain
        self.media_host = media_host
        self.wall = wall
        self._by_server_txn: dict[str, Channel] = {}
        self._by_client_txn: dict[str, Channel] = {}
        self._by_dialog: dict[DialogId, Channel] = {}
        self._aux_txns: set[str] = set()
        self._ended_txns: dict[str, Channel] = {}
        self._refers: dict[str, PendingRefer] = {}
        self._replacing: dict[str, Channel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._names = itertools.count(1)
        self._sessions = itertools.count(int(wall()) & 0xFFFFFFF)
        self.stats = {"invites": 0, "challenged": 0, "rejected_sdp": 0, "reinvites": 0,
                      "info_digits": 0}
        self.overload = OverloadGuard()
        """Admission control of new calls (``switch.overload``); no bounds by default."""

    # ====================================================================================
    # Plumbing
    # ====================================================================================
    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("SIP driver task %s failed", task.get_name(), exc_info=exc)

    async def drain(self) -> None:
        """Wait for the driver's pending media tasks (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _new_leg(self) -> SipLeg:
        return SipLeg(SdpSession(str(next(self._sessions)), 1))

    def _name(self, user: str) -> str:
        return f"sip/{user or 'anonymous'}-{next(self._names):06d}"

    def _sdp_host(self, local: tuple[str, int]) -> str:
        host = local[0]
        if host in ("0.0.0.0", "::", "") and self.media_host:
            return self.media_host
        return host

    def _respond(self, request: Request, txn: str, status: int, *, to_tag: str | None = None,
                 body: bytes = b"", extra: list[tuple[str, str]] | None = None,
                 reason: str | None = None) -> bool:
        headers = list(extra or [])
        if body:
            headers.append(("Content-Type", SDP))
        response = make_response(request, status, reason, to_tag=to_tag, body=body,
                                 extra=headers)
        try:
            self.core.send_response(response, txn, self._now())
        except LocalSipError as exc:  # the transaction ended (CANCEL raced us)
            logger.info("could not send %d: %s", status, exc)
            return False
        self._flush()
        return True

    # ====================================================================================
    # Core events in
    # ====================================================================================
    def handle(self, event: object) -> bool:
        """Take a core event if it belongs to a call; False leaves it to the node."""
        if isinstance(event, RequestReceived):
            return self._on_request(event)
        if isinstance(event, ResponseReceived):
            return self._on_response(event)
        if isinstance(event, CancelReceived):
            ch = self._by_server_txn.get(event.transaction_id)
            if ch is None:
                return False
            ch.sip.final_sent = True  # the core answered 487 already (§9.2)
            self.overload.finish(ch.sip)
            self._end_remote(ch, LegHungUp(ch, cancelled=True, reason="cancel"))
            return True
        if isinstance(event, (TransactionTimedOut, TransportError)):
            return self._on_failure(event)
        if isinstance(event, AckReceived):
            ch = self._by_dialog.get(event.dialog_id)
            if ch is not None and ch.sip.late_offer is not None:
                self._late_ack(ch, event.request)  # switch.late_offer
            return ch is not None
        if isinstance(event, AckTimedOut):
            ch = self._by_dialog.get(event.dialog_id)
            if ch is None:
                return False
            logger.warning("%s: no ACK for our 2xx; ending the call", ch.name)
            self._bye(ch)
            self._end_remote(ch, LegHungUp(ch, reason="ack-timeout"))
            return True
        if isinstance(event, DialogTerminated):
            ch = self._by_dialog.pop(event.dialog_id, None)
            if ch is None:
                return False
            if not ch.ended and ch.state is ChannelState.UP:
                self._end_remote(ch, LegHungUp(ch, reason=event.reason))
            return True
        return False

    def _end_remote(self, ch: Channel, event: LegEvent) -> None:
        if ch.ended:
            return
        ch.fire(ChannelInput.HANGUP, self._now())
        self.on_event(event)

    def _on_request(self, event: RequestReceived) -> bool:
        method = event.request.method
        if event.dialog_id is None:
            if method == "INVITE":
                self._recv_invite(event)
                return True
            return False
        ch = self._by_dialog.get(event.dialog_id)
        if ch is None:
            return False
        if method == "BYE":
            self._respond(event.request, event.transaction_id, 200)
            self._end_remote(ch, LegHungUp(ch, reason="bye"))
        elif method == "INVITE":
            self._recv_reinvite(ch, event)
        elif method == "INFO":
            self._recv_info(ch, event)
        elif method == "REFER":
            self._recv_refer(ch, event)
        else:
            self._respond(event.request, event.transaction_id, 501)
        return True

    def _on_failure(self, event: TransactionTimedOut | TransportError) -> bool:
        txn = event.transaction_id
        if txn in self._aux_txns:
            self._aux_txns.discard(txn)
            return True
        ch = self._by_client_txn.pop(txn, None)
        if ch is None:
            return txn in self._by_server_txn
        if not ch.ended and ch.state is not ChannelState.UP:
            status = 408 if isinstance(event, TransactionTimedOut) else 503
            self._end_remote(ch, LegRejected(ch, status))
        return True

    # ====================================================================================
    # Inbound calls
    # ====================================================================================
    def _authenticate(self, event: RequestReceived) -> str | None:
        """Rule 1: the digest user, or None after answering 407/403."""
        request = event.request
        wall = self.wall()
        source_ip = event.source.host
        authz = request.headers.get("Proxy-Authorization")
        result = None
        if authz is not None:
            result = self.auth.verify("INVITE", authz, self.lookup_user, wall, source_ip,
                                      request.body, request_uri=request.uri)
            if result.ok and result.username:
                return result.username
            if not result.stale:
                logger.info("INVITE from %s for %s refused: %s", event.source,
                            result.username, result.reason)
        status, headers = self.auth.rejection(result, wall, source_ip, proxy=True)
        self.stats["challenged"] += 1
        self._respond(request, event.transaction_id, status, to_tag=self.core.ids.tag(),
                      extra=headers)
        return None

    def _recv_invite(self, event: RequestReceived) -> None:
        request = event.request
        if self.overload.shed():  # switch.overload Rule 3: before auth, routing, media
            self._respond(request, event.transaction_id, 503, to_tag=self.core.ids.tag(),
                          extra=self.overload.headers())
            return
        self.stats["invites"] += 1
        trunk = (self.trunk_inbound.identify(request, event.source)
                 if self.trunk_inbound is not None else None)
        user = trunk.number if trunk is not None else self._authenticate(event)
        if user is None:
            return
        replaced, refused = self._invite_replaces(request)  # RFC 3891 (sip_refer Rule 4)
        if refused is not None:
            self._respond(request, event.transaction_id, refused, to_tag=self.core.ids.tag())
            return
        try:
            if replaced is None and self._direct_or_late(event, user, trunk):
                return  # switch.direct_media, switch.late_offer
            if not request.body or (request.content_type or "").split(";")[0].strip() != SDP:
                raise OfferAnswerError("an INVITE without an SDP offer is not supported")
            offer = parse_sdp(request.body)
            _, negotiated = make_answer(offer, G711, "0.0.0.0", 9, session_id="0",
                                        session_version=0)
        except (SdpError, OfferAnswerError) as exc:
            self.stats["rejected_sdp"] += 1
            self._respond(request, event.transaction_id, 488, to_tag=self.core.ids.tag(),
                          extra=[("Warning", f'304 softswitch "{exc.detail}"')])
            return
        try:
            dialed = request.uri_parsed.user or ""
            caller_name = request.from_.display or ""
        except SipParseError:
            dialed, caller_name = "", ""
        if trunk is not None:
            dialed = trunk.called
        ch = Channel(self._name(user), "caller", user, codec=negotiated.codec)
        leg = ch.sip = self._new_leg()
        leg.invite = request
        leg.server_txn = event.transaction_id
        leg.local_tag = self.core.ids.tag()
        self.overload.count_in(leg)
        leg.negotiated = negotiated
        self._by_server_txn[event.transaction_id] = ch
        if replaced is not None:
            self._replacing[ch.name] = replaced
        self._spawn(self._open_inbound(ch, offer, negotiated, dialed, user, caller_name,
                                       trunk.trunk.name if trunk is not None else ""),
                    f"open-{ch.name}")

    async def _open_inbound(self, ch: Channel, offer: SessionDescription,
                            negotiated: NegotiatedMedia, dialed: str, user: str,
                            caller_name: str, trunk: str = "") -> None:
        leg: SipLeg = ch.sip
        remote = (negotiated.remote_address, negotiated.remote_port)
        try:
            info = await self.media.open_channel(
                codec=negotiated.codec, remote=remote,
                dtmf_pt=negotiated.telephone_event_pt or TELEPHONE_EVENT_PT)
        except MediaError as exc:
            logger.error("%s: no media channel: %s", ch.name, exc)
            self.reject(ch, 503)
            return
        ch.media_id = info.channel_id
        ch.remote_media = remote
        if ch.ended:  # cancelled while the media opened
            await self.media.close_channel(info.channel_id)
            ch.media_id = None
            return
        leg.local_addr = (self._sdp_host(info.local_addr), info.local_addr[1])
        answer, leg.negotiated = make_answer(
            offer, [negotiated.codec], leg.local_addr[0], leg.local_addr[1],
            session_id=leg.sdp.session_id, session_version=leg.sdp.version)
        leg.local_body = bytes(leg.sdp.stamp(answer))
        self.on_event(LegOffered(ch, user, dialed, caller_name, "trunk" if trunk else "user",
                                 trunk))

    def _provisional_or_final(self, ch: Channel, status: int, body: bytes = b"",
                              reason: str | None = None) -> bool:
        leg: SipLeg = ch.sip
        if leg.final_sent or leg.invite is None or leg.server_txn is None:
            return False
        if status >= 200:
            leg.final_sent = True
            self.overload.finish(leg)
        ok = self._respond(leg.invite, leg.server_txn, status, to_tag=leg.local_tag,
                           body=body, reason=reason)
        if ok and status > 100 and status < 300 and leg.dialog_id is None:
            leg.dialog_id = DialogId(leg.invite.call_id, leg.local_tag,
                                     leg.invite.from_tag or "")
            self._by_dialog[leg.dialog_id] = ch
        return ok

    def ring(self, channel: Channel) -> None:
        if channel.can(ChannelInput.RING) and self._provisional_or_final(channel, 180):
            channel.fire(ChannelInput.RING, self._now())

    def progress(self, channel: Channel) -> None:
        if channel.sip.late_offer is not None:  # switch.late_offer Rule 2
            self.ring(channel)
            return
        body = channel.sip.local_body
        if channel.can(ChannelInput.PROGRESS) and self._provisional_or_final(channel, 183,
                                                                             body):
            channel.fire(ChannelInput.PROGRESS, self._now())

    def answer(self, channel: Channel) -> None:
        body = channel.sip.local_body
        if channel.can(ChannelInput.ANSWER) and self._provisional_or_final(channel, 200,
                                                                           body):
            channel.fire(ChannelInput.ANSWER, self._now())

    def reject(self, channel: Channel, status: int, reason: str = "") -> None:
        if channel.ended or channel.state is ChannelState.UP:
            return
        self._provisional_or_final(channel, status, reason=reason or None)
        channel.fire(ChannelInput.HANGUP, self._now())

    # -- in-dialog requests --------------------------------------------------------------
    def _recv_reinvite(self, ch: Channel, event: RequestReceived) -> None:
        """Rule 3 (RFC 3261 §14.2, RFC 3264 §8.4)."""
        request = event.request
        leg: SipLeg = ch.sip
        self.stats["reinvites"] += 1
        if leg.direct is not None:
            self._relay_reinvite(ch, event)  # switch.direct_media Rule 4
            return
        if not request.body:
            self._respond(request, event.transaction_id, 200, body=leg.local_body)
            return
        try:
            offer = parse_sdp(request.body)
            answer, negotiated = make_answer(
                offer, [ch.codec or "PCMU"], leg.local_addr[0], leg.local_addr[1],
                session_id=leg.sdp.session_id, session_version=leg.sdp.version)
        except (SdpError, OfferAnswerError) as exc:
            self.stats["rejected_sdp"] += 1
            logger.info("%s: re-INVITE refused, call kept: %s", ch.name, exc.detail)
            self._respond(request, event.transaction_id, 488,
                          extra=[("Warning", f'304 softswitch "{exc.detail}"')])
            return
        leg.local_body = bytes(leg.sdp.stamp(answer))
        leg.negotiated = negotiated
        self._respond(request, event.transaction_id, 200, body=leg.local_body)
        self._apply_remote(ch, negotiated)

    def _apply_remote(self, ch: Channel, negotiated: NegotiatedMedia) -> None:
        """New remote address and hold state of a leg (media updated in a task)."""
        remote = (negotiated.remote_address, negotiated.remote_port)
        held = negotiated.remote_hold
        ch.remote_media = remote
        if ch.media_id is not None:
            self._spawn(self._set_remote(ch.media_id, remote, not held), f"remote-{ch.name}")
        if held != ch.held:
            ch.held = held
            self.on_event(LegHeld(ch, held))

    async def _set_remote(self, cid: int, remote: tuple[str, int], sending: bool) -> None:
        try:
            await self.media.set_remote(cid, remote, sending=sending)
        except MediaError as exc:  # the channel closed meanwhile
            logger.debug("set_remote on %d: %s", cid, exc)

    def _recv_info(self, ch: Channel, event: RequestReceived) -> None:
        """Rule 4: DTMF INFO to the media arbiter; empty INFO is a keep-alive (200)."""
        request = event.request
        if not request.body:
            self._respond(request, event.transaction_id, 200)
            return
        try:
            digit = parse_info_dtmf(request.content_type or "", request.body)
        except DtmfInfoError as exc:
            self._respond(request, event.transaction_id, 400, reason=f"Bad DTMF ({exc})")
            return
        if digit is None:
            self._respond(request, event.transaction_id, 415,
                          extra=[("Accept", "application/dtmf-relay, application/dtmf")])
            return
        self._respond(request, event.transaction_id, 200)
        if ch.media_id is not None:
            self.stats["info_digits"] += 1
            self._spawn(self.media.info_digit(ch.media_id, digit.digit,
                                              digit.duration_ms or 100), f"info-{ch.name}")

    # ====================================================================================
    # Ending legs
    # ====================================================================================
    def _bye_dialog(self, did: DialogId) -> None:
        try:
            txn = self.core.send_in_dialog(did, "BYE", self._now())
        except LocalSipError as exc:
            logger.debug("no BYE for %s: %s", did, exc)
            return
        self._aux_txns.add(txn)
        self._flush()

    def _bye(self, ch: Channel) -> None:
        did = ch.sip.dialog_id
        if did is not None and did in self.core.dialogs:
            self._bye_dialog(did)

    def cancel(self, channel: Channel) -> None:
        if channel.ended:
            return
        leg: SipLeg = channel.sip
        channel.fire(ChannelInput.HANGUP, self._now())
        if leg.client_txn is None:
            leg.cancel_requested = True
            return
        if self.core.cancel(leg.client_txn, self._now()) is not None:
            self._flush()

    def hangup(self, channel: Channel) -> None:
        if channel.ended:
            return
        if channel.state is ChannelState.UP:
            channel.fire(ChannelInput.HANGUP, self._now())
            self._bye(channel)
        elif channel.role == "callee":
            self.cancel(channel)
        else:
            self.reject(channel, 480)

    async def release(self, channel: Channel) -> dict[str, Any] | None:
        """Close the leg's media and forget it; returns the last RTP statistics."""
        leg: SipLeg = channel.sip
        self.overload.finish(leg)
        if leg.server_txn is not None and self._by_server_txn.get(leg.server_txn) is channel:
            del self._by_server_txn[leg.server_txn]
        if leg.dialog_id is not None and self._by_dialog.get(leg.dialog_id) is channel:
            del self._by_dialog[leg.dialog_id]
        txn = leg.client_txn
        if txn is not None and self._by_client_txn.get(txn) is channel:
            # A 2xx may still come (a CANCEL crossed it, or another fork of a forking
            # proxy): keep the leg findable for 64*T1 so that it gets its BYE (§15).
            del self._by_client_txn[txn]
            self._ended_txns[txn] = channel
            asyncio.get_running_loop().call_later(
                64 * self.core.config.timers.t1, self._ended_txns.pop, txn, None)
        cid = channel.media_id
        if cid is None:
            return None
        channel.media_id = None
        stats: dict[str, Any] | None = None
        try:
            stats = await self.media.stats(cid)
        except MediaError as exc:
            logger.debug("no stats for %d: %s", cid, exc)
        await self.media.close_channel(cid)
        return stats
