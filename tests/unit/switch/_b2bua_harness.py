"""Test harness for the call manager: the node's SipCore, SIP channel driver and
CallManager, and scripted phones (each a SipCore), joined by an in-memory UDP network.

SIP never touches a socket here; media is the real MediaService (LocalBackend) on
127.0.0.1, so bridges, tones and INFO digits go through the real engine. Time for the SIP
cores is the event loop's clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from signaling.auth import DigestAuthenticator, DigestClient, LockoutPolicy
from signaling.core import CoreConfig, SipCore
from signaling.dialog import DialogId
from signaling.events import Address, Event, RequestReceived, ResponseReceived
from signaling.location import UserCredentials, compute_ha1
from signaling.message import make_response
from signaling.registrar import Registrar
from switch.b2bua import CallManager
from switch.bus import EventBus
from switch.cdr import Cdr, CdrCollector
from switch.drivers.sip import SipChannelDriver
from switch.events import Event as BusEvent
from switch.media.config import MediaConfig
from switch.media.service import MediaService
from switch.router import DialPlan
from switch.routing_config import default_routing

NODE = Address("udp", "127.0.0.1", 5060)
REALM = "softswitch"
PASSWORD = "secret"


def sdp(port: int, codecs: str = "0 8", direction: str = "sendrecv",
        host: str = "127.0.0.1") -> bytes:
    names = {"0": "PCMU", "8": "PCMA"}
    lines = ["v=0", f"o=- 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
             f"m=audio {port} RTP/AVP {codecs} 101"]
    lines += [f"a=rtpmap:{pt} {names[pt]}/8000" for pt in codecs.split()]
    lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


class Net:
    """Delivers datagrams between cores until nothing moves."""

    def __init__(self) -> None:
        self.cores: dict[tuple[str, int], SipCore] = {}
        self.sinks: dict[tuple[str, int], Callable[[Event], None]] = {}
        self._pumping = False
        self.loop = asyncio.get_running_loop()
        self.trace: list[tuple[int, int, str]] = []  # (from port, to port, first line)
        self.drop: Callable[[int, int, str], bool] = lambda src, dest, line: False

    def add(self, core: SipCore, sink: Callable[[Event], None]) -> None:
        key = (core.config.host, core.config.port)
        self.cores[key] = core
        self.sinks[key] = sink

    def pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            moved = True
            while moved:
                moved = False
                now = self.loop.time()
                for key, core in list(self.cores.items()):
                    deadline = core.next_deadline()
                    if deadline is not None and deadline <= now:
                        core.handle_timer(now)
                    for data, dest in core.datagrams_to_send():
                        line = data.split(b"\r\n", 1)[0].decode()
                        self.trace.append((key[1], dest.port, line))
                        target = self.cores.get((dest.host, dest.port))
                        if target is not None and not self.drop(key[1], dest.port, line):
                            target.handle_datagram(data, Address("udp", *key), now)
                            moved = True
                    for event in core.events():
                        self.sinks[key](event)
                        moved = True
        finally:
            self._pumping = False


@dataclass
class Phone:
    """A scripted SIP phone: records what it receives, answers as told."""

    net: Net
    user: str
    port: int
    core: SipCore = field(init=False)
    events: list[Event] = field(default_factory=list)
    on_invite: str = "answer"  # "answer", "ring", "busy", "ignore"
    answer_codecs: str = "0 8"
    client: DigestClient = field(default_factory=lambda: DigestClient(lambda: "cafe"))

    def __post_init__(self) -> None:
        self.core = SipCore(CoreConfig(host="127.0.0.1", port=self.port),
                            rng=Random(self.port))
        self.net.add(self.core, self._on_event)

    @property
    def address(self) -> Address:
        return Address("udp", "127.0.0.1", self.port)

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, RequestReceived) and event.request.method != "ACK":
            self._answer(event)

    def _answer(self, event: RequestReceived) -> None:
        request = event.request
        now = self.net.loop.time()
        tag = None if request.to_tag else f"t{self.port}"
        if request.method != "INVITE" or event.dialog_id is not None:
            body = sdp(self.port + 1000, self.answer_codecs) if request.method == "INVITE" \
                else b""
            extra = [("Content-Type", "application/sdp")] if body else []
            self.core.send_response(make_response(request, 200, to_tag=tag, body=body,
                                                  extra=extra), event.transaction_id, now)
            return
        if self.on_invite == "ignore":
            return
        if self.on_invite == "busy":
            self.core.send_response(make_response(request, 486, to_tag=tag),
                                    event.transaction_id, now)
            return
        self.core.send_response(make_response(request, 180, to_tag=tag),
                                event.transaction_id, now)
        if self.on_invite == "answer":
            self.accept(event)

    def forged_200(self, to_tag: str) -> None:
        """A 200 for the last INVITE with ``to_tag``, straight onto the wire (a forking
        proxy's second answer, or a 200 that crossed a CANCEL)."""
        request = self.requests("INVITE")[-1].request
        response = make_response(request, 200, to_tag=to_tag,
                                 body=sdp(self.port + 1000, self.answer_codecs),
                                 extra=[("Content-Type", "application/sdp"),
                                        ("Contact", f"<sip:{self.user}@127.0.0.1:{self.port}>")])
        node = self.net.cores[(NODE.host, NODE.port)]
        node.handle_datagram(response.serialize(), self.address, self.net.loop.time())
        self.net.pump()

    def accept(self, event: RequestReceived | None = None) -> None:
        """Answer ``event`` (default: the last INVITE received) with 200 and SDP."""
        event = event or self.requests("INVITE")[-1]
        body = sdp(self.port + 1000, self.answer_codecs)
        self.core.send_response(
            make_response(event.request, 200, to_tag=f"t{self.port}", body=body,
                          extra=[("Content-Type", "application/sdp")]),
            event.transaction_id, self.net.loop.time())
        self.net.pump()

    def invite(self, dial: str, *, body: bytes | None = None, password: str | None = PASSWORD,
               challenge: str | None = None) -> str:
        """Send an INVITE (with credentials answering ``challenge`` when given)."""
        uri = f"sip:{dial}@127.0.0.1:5060"
        extra = []
        if challenge is not None and password is not None:
            extra.append(("Proxy-Authorization", self.client.authorize(
                challenge, "INVITE", uri, self.user, password)))
        request = self.core.create_request(
            "INVITE", uri, from_=f"<sip:{self.user}@{REALM}>", to=f"<sip:{dial}@{REALM}>",
            body=body if body is not None else sdp(self.port + 1000),
            content_type="application/sdp", extra=extra)
        txn = self.core.send_request(request, NODE, self.net.loop.time())
        self.net.pump()
        return txn

    def call(self, dial: str, **kw: object) -> str:
        """INVITE, take the 407, INVITE again with credentials."""
        self.invite(dial)
        challenge = self.last_response(407).headers.get("Proxy-Authenticate")
        assert challenge is not None
        return self.invite(dial, challenge=challenge, **kw)  # type: ignore[arg-type]

    def responses(self, txn: str | None = None) -> list[int]:
        return [e.response.status for e in self.events if isinstance(e, ResponseReceived)
                and (txn is None or e.transaction_id == txn)]

    def last_response(self, status: int):
        for event in reversed(self.events):
            if isinstance(event, ResponseReceived) and event.response.status == status:
                return event.response
        raise AssertionError(f"{self.user} got no {status}: {self.responses()}")

    def requests(self, method: str) -> list[RequestReceived]:
        return [e for e in self.events if isinstance(e, RequestReceived)
                and e.request.method == method]

    def dialog(self) -> DialogId:
        for event in reversed(self.events):
            if isinstance(event, ResponseReceived) and event.dialog_id is not None \
                    and event.response.status == 200 and event.response.cseq.method == "INVITE":
                return event.dialog_id
        if len(self.core.dialogs) == 1:  # the callee side (UAS dialog)
            return next(iter(self.core.dialogs))
        raise AssertionError(f"no single dialog: {list(self.core.dialogs)}")

    def send_in_dialog(self, method: str, body: bytes = b"",
                       content_type: str | None = None) -> str:
        txn = self.core.send_in_dialog(self.dialog(), method, self.net.loop.time(), body=body,
                                       content_type=content_type)
        self.net.pump()
        return txn

    def cancel(self, txn: str) -> None:
        self.core.cancel(txn, self.net.loop.time())
        self.net.pump()


class Switch:
    """The node's call path: SipCore + SipChannelDriver + CallManager + bus + CDRs."""

    def __init__(self, net: Net, tmp: Path, *, no_answer_timeout_s: float = 5.0,
                 max_failures: int = 5, max_call_duration_s: float = 0.0,
                 inactivity_timeout_s: float = 30.0) -> None:
        self.net = net
        self.core = SipCore(CoreConfig(host=NODE.host, port=NODE.port), rng=Random(1))
        self.core.allow = {"REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "INFO", "OPTIONS"}
        net.add(self.core, self._on_event)
        self.registrar = Registrar((REALM, "127.0.0.1"))
        self.auth = DigestAuthenticator(REALM, b"k" * 32, algorithms=("MD5",),
                                        lockout=LockoutPolicy(max_failures=max_failures))
        self.users = {u: UserCredentials(u, REALM, {"MD5": compute_ha1(u, REALM, PASSWORD)})
                      for u in ("1001", "1002", "1003")}
        self.media = MediaService(MediaConfig(
            rtp_port_min=31000, rtp_port_max=31999, recordings_dir=tmp, prompt_cache_dir=tmp,
            inactivity_timeout_s=inactivity_timeout_s))
        self.bus = EventBus()
        self.published: list[BusEvent] = []
        self.cdrs: list[Cdr] = []
        self.bus.tap(self.published.append)
        self.bus.tap(CdrCollector(self.cdrs.append).handle)
        self.driver = SipChannelDriver(
            self.core, net.pump, net.loop.time, self.media, self._on_leg, auth=self.auth,
            lookup_user=self.users.get, registrar=self.registrar, domain=REALM,
            wall=time.time)
        self.calls = CallManager(self.driver, self.media, self.bus,
                                 DialPlan.from_config(default_routing()),
                                 no_answer_timeout_s=no_answer_timeout_s,
                                 max_call_duration_s=max_call_duration_s)

    def _on_leg(self, event: object) -> None:
        self.calls.handle(event)  # type: ignore[arg-type]

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived) and event.request.method == "REGISTER":
            return
        self.driver.handle(event)

    async def start(self) -> None:
        await self.media.start()
        await self.calls.start()

    async def stop(self) -> None:
        await self.calls.stop()
        await self.driver.drain()
        await self.media.shutdown()

    def register(self, phone: Phone, user: str | None = None) -> None:
        user = user or phone.user
        request = phone.core.create_request(
            "REGISTER", f"sip:{REALM}", from_=f"<sip:{user}@{REALM}>", to=f"<sip:{user}@{REALM}>",
            contact=f"<sip:{user}@127.0.0.1:{phone.port}>", extra=[("Expires", "300")])
        outcome = self.registrar.handle_register(request, phone.address, user, time.time())
        assert outcome.response_status == 200

    def of_type(self, cls: type) -> list[BusEvent]:
        return [e for e in self.published if isinstance(e, cls)]

    async def settle(self, until: Callable[[], bool] | None = None, timeout: float = 2.0) -> None:
        """Let media tasks run and SIP move until ``until()`` (or a short quiet time)."""
        deadline = self.net.loop.time() + timeout
        while self.net.loop.time() < deadline:
            self.net.pump()
            if until is not None and until():
                return
            await asyncio.sleep(0.01)
        if until is not None:
            raise AssertionError("condition not reached in time")
