"""The MESSAGE relay (RFC 3428) with in-process phones: digest challenge, forking to every
contact, body and Content-Type passed on, 404/480/513, no answer, best failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from random import Random

import pytest
from _b2bua_harness import NODE, PASSWORD, REALM, Net, Phone

from signaling.auth import DigestAuthenticator, LockoutPolicy
from signaling.core import CoreConfig, SipCore
from signaling.events import Address, Event, RequestReceived
from signaling.location import UserCredentials, compute_ha1
from signaling.registrar import Registrar
from switch.drivers.sip_outbound import OutboundLegs
from switch.messaging import MessageRelay, best_failure


class Node:
    """The node's core, registrar and relay (what ``switch.app`` wires for MESSAGE)."""

    def __init__(self, net: Net, timeout_s: float = 2.0) -> None:
        self.net = net
        self.core = SipCore(CoreConfig(host=NODE.host, port=NODE.port,
                                       relayed_body_methods=("MESSAGE",)), rng=Random(7))
        self.core.allow = {"REGISTER", "MESSAGE", "OPTIONS"}
        self.registrar = Registrar((REALM, "127.0.0.1"))
        self.users = {u: UserCredentials(u, REALM, {"MD5": compute_ha1(u, REALM, PASSWORD)})
                      for u in ("1001", "1002", "1003")}
        self.auth = DigestAuthenticator(REALM, b"k" * 32, algorithms=("MD5",),
                                        lockout=LockoutPolicy(max_failures=5))
        self.relay = MessageRelay(self.core, net.pump, net.loop.time, self.auth,
                                  self.users.get, self._lookup, REALM, time.time,
                                  timeout_s=timeout_s)
        net.add(self.core, self._on_event)

    def _lookup(self, number: str) -> list:
        return OutboundLegs.lookup(self, number)  # type: ignore[arg-type]

    @property
    def domain(self) -> str:
        return REALM

    def wall(self) -> float:
        return time.time()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            assert self.relay.handle_request(event), event.request.method
        else:
            self.relay.handle_event(event)

    def register(self, user: str, port: int) -> None:
        phone_core = SipCore(CoreConfig(host="127.0.0.1", port=port))
        request = phone_core.create_request(
            "REGISTER", f"sip:{REALM}", from_=f"<sip:{user}@{REALM}>", to=f"<sip:{user}@{REALM}>",
            contact=f"<sip:{user}@127.0.0.1:{port}>", extra=[("Expires", "300")])
        outcome = self.registrar.handle_register(request, Address("udp", "127.0.0.1", port),
                                                 user, time.time())
        assert outcome.response_status == 200


def send(phone: Phone, to: str, body: bytes, ctype: str = "text/plain;charset=utf-8",
         challenge: str | None = None, password: str = PASSWORD) -> str:
    uri = f"sip:{to}@127.0.0.1:5060"
    extra = []
    if challenge is not None:
        extra.append(("Authorization", phone.client.authorize(challenge, "MESSAGE", uri,
                                                              phone.user, password)))
    request = phone.core.create_request("MESSAGE", uri, from_=f"<sip:{phone.user}@{REALM}>",
                                        to=f"<sip:{to}@{REALM}>", body=body,
                                        content_type=ctype, extra=extra)
    txn = phone.core.send_request(request, NODE, phone.net.loop.time())
    phone.net.pump()
    return txn


def authorized(phone: Phone, to: str, body: bytes, **kw: str) -> str:
    first = send(phone, to, body, **kw)
    assert phone.responses(first) == [401]
    challenge = phone.last_response(401).headers.get("WWW-Authenticate")
    assert challenge is not None and challenge.startswith("Digest ")
    return send(phone, to, body, challenge=challenge, **kw)


async def _until(net: Net, predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = net.loop.time() + timeout
    while not predicate():
        assert net.loop.time() < deadline, "condition not reached in time"
        net.pump()
        await asyncio.sleep(0.01)


async def test_message_is_challenged_then_relayed_to_every_contact() -> None:
    net = Net()
    node = Node(net)
    alice = Phone(net, "1001", 5071)
    desk = Phone(net, "1002", 5072)
    Phone(net, "1002", 5073)
    # The desk phone reads the type; the soft phone does not and answers 415 (RFC 3261
    # §8.2.3): the switch passes the body on either way and the 2xx wins (§16.7).
    desk.core = SipCore(CoreConfig(host="127.0.0.1", port=5072,
                                   accept=("application/vnd.test+json",)))
    net.add(desk.core, desk._on_event)
    node.register("1002", 5072)
    node.register("1002", 5073)
    body = b'{"text": "\xe4\xbd\xa0\xe5\xa5\xbd"}'
    txn = authorized(alice, "1002", body, ctype="application/vnd.test+json")
    await _until(net, lambda: 200 in alice.responses(txn))
    assert alice.responses(txn) == [200]
    (got,) = desk.requests("MESSAGE")
    assert got.request.body == body
    assert got.request.headers.get("Content-Type") == "application/vnd.test+json"
    assert got.request.from_.uri.user == "1001"  # the authenticated user
    assert got.request.call_id != alice.last_response(200).call_id  # a new request
    assert (5060, 5073, "MESSAGE sip:1002@127.0.0.1:5073 SIP/2.0") in net.trace
    assert any(src == 5073 and line.startswith("SIP/2.0 415") for src, _, line in net.trace)
    assert node.relay.stats["delivered"] == 1


async def test_not_registered_unknown_and_too_large() -> None:
    net = Net()
    node = Node(net)
    alice = Phone(net, "1001", 5071)
    txn = authorized(alice, "1003", b"hi")
    assert alice.responses(txn)[-1] == 480
    alice2 = Phone(net, "1001", 5074)
    txn = authorized(alice2, "1999", b"hi")
    assert alice2.responses(txn)[-1] == 404
    node.register("1002", 5072)
    Phone(net, "1002", 5072)
    alice3 = Phone(net, "1001", 5075)
    txn = authorized(alice3, "1002", b"x" * 1400)
    assert alice3.responses(txn)[-1] == 513
    assert node.relay.stats["too_large"] == 1


async def test_wrong_password_is_challenged_again_and_silence_gives_480() -> None:
    net = Net()
    node = Node(net, timeout_s=0.3)
    alice = Phone(net, "1001", 5071)
    first = send(alice, "1002", b"hi")
    challenge = alice.last_response(401).headers.get("WWW-Authenticate")
    txn = send(alice, "1002", b"hi", challenge=challenge, password="wrong")
    assert alice.responses(txn) == [401] and first != txn
    node.register("1002", 5099)  # a contact nobody answers on
    alice2 = Phone(net, "1001", 5076)
    txn = authorized(alice2, "1002", b"hi")
    await _until(net, lambda: 480 in alice2.responses(txn))


@pytest.mark.parametrize(("statuses", "best"), [
    ([486, 404], 486), ([503, 486], 486), ([408], 480), ([486, 603, 404], 603), ([], 480),
    ([500, 503], 500)])
def test_best_failure_follows_rfc3261_16_7(statuses: list[int], best: int) -> None:
    assert best_failure(statuses) == best
