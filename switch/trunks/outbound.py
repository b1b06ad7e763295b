"""Calls out through a trunk: the INVITE to the carrier, its digest challenge, and the
toll-fraud checks in front of it (RFC 3261 §8.1, §22.2; RFC 3325; RFC 3323).

The leg is an ordinary outbound leg of the SIP channel driver (same :class:`SipLeg`, same
response handling, same media anchoring); only the request differs, so this module builds
it and answers challenges through the leg's ``on_challenge`` hook.

Rules:

* Rule 1 -- the Request-URI is ``sip:<number>@host[:port]`` with the number as
  :class:`~.policy.TrunkPolicy` rewrote it (``outbound_rules``, then ``number_format``);
  the request goes to ``TrunkConfig.next_hop()``: the outbound proxy, preloaded as a loose
  ``Route`` (§8.1.2), else host:port. Host names are resolved off the event loop.
* Rule 2 -- identity: the calling number is the trunk's caller-ID policy applied to the
  caller (:func:`~.numbers.present_caller_id`); it is the From user, falling back to
  ``from_user`` / ``username`` when nothing is presentable. A ``trusted`` trunk also gets
  it in P-Asserted-Identity (RFC 3325 §9.1). A caller whose INVITE carries ``Privacy: id``
  (or ``user`` / ``header``) gets an anonymous From and ``Privacy: id`` (RFC 3323 §4.2);
  the number then only goes in P-Asserted-Identity, and only to a trusted trunk.
* Rule 3 -- a 401/407 is answered with the trunk's credentials
  (:class:`~signaling.auth.DigestClient`): the INVITE client transaction ACKs the
  challenge (§17.1.1.3) and the new INVITE keeps Call-ID and From tag with CSeq + 1
  (§8.1.3.5, §22.2). At most once per realm (``stale=true`` aside, RFC 7616 §3.3): a
  second challenge means wrong credentials and the leg fails with that status. No password,
  or a realm other than the configured ``realm``: no credentials are given at all.
* Rule 4 -- :meth:`TrunkCalls.dial` asks the policy first (authenticated users only,
  ``allowed_users``, transit, numbers, ``max_calls``) and refuses the caller with its
  status; ``max_calls`` counts the live legs of the trunk in both directions.
  :func:`originate_via_trunk` itself applies no policy: its callers (the B2BUA through
  :meth:`TrunkCalls.dial`, the campaign dialer) decide who may dial.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import secrets
import socket
from collections.abc import Collection, Mapping
from typing import Any

from signaling.auth import DigestClient, parse_digest_params
from signaling.errors import LocalSipError, SipParseError
from signaling.events import Address
from signaling.message import Request, Response
from signaling.offer_answer import make_offer
from signaling.transport import default_port
from signaling.uri import SipUri
from switch.channel import Channel
from switch.drivers.base import LegRejected
from switch.drivers.sip_outbound import G711, SDP, TELEPHONE_EVENT_PT, SipLeg
from switch.events import CallOffered
from switch.media.errors import MediaError
from switch.router import DialPlan, Ivr, RouteDecision, Trunk

from .config import TrunkConfig
from .inbound import TrunkInbound, did_target
from .numbers import CallerId, present_caller_id
from .policy import TrunkPolicy
from .registration import _set_via_transport

__all__ = ["TrunkCalls", "TrunkInvite", "asks_privacy", "identity_headers",
           "originate_via_trunk", "trunk_request_uri"]

logger = logging.getLogger(__name__)

ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'
"""RFC 3323 §4.1.1.3 / RFC 3325 §9.1: the From of a caller who asked for privacy."""
MAX_STALE = 2
"""``stale=true`` challenges answered per INVITE before giving up (a looping server)."""
RESOLVE_TIMEOUT_S = 5.0


def trunk_request_uri(trunk: TrunkConfig, number: str) -> str:
    """Rule 1: ``sip:<number>@host[:port][;transport=]`` (sips for TLS)."""
    scheme = "sips" if trunk.transport == "tls" else "sip"
    port = "" if trunk.port == default_port(trunk.transport) else f":{trunk.port}"
    t = "" if trunk.transport == "udp" else f";transport={trunk.transport}"
    host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
    return f"{scheme}:{number}@{host}{port}{t}"


def identity_headers(trunk: TrunkConfig, caller_id: CallerId,
                     display: str = "") -> tuple[str, list[tuple[str, str]]]:
    """Rule 2: the From value (without tag) and the identity headers of a call out."""
    domain = trunk.domain
    number = caller_id.number or trunk.from_user or trunk.username
    extra: list[tuple[str, str]] = []
    if caller_id.private:
        from_ = ANONYMOUS_FROM
        extra.append(("Privacy", "id"))
    else:
        name = display.replace('"', "").replace("\\", "").strip()
        shown = f'"{name}" ' if name else ""
        from_ = f"{shown}<sip:{number}@{domain}>" if number else ANONYMOUS_FROM
    if trunk.trusted and caller_id.number:
        extra.append(("P-Asserted-Identity", f"<sip:{caller_id.number}@{domain}>"))
    return from_, extra


class TrunkInvite:
    """One INVITE to a trunk and its digest retries (Rule 3); the leg's ``on_challenge``.

    Args:
        driver: the SIP channel driver (its core, flush and client-transaction table).
        channel: the outbound leg (its SipLeg already holds the SDP offer).
        trunk: the trunk called.
        number: the called number as the trunk wants it.
        caller_id: what Rule 2 presents.
        display: the caller's display name (pass-through only).
        destination: where to send (the resolved next hop).
        digest: builds Authorization values (nonce counts are kept there).
    """

    def __init__(self, driver: Any, channel: Channel, trunk: TrunkConfig, number: str,
                 caller_id: CallerId, display: str, destination: Address,
                 digest: DigestClient) -> None:
        self.driver = driver
        self.channel = channel
        self.trunk = trunk
        self.uri = trunk_request_uri(trunk, number)
        self.from_, self.identity = identity_headers(trunk, caller_id, display)
        self.to = f"<sip:{number}@{trunk.domain}>"
        self.contact_user = caller_id.number or trunk.username or None
        self.destination = destination
        self.digest = digest
        self.call_id: str | None = None
        self.from_tag: str | None = None
        self.cseq = 1
        self.challenges: dict[tuple[str, str], str] = {}
        self.answered: set[tuple[str, str]] = set()
        self.stale = 0
        self.sent: list[Request] = []

    def send(self) -> None:
        """Build and send the INVITE (with credentials for every kept challenge)."""
        driver, leg = self.driver, self.channel.sip
        core = driver.core
        extra = list(self.identity)
        if self.trunk.outbound_proxy:
            proxy = SipUri.parse(self.trunk.outbound_proxy.strip().strip("<>"))
            extra.append(("Route", f"<{proxy if proxy.lr else proxy.with_params(lr=True)}>"))
        for (header, _realm), challenge in self.challenges.items():
            name = "Authorization" if header == "WWW-Authenticate" else "Proxy-Authorization"
            extra.append((name, self.digest.authorize(
                challenge, "INVITE", self.uri, self.trunk.auth_user,
                password=self.trunk.password, body=leg.local_body)))
        from_ = self.from_ if self.from_tag is None else f"{self.from_};tag={self.from_tag}"
        request = core.create_request(
            "INVITE", self.uri, from_=from_, to=self.to, call_id=self.call_id, cseq=self.cseq,
            body=leg.local_body, content_type=SDP, contact=core.contact(self.contact_user),
            extra=extra)
        _set_via_transport(request, self.trunk.transport)
        self.call_id, self.from_tag = request.call_id, request.from_tag
        self.sent.append(request)
        leg.invite = request
        txn = core.send_request(request, self.destination, driver._now())
        leg.client_txn = txn
        driver._by_client_txn[txn] = self.channel
        driver._flush()
        if leg.cancel_requested:
            core.cancel(txn, driver._now())
            driver._flush()

    def on_challenge(self, channel: Channel, response: Response) -> bool:
        """Rule 3: True when a new INVITE with credentials went out for this 401/407."""
        trunk = self.trunk
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        if channel.ended or not trunk.password:
            return False
        try:
            value = DigestClient.select_challenge(response.headers.get_all(header))
            _, params = parse_digest_params(value)
        except SipParseError as exc:
            logger.warning("trunk %s: unusable %d challenge: %s", trunk.name,
                           response.status, exc)
            return False
        realm = params.get("realm", "")
        if trunk.realm and realm != trunk.realm:
            logger.warning("trunk %s: challenge for unexpected realm %r; no credentials",
                           trunk.name, realm)
            return False
        key = (header, realm)
        if params.get("stale", "").lower() == "true":
            self.stale += 1
            if self.stale > MAX_STALE:
                return False
        elif key in self.answered:
            logger.warning("trunk %s: credentials refused by realm %r", trunk.name, realm)
            return False
        self.answered.add(key)
        self.challenges[key] = value
        self.cseq += 1
        try:
            self.send()
        except (LocalSipError, SipParseError, ValueError) as exc:
            logger.warning("trunk %s: INVITE with credentials not sent: %s", trunk.name, exc)
            return False
        return True


def asks_privacy(channel: Channel) -> bool:
    """Whether the caller's INVITE asked that its identity be withheld: ``Privacy: id``
    (RFC 3325 §9.3), ``user`` or ``header`` (RFC 3323 §4.2)."""
    invite = getattr(channel.sip, "invite", None)
    if invite is None:
        return False
    values = ";".join(invite.headers.get_all("Privacy")).lower()
    return bool({v.strip() for v in values.split(";")} & {"id", "user", "header"})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve_next_hop(trunk: TrunkConfig) -> Address:
    """The trunk's next hop with its host name resolved (raises OSError/TimeoutError)."""
    hop = trunk.next_hop()
    if _is_ip(hop.host):
        return hop
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(hop.host, hop.port, family=socket.AF_INET,
                                                    type=socket.SOCK_DGRAM), RESOLVE_TIMEOUT_S)
    return Address(hop.transport, str(infos[0][4][0]), hop.port)


async def originate_via_trunk(driver: Any, channel: Channel, trunk: TrunkConfig, number: str,
                              *, caller: str, user: str | None = None, caller_name: str = "",
                              private: bool = False, codec: str = "PCMU",
                              near: int | None = None,
                              digest: DigestClient | None = None) -> TrunkInvite | None:
    """Open the leg's media, then INVITE ``number`` through ``trunk`` (Rules 1-3).

    The leg then behaves like any outbound leg of ``driver``: LegRinging, LegAnswered or
    LegRejected reach the driver's ``on_event``. No policy is applied here (Rule 4).

    Args:
        driver: the :class:`~switch.drivers.sip.SipChannelDriver`.
        channel: a fresh leg from ``driver.new_outbound(number)``.
        trunk: the trunk to call through.
        number: the called number as the trunk wants it (``Decision.number``).
        caller: the caller's number as we know it (pass-through caller ID; "" = none).
        user: the authenticated user placing the call (per-user caller ID).
        caller_name: display name sent in From (pass-through only).
        private: the caller asked for privacy (RFC 3323).
        codec: offered first (the other G.711 law second).
        near: a media channel id to open the leg's channel next to (the caller's).
        digest: a shared DigestClient (nonce counts); a fresh one by default.

    Returns:
        The :class:`TrunkInvite` sent, or None when the leg failed or ended first.
    """
    leg: SipLeg = channel.sip
    try:
        info = await driver.media.open_channel(codec=codec, near=near,
                                               dtmf_pt=TELEPHONE_EVENT_PT)
    except MediaError as exc:
        logger.error("%s: no media channel: %s", channel.name, exc)
        driver._end_remote(channel, LegRejected(channel, 503))
        return None
    channel.media_id = info.channel_id
    channel.codec = codec
    if channel.ended:
        return None  # cancelled while the media opened; release() closes it
    leg.local_addr = (driver._sdp_host(info.local_addr), info.local_addr[1])
    codecs = [codec, *[c for c in G711 if c != codec]]
    leg.offer = leg.sdp.stamp(make_offer(
        codecs, leg.local_addr[0], leg.local_addr[1], session_id=leg.sdp.session_id,
        session_version=leg.sdp.version))
    leg.local_body = bytes(leg.offer)
    try:
        destination = await resolve_next_hop(trunk)
    except (OSError, TimeoutError) as exc:
        logger.warning("trunk %s: cannot resolve %s: %s", trunk.name, trunk.next_hop().host,
                       exc)
        driver._end_remote(channel, LegRejected(channel, 503))
        return None
    if channel.ended:
        return None
    presented = present_caller_id(trunk.caller_id, user=user, caller_number=caller or None,
                                  private=private, country=trunk.country_code,
                                  area_code=trunk.area_code)
    display = caller_name if trunk.caller_id.mode.value == "pass-through" else ""
    invite = TrunkInvite(driver, channel, trunk, number, presented, display, destination,
                         digest or DigestClient(lambda: secrets.token_hex(8)))
    leg.on_challenge = invite.on_challenge
    invite.send()
    logger.info("%s: INVITE %s via trunk %s as %s", channel.name, invite.uri, trunk.name,
                presented.number or "(no caller ID)")
    return invite


class TrunkCalls:
    """Trunk calls for the call manager: DID routing in, policy-checked dialing out.

    The manager holds one (``CallManager.trunks``) and calls :meth:`route_inbound` for
    calls whose source is a trunk and :meth:`dial` for ``Trunk`` targets. Legs of each
    trunk are tracked (both directions) for ``max_calls``.
    """

    def __init__(self, trunks: Mapping[str, TrunkConfig] | Collection[TrunkConfig], *,
                 policy: TrunkPolicy | None = None) -> None:
        self.policy = policy or TrunkPolicy(trunks)
        self.inbound = TrunkInbound(self.policy)
        self.digest = DigestClient(lambda: secrets.token_hex(8))
        self._legs: dict[str, list[Channel]] = {}
        self.stats = {"inbound": 0, "outbound": 0, "refused": 0}
        self._resolver: asyncio.Task[None] | None = None

    def load_programs(self, ivr: Any) -> list[str]:
        """Load the IVR programs ``did_map`` entries name (``ivr:<program>``) that the dial
        plan did not (``IvrService.load``); a missing one is logged, its DID then gets 480.
        Returns the programs loaded here."""
        loaded = []
        for trunk in self.policy.trunks.values():
            if not trunk.enabled:
                continue
            for entry in trunk.did_map.values():
                target = did_target(entry)
                if not isinstance(target, Ivr) or ivr.has(target.program):
                    continue
                try:
                    ivr.load(target.program)
                except FileNotFoundError as exc:
                    logger.error("trunk %s: DID target %s: %s", trunk.name, entry, exc)
                    continue
                loaded.append(target.program)
        return loaded

    def start(self) -> None:
        """Resolve trunk host names for recognition in the background (start-up does not
        wait for DNS; until then such a trunk's calls are challenged like a stranger's)."""
        self._resolver = asyncio.get_running_loop().create_task(
            self.resolve_sources(), name="trunk-sources")

    async def stop(self) -> None:
        if self._resolver is not None:
            self._resolver.cancel()
            await asyncio.gather(self._resolver, return_exceptions=True)
            self._resolver = None

    async def resolve_sources(self) -> None:
        """``TrunkPolicy.add_resolved`` for every enabled trunk whose host or outbound proxy
        is a name and that has no ``allowed_sources``."""
        loop = asyncio.get_running_loop()
        for trunk in self.policy.trunks.values():
            if not trunk.enabled or trunk.allowed_sources:
                continue
            hosts = [trunk.host]
            if trunk.outbound_proxy:
                hosts.append(SipUri.parse(trunk.outbound_proxy.strip().strip("<>")).host)
            for host in hosts:
                if _is_ip(host):
                    continue
                try:
                    infos = await asyncio.wait_for(
                        loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), RESOLVE_TIMEOUT_S)
                except (OSError, TimeoutError) as exc:
                    logger.warning("trunk %s: cannot resolve %s; its calls in will not be "
                                   "recognised: %s", trunk.name, host, exc)
                    continue
                addresses = sorted({str(info[4][0]) for info in infos})
                added = self.policy.add_resolved(trunk.name, addresses)
                logger.info("trunk %s: %s is %s (%d new source address(es))", trunk.name,
                            host, ", ".join(addresses), added)

    def active_calls(self, trunk: str) -> int:
        """Live legs through ``trunk`` (ended ones are forgotten here)."""
        legs = [ch for ch in self._legs.get(trunk, ()) if not ch.ended]
        self._legs[trunk] = legs
        return len(legs)

    def track(self, trunk: str, channel: Channel) -> None:
        """Count ``channel`` against ``trunk``'s ``max_calls`` until it ends."""
        self._legs.setdefault(trunk, []).append(channel)

    def route_inbound(self, call: Any, dialplan: DialPlan, now_local: dt.datetime,
                      lists: Mapping[str, Collection[str]]) -> RouteDecision:
        """The route of a call that came in from trunk ``call.trunk`` (``inbound`` Rule 3),
        503 when that trunk is at ``max_calls``."""
        trunk = self.policy.trunks.get(call.trunk)
        if trunk is not None and self.active_calls(trunk.name) >= trunk.max_calls:
            logger.warning("trunk %s: inbound call refused, at max_calls", trunk.name)
            self.stats["refused"] += 1
            return self.inbound.refuse(call.dialed, 503, "trunk at max_calls")
        if trunk is not None:
            self.track(trunk.name, call.a)
        self.stats["inbound"] += 1
        return self.inbound.route(call.trunk, call.dialed, call.caller, dialplan, now_local,
                                  lists)

    def dial(self, manager: Any, call: Any, target: Trunk) -> None:
        """Rule 4 then Rules 1-3: send ``call`` out through ``target.name``, or fail it."""
        trunk = self.policy.trunks.get(target.name)
        if trunk is None:
            logger.warning("call %s: dial plan names unknown trunk %r", call.id, target.name)
            manager._fail(call, 404, "unallocated_number", "system")
            return
        from_trunk = None
        if call.source == "trunk":
            from_trunk = self.policy.trunks.get(call.trunk)
        user = call.caller if call.source == "user" else None
        decision = self.policy.may_use_trunk(call.source, user, trunk, target.number,
                                             from_trunk=from_trunk,
                                             active_calls=self.active_calls(trunk.name))
        if not decision.allowed or decision.number is None:
            self.stats["refused"] += 1
            cause = "network_congestion" if decision.status_code == 503 else "call_rejected"
            manager._fail(call, decision.status_code, cause, "system")
            return
        self.stats["outbound"] += 1
        a = call.a
        private = asks_privacy(a)
        b = manager.driver.new_outbound(decision.number)
        b.call_id = call.id
        call.forks.append(b)
        manager._call_of[b.name] = call
        self.track(trunk.name, b)
        manager._publish(CallOffered, call, b, caller=call.caller,
                         callee=decision.number, source="internal")
        manager._spawn(originate_via_trunk(
            manager.driver, b, trunk, decision.number, caller=call.caller, user=user,
            caller_name=call.caller_name, private=private, codec=a.codec or "PCMU",
            near=a.media_id, digest=self.digest), f"originate-{b.name}")
        loop = asyncio.get_running_loop()
        call.timers.append(loop.call_later(manager.no_answer_timeout_s, manager._no_answer,
                                           call))
