"""Trunk calls through the call manager and SIP driver, with in-process phones and carriers
(SipCores on the harness's in-memory network; carriers live on 127.0.0.2 / 127.0.0.3 so the
source address tells them apart from phones): digest answers to 401/407, wrong credentials,
foreign realms, max_calls, transit, DID routing and caller identity (RFC 3325)."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import pytest
from _b2bua_harness import NODE, REALM, Net, Phone, Switch, sdp

from signaling.auth import DigestClient, digest_response, parse_digest_params
from signaling.core import CoreConfig, SipCore
from signaling.events import Event, RequestReceived, ResponseReceived
from signaling.location import compute_ha1
from signaling.message import make_response
from switch.router import DialPlan
from switch.routing_config import parse_routing
from switch.trunks.config import parse_trunks
from switch.trunks.outbound import TrunkCalls

TRUNK_PASSWORD = "pw-carrier"

ROUTING = """
[[dialplan.rules]]
name = "extensions"
match = "_10XX"
target = "extension"

[[dialplan.rules]]
name = "outbound"
match = "_9."
target = "trunk"
trunk = "main"
strip = 1
source = "user"

[[dialplan.rules]]
name = "forward-to-mobile"
match = "_8."
target = "trunk"
trunk = "main"
strip = 1
source = "trunk"
"""


def trunks(**main: Any) -> dict[str, Any]:
    table = {
        "main": {"host": "127.0.0.2", "port": 5090, "username": "8621001",
                 "password": TRUNK_PASSWORD, "number_format": "e164", "trusted": True,
                 "caller_id_mode": "fixed", "caller_id_number": "02161234567",
                 "did_map": {"02161234567": "user:1002", "02161234599": "1003"}, **main},
        "other": {"host": "127.0.0.3", "port": 5091, "did_map": {"02161230000": "1002"}},
    }
    return parse_trunks(table)


@dataclass
class Carrier:
    """A carrier's SIP server: challenges each new call ``script`` times, then answers."""

    net: Net
    host: str
    port: int
    challenge: str = "401"  # "401", "407", or "none"
    challenges: int = 1
    realm: str = "carrier.test"
    on_answer: str = "answer"  # "answer" or "ring"
    core: SipCore = field(init=False)
    invites: list[RequestReceived] = field(default_factory=list)
    responses: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = SipCore(CoreConfig(host=self.host, port=self.port), rng=Random(self.port))
        self.net.add(self.core, self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            self.responses.append((event.transaction_id, event.response.status))
        if not isinstance(event, RequestReceived):
            return
        request, now = event.request, self.net.loop.time()
        if request.method == "ACK":
            return
        if request.method != "INVITE" or event.dialog_id is not None:
            self.core.send_response(make_response(request, 200, to_tag=request.to_tag),
                                    event.transaction_id, now)
            return
        self.invites.append(event)
        n = sum(1 for e in self.invites if e.request.call_id == request.call_id)
        if self.challenge != "none" and n <= self.challenges:
            header = "WWW-Authenticate" if self.challenge == "401" else "Proxy-Authenticate"
            value = (f'Digest realm="{self.realm}", nonce="n{n}{request.call_id[:6]}", '
                     'qop="auth", algorithm=MD5')
            self.core.send_response(make_response(request, int(self.challenge), to_tag="c0",
                                                  extra=[(header, value)]),
                                    event.transaction_id, now)
            return
        self.core.send_response(make_response(request, 180, to_tag="c1"),
                                event.transaction_id, now)
        if self.on_answer == "answer":
            self.core.send_response(
                make_response(request, 200, to_tag="c1", body=sdp(self.port + 1000),
                              extra=[("Content-Type", "application/sdp"),
                                     ("Contact", f"<sip:{self.host}:{self.port}>")]),
                event.transaction_id, now)

    def final(self, txn: str) -> int | None:
        """The final status our INVITE ``txn`` got (None: none yet)."""
        return next((s for t, s in self.responses if t == txn and s >= 200), None)

    def send_invite(self, did: str, caller: str, extra: list[tuple[str, str]] | None = None,
                    display: str = "", late_offer: bool = False) -> str:
        shown = f'"{display}" ' if display else ""
        request = self.core.create_request(
            "INVITE", f"sip:{did}@127.0.0.1:5060", from_=f"{shown}<sip:{caller}@{self.host}>",
            to=f"<sip:{did}@127.0.0.1>", body=b"" if late_offer else sdp(self.port + 1000),
            content_type=None if late_offer else "application/sdp", extra=extra)
        txn = self.core.send_request(request, NODE, self.net.loop.time())
        self.net.pump()
        return txn


@pytest.fixture
async def net() -> Net:
    return Net()


async def _switch(net: Net, tmp_path: Path, **main: Any) -> Switch:
    sw = Switch(net, tmp_path, no_answer_timeout_s=1.0)
    sw.calls.dialplan = DialPlan.from_config(parse_routing(tomllib.loads(ROUTING)))
    sw.calls.trunks = TrunkCalls(trunks(**main))
    sw.driver.trunk_inbound = sw.calls.trunks.inbound
    await sw.start()
    return sw


@pytest.fixture
async def switch(net: Net, tmp_path: Path) -> AsyncIterator[Switch]:
    sw = await _switch(net, tmp_path)
    yield sw
    await sw.stop()


def _header(event: RequestReceived, name: str) -> str | None:
    return event.request.headers.get(name)


async def test_call_out_answers_a_401_with_credentials_and_keeps_the_dialog_ids(
        net: Net, switch: Switch) -> None:
    carrier = Carrier(net, "127.0.0.2", 5090, challenge="401")
    alice = Phone(net, "1001", 5071)
    txn = alice.call("913812345678")
    await switch.settle(lambda: 200 in alice.responses(txn))
    first, second = carrier.invites
    acks = [line for src, dest, line in net.trace if (src, dest) == (5060, 5090)
            and line.startswith("ACK ")]
    assert len(acks) == 2  # the 401's ACK (§17.1.1.3) and the 2xx's
    uri = "sip:+8613812345678@127.0.0.2:5090"
    assert str(first.request.uri) == uri == str(second.request.uri)
    assert first.request.call_id == second.request.call_id
    assert first.request.from_tag == second.request.from_tag
    assert (first.request.cseq.seq, second.request.cseq.seq) == (1, 2)
    assert _header(first, "Authorization") is None
    _, p = parse_digest_params(_header(second, "Authorization") or "")
    ha1 = compute_ha1("8621001", "carrier.test", TRUNK_PASSWORD)
    assert p["response"] == digest_response(algorithm="MD5", ha1=ha1, nonce=p["nonce"],
                                            method="INVITE", uri=uri, qop="auth", nc=p["nc"],
                                            cnonce=p["cnonce"])
    assert second.request.from_.uri.user == "02161234567"  # fixed caller ID
    assert _header(second, "P-Asserted-Identity") == "<sip:02161234567@127.0.0.2>"
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bool(switch.cdrs))
    cdr = switch.cdrs[0]
    assert (cdr.disposition.value, cdr.target) == ("answered", "trunk:main/13812345678")
    assert switch.calls.trunks.active_calls("main") == 0


async def test_untrusted_trunk_gets_no_pai_and_a_407_is_answered_too(net: Net,
                                                                     tmp_path: Path) -> None:
    sw = await _switch(net, tmp_path, trusted=False, caller_id_mode="pass-through",
                       caller_id_number="")
    try:
        carrier = Carrier(net, "127.0.0.2", 5090, challenge="407")
        alice = Phone(net, "1001", 5071)
        txn = alice.call("913812345678")
        await sw.settle(lambda: 200 in alice.responses(txn))
        second = carrier.invites[1]
        assert _header(second, "Proxy-Authorization") is not None
        assert _header(second, "P-Asserted-Identity") is None
        # pass-through of an internal extension with no fallback: the trunk's account
        assert second.request.from_.uri.user == "8621001"
    finally:
        await sw.stop()


async def test_wrong_credentials_fail_the_call_without_an_invite_loop(net: Net,
                                                                      switch: Switch) -> None:
    carrier = Carrier(net, "127.0.0.2", 5090, challenge="407", challenges=5)
    alice = Phone(net, "1001", 5071)
    txn = alice.call("913812345678")
    await switch.settle(lambda: 480 in alice.responses(txn) and bool(switch.cdrs))
    assert len(carrier.invites) == 2  # once without, once with credentials; then give up


async def test_a_foreign_realm_gets_no_credentials(net: Net, tmp_path: Path) -> None:
    sw = await _switch(net, tmp_path, realm="carrier.test")
    try:
        carrier = Carrier(net, "127.0.0.2", 5090, realm="evil.test")
        alice = Phone(net, "1001", 5071)
        txn = alice.call("913812345678")
        await sw.settle(lambda: 480 in alice.responses(txn))
        assert len(carrier.invites) == 1
    finally:
        await sw.stop()


async def test_max_calls_refuses_with_503_and_frees_on_hangup(net: Net,
                                                              tmp_path: Path) -> None:
    sw = await _switch(net, tmp_path, max_calls=1)
    try:
        Carrier(net, "127.0.0.2", 5090, challenge="none", on_answer="ring")
        alice = Phone(net, "1001", 5071)
        first = alice.call("913812345678")
        await sw.settle(lambda: 183 in alice.responses(first))
        second = alice.call("913812345679")
        await sw.settle(lambda: 503 in alice.responses(second))
        alice.cancel(first)
        await sw.settle(lambda: len(sw.cdrs) == 2)
        assert sw.calls.trunks.active_calls("main") == 0
        assert [c.sip_status for c in sw.cdrs] == [503, 487]
    finally:
        await sw.stop()


async def test_policy_refusals_reach_the_caller(net: Net, tmp_path: Path) -> None:
    sw = await _switch(net, tmp_path, allowed_users=["1001"],
                       deny_prefixes=["+86168"])
    try:
        carrier = Carrier(net, "127.0.0.2", 5090)
        alice, carol = Phone(net, "1001", 5071), Phone(net, "1003", 5073)
        statuses = []
        for phone, dial in ((carol, "913812345678"), (alice, "90044123456789"),
                            (alice, "916812345678"), (alice, "9*72")):
            txn = phone.call(dial)
            await sw.settle(lambda t=txn, p=phone: any(s >= 400 for s in p.responses(t)))
            statuses.append(max(phone.responses(txn)))
        assert statuses == [403, 403, 403, 484]
        assert carrier.invites == []
    finally:
        await sw.stop()


async def test_did_call_from_a_trusted_carrier_reaches_the_extension(
        net: Net, switch: Switch) -> None:
    carrier = Carrier(net, "127.0.0.2", 5090)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = carrier.send_invite("02161234567", "13900001111", display="Mrs Wang",
                              extra=[("P-Asserted-Identity", "<tel:+8613900002222>")])
    await switch.settle(lambda: carrier.final(txn) == 200)
    invite = bob.requests("INVITE")[0].request
    assert invite.from_.uri.user == "+8613900002222"  # trusted: the asserted identity
    assert invite.from_.display == "Mrs Wang"
    assert switch.calls.trunks.active_calls("main") == 1  # inbound calls count too
    routed = [e for e in switch.published if type(e).__name__ == "CallRouted"]
    assert (routed[0].rule, routed[0].target) == ("did:main", "extension:1002")


async def test_late_offer_from_a_carrier_is_routed_by_its_did(net: Net,
                                                              switch: Switch) -> None:
    """A carrier's INVITE without SDP (RFC 3261 §13.2.1 late offer) is still a trunk call:
    its DID is routed by did_map with source "trunk", never as a user's dialed number."""
    carrier = Carrier(net, "127.0.0.2", 5090)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    carrier.send_invite("02161234567", "13900001111", late_offer=True)
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    routed = [e for e in switch.published if type(e).__name__ == "CallRouted"]
    assert (routed[0].rule, routed[0].target) == ("did:main", "extension:1002")
    offered = [e for e in switch.published if type(e).__name__ == "CallOffered"]
    assert offered[0].source == "trunk"


async def test_untrusted_carrier_identity_is_ignored_and_the_did_goes_by_dial_plan(
        net: Net, switch: Switch) -> None:
    other = Carrier(net, "127.0.0.3", 5091)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    other.send_invite("02161230000", "13900001111",
                      extra=[("P-Asserted-Identity", "<sip:+8613900002222@x>"),
                             ("Remote-Party-ID", "<sip:+8613900003333@x>")])
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    invite = bob.requests("INVITE")[0].request
    assert invite.from_.uri.user == "13900001111"
    assert invite.headers.get("P-Asserted-Identity") is None
    assert invite.headers.get("Remote-Party-ID") is None
    routed = [e for e in switch.published if type(e).__name__ == "CallRouted"]
    assert routed[0].rule == "extensions"


async def test_transit_needs_transit_trunks(net: Net, tmp_path: Path) -> None:
    """A call in from "other" forwarded out through "main" (rule 8.): refused by default,
    allowed when main lists other in transit_trunks."""
    for transit, expected in (([], 403), (["other"], 200)):
        sw = await _switch(Net(), tmp_path, transit_trunks=transit)
        try:
            net = sw.net
            Carrier(net, "127.0.0.2", 5090, challenge="none")
            other = Carrier(net, "127.0.0.3", 5091)
            txn = other.send_invite("813812345678", "13900001111")
            await sw.settle(lambda t=txn, o=other: o.final(t) is not None)
            assert other.final(txn) == expected
        finally:
            await sw.stop()


async def test_phone_identity_is_the_digest_user_with_its_display_name(
        net: Net, switch: Switch) -> None:
    """Calls between phones: the display name of From passes on; a phone's own
    P-Asserted-Identity (untrusted source) is ignored."""
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    uri = "sip:1002@127.0.0.1:5060"
    first = alice.core.create_request(
        "INVITE", uri, from_=f'"Alice Li" <sip:1001@{REALM}>', to=f"<sip:1002@{REALM}>",
        body=sdp(6071), content_type="application/sdp")
    alice.core.send_request(first, NODE, net.loop.time())
    net.pump()
    challenge = alice.last_response(407).headers.get("Proxy-Authenticate") or ""
    authz = DigestClient(lambda: "c1").authorize(challenge, "INVITE", uri, "1001", "secret")
    second = alice.core.create_request(
        "INVITE", uri, from_=f'"Alice Li" <sip:1001@{REALM}>', to=f"<sip:1002@{REALM}>",
        body=sdp(6071), content_type="application/sdp",
        extra=[("Proxy-Authorization", authz),
               ("P-Asserted-Identity", "<sip:boss@example.com>")])
    alice.core.send_request(second, NODE, net.loop.time())
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    invite = bob.requests("INVITE")[0].request
    assert (invite.from_.display, invite.from_.uri.user) == ("Alice Li", "1001")
    assert invite.headers.get("P-Asserted-Identity") is None


async def test_a_caller_asking_for_privacy_is_anonymous_to_the_carrier(
        net: Net, switch: Switch) -> None:
    carrier = Carrier(net, "127.0.0.2", 5090, challenge="none")
    alice = Phone(net, "1001", 5071)
    uri = "sip:913812345678@127.0.0.1:5060"
    alice.invite("913812345678")
    challenge = alice.last_response(407).headers.get("Proxy-Authenticate") or ""
    authz = DigestClient(lambda: "c2").authorize(challenge, "INVITE", uri, "1001", "secret")
    request = alice.core.create_request(
        "INVITE", uri, from_=f"<sip:1001@{REALM}>", to=f"<sip:913812345678@{REALM}>",
        body=sdp(6071), content_type="application/sdp",
        extra=[("Proxy-Authorization", authz), ("Privacy", "id")])
    alice.core.send_request(request, NODE, net.loop.time())
    await switch.settle(lambda: bool(carrier.invites))
    invite = carrier.invites[0]
    assert invite.request.from_.uri.user == "anonymous"
    assert _header(invite, "Privacy") == "id"
    assert _header(invite, "P-Asserted-Identity") == "<sip:02161234567@127.0.0.2>"  # trusted


async def test_outbound_proxy_gets_the_invite_with_a_loose_route(net: Net,
                                                                 tmp_path: Path) -> None:
    sw = await _switch(net, tmp_path, outbound_proxy="sip:127.0.0.3:5091")
    try:
        proxy = Carrier(net, "127.0.0.3", 5091, challenge="none")
        alice = Phone(net, "1001", 5071)
        txn = alice.call("913812345678")
        await sw.settle(lambda: 200 in alice.responses(txn))
        invite = proxy.invites[0]
        assert str(invite.request.uri) == "sip:+8613812345678@127.0.0.2:5090"  # §8.1.2
        assert _header(invite, "Route") == "<sip:127.0.0.3:5091;lr>"
    finally:
        await sw.stop()
