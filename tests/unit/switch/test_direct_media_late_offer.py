"""Direct media (``media = "direct"`` dial-plan rules) and late-offer INVITEs, through the
real SIP driver and call manager with in-process phones (``_b2bua_harness``)."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _b2bua_harness import Net, Phone, Switch, sdp

from signaling.sdp import parse as parse_sdp
from switch.config import ConfigError
from switch.events import CallAnswered, CallHeld, CallHungUp, CallResumed, LegMediaStats
from switch.router import DialPlan
from switch.routing_config import parse_routing

DIRECT = """
[[dialplan.rules]]
name = "direct"
match = "_10XX"
target = "extension"
media = "direct"
"""


@pytest.fixture
async def net() -> Net:
    return Net()


@pytest.fixture
async def switch(net: Net, tmp_path: Path) -> AsyncIterator[Switch]:
    sw = Switch(net, tmp_path, no_answer_timeout_s=0.6)
    await sw.start()
    yield sw
    await sw.stop()


def _direct(switch: Switch) -> None:
    switch.calls.dialplan = DialPlan.from_config(parse_routing(tomllib.loads(DIRECT)))


def test_media_key_is_validated() -> None:
    assert parse_routing(tomllib.loads(DIRECT)).dialplan.rules[0].media == "direct"
    with pytest.raises(ConfigError, match=r"rules\[0\]\.media"):
        parse_routing(tomllib.loads(DIRECT.replace('"direct"', '"drect"')))
    bad = '[[dialplan.rules]]\nmatch = "9"\ntarget = "voicemail"\nmedia = "direct"\n'
    with pytest.raises(ConfigError, match="only for target"):
        parse_routing(tomllib.loads(bad))


async def test_direct_media_passes_the_sdp_through_and_opens_no_media(
        net: Net, switch: Switch) -> None:
    _direct(switch)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = alice.call("1002", body=sdp(6071, host="127.0.0.11"))
    await switch.settle(lambda: 200 in alice.responses(txn))
    assert 180 in alice.responses(txn) and 183 not in alice.responses(txn)
    offer = parse_sdp(bob.requests("INVITE")[0].request.body)
    # The callee sees the caller's RTP address and port; the origin is the switch's.
    assert (offer.connection.host, offer.media[0].port) == ("127.0.0.11", 6071)
    assert offer.origin.session_id != "1"
    answer = parse_sdp(alice.last_response(200).body)
    assert answer.media[0].port == 5072 + 1000  # the callee's own port, not ours
    assert switch.media.backends[0].load == 0  # no media channel was opened
    assert len(switch.of_type(CallAnswered)) == 2
    # Hold and resume are relayed end to end.
    hold = alice.send_in_dialog("INVITE", sdp(6071, direction="sendonly", host="127.0.0.11"),
                                "application/sdp")
    await switch.settle(lambda: 200 in alice.responses(hold))
    relayed = parse_sdp(bob.requests("INVITE")[-1].request.body)
    assert relayed.media_direction(relayed.media[0]) == "sendonly"
    assert relayed.origin.session_version == offer.origin.session_version + 1
    assert len(switch.of_type(CallHeld)) == 1
    resume = alice.send_in_dialog("INVITE", sdp(6071, host="127.0.0.11"), "application/sdp")
    await switch.settle(lambda: 200 in alice.responses(resume))
    assert len(switch.of_type(CallResumed)) == 1
    bad = alice.send_in_dialog("INVITE", b"v=0\r\nnot sdp\r\n", "application/sdp")
    await switch.settle(lambda: 488 in alice.responses(bad))
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bool(bob.requests("BYE")) and bool(switch.cdrs))
    cdr = switch.cdrs[0]
    assert (cdr.disposition.value, cdr.hangup_side) == ("answered", "caller")
    assert not switch.of_type(LegMediaStats)  # no RTP statistics on direct calls
    assert switch.calls.calls == {}


async def test_direct_media_relays_a_callee_reinvite(net: Net, switch: Switch) -> None:
    _direct(switch)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))
    reinvite = bob.send_in_dialog("INVITE", sdp(7072, "0"), "application/sdp")
    await switch.settle(lambda: 200 in bob.responses(reinvite))
    to_alice = parse_sdp(alice.requests("INVITE")[-1].request.body)
    assert to_alice.media[0].port == 7072


async def _late_call(net: Net, switch: Switch, alice: Phone) -> str:
    alice.core.dialog_layer._auto_ack = False  # we ACK by hand, with the answer
    alice.invite("1002", body=b"")
    challenge = alice.last_response(407).headers.get("Proxy-Authenticate")
    txn = alice.invite("1002", body=b"", challenge=challenge)
    await switch.settle(lambda: 200 in alice.responses(txn))
    return txn


async def test_late_offer_gets_our_offer_in_the_200_and_the_answer_in_the_ack(
        net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = await _late_call(net, switch, alice)
    assert 183 not in alice.responses(txn)  # no offer in an unreliable 1xx (Rule 2)
    assert 180 in alice.responses(txn)
    offer = parse_sdp(alice.last_response(200).body)
    assert offer.media[0].formats[:2] == ["0", "8"] and offer.media[0].port >= 31000
    call = next(iter(switch.calls.calls.values()))
    assert call.a.sip.late_offer is True
    alice.core.send_ack(alice.dialog(), 2, net.loop.time(), body=sdp(6071, "0"),
                        content_type="application/sdp")
    net.pump()
    await switch.settle(lambda: call.a.sip.late_offer is None)
    assert call.a.remote_media == ("127.0.0.1", 6071) and call.a.codec == "PCMU"
    assert not alice.requests("INVITE")  # same codec: no re-offer
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bool(bob.requests("BYE")) and bool(switch.cdrs))
    assert switch.cdrs[0].disposition.value == "answered"


async def test_late_offer_answered_with_pcma_is_reopened_and_reoffered(
        net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    await _late_call(net, switch, alice)
    call = next(iter(switch.calls.calls.values()))
    first_port = parse_sdp(alice.last_response(200).body).media[0].port
    alice.core.send_ack(alice.dialog(), 2, net.loop.time(), body=sdp(6071, "8"),
                        content_type="application/sdp")
    net.pump()
    await switch.settle(lambda: bool(alice.requests("INVITE")))
    reoffer = parse_sdp(alice.requests("INVITE")[-1].request.body)
    assert reoffer.media[0].formats[0] == "8" and reoffer.media[0].port != first_port
    assert call.a.codec == "PCMA" and switch.media.backends[0].load == 2


async def test_late_offer_ack_without_answer_ends_the_call(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    await _late_call(net, switch, alice)
    alice.core.send_ack(alice.dialog(), 2, net.loop.time())
    net.pump()
    await switch.settle(lambda: bool(alice.requests("BYE")) and bool(switch.cdrs))
    assert switch.of_type(CallHungUp) and switch.calls.calls == {}


async def test_late_offer_on_a_direct_route_is_anchored(net: Net, switch: Switch) -> None:
    _direct(switch)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    await _late_call(net, switch, alice)
    assert parse_sdp(alice.last_response(200).body).media[0].port >= 31000
    assert parse_sdp(bob.requests("INVITE")[0].request.body).media[0].port >= 31000


def test_restamp_rewrites_only_the_origin_and_counts_versions() -> None:
    from signaling.offer_answer import SdpSession
    from signaling.sdp import SdpError
    from switch.direct_media import DirectLeg, restamp

    session, state = SdpSession("4242", 7, "softswitch"), DirectLeg()
    body = sdp(6071, host="127.0.0.11")
    out = restamp(body, session, state)
    assert out.replace(b"o=softswitch 4242 7 IN IP4 127.0.0.11",
                       b"o=- 1 1 IN IP4 127.0.0.11") == body
    assert parse_sdp(out).origin.session_version == 7
    assert restamp(body, session, state) == out  # unchanged body: same version
    held = restamp(sdp(6071, direction="sendonly", host="127.0.0.11"), session, state)
    assert parse_sdp(held).origin.session_version == 8  # changed: version + 1 (RFC 3264 §8)
    with pytest.raises(SdpError):
        restamp(b"v=0\r\ns=-\r\n", session, state)
    with pytest.raises(SdpError):
        restamp(b"v=0\r\no=- 1 1 IN\r\n", session, state)


def test_codec_of_reads_the_first_voice_codec() -> None:
    from switch.direct_media import codec_of

    assert codec_of(sdp(6071, "8 0")) == "PCMA"
    assert codec_of(b"v=0\r\nm=audio 4000 RTP/AVP 101 18\r\na=rtpmap:101 telephone-event/8000"
                    b"\r\n") == "G729"  # static payload type without rtpmap
    assert codec_of(b"v=0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 5000 RTP/AVP 96\r\n"
                    b"a=rtpmap:96 opus/48000/2\r\n") == "OPUS"  # the rejected stream skipped
    assert codec_of(b"v=0\r\nm=video 5000 RTP/AVP 96\r\n") == ""


async def test_direct_media_busy_and_cancel_end_cleanly(net: Net, switch: Switch) -> None:
    from signaling.events import CancelReceived

    _direct(switch)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="busy")
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 486 in alice.responses(txn) and bool(switch.cdrs))
    assert switch.cdrs[0].disposition.value == "busy"
    bob.on_invite = "ring"
    txn = alice.call("1002")
    await switch.settle(lambda: 180 in alice.responses(txn))
    alice.cancel(txn)
    await switch.settle(lambda: any(isinstance(e, CancelReceived) for e in bob.events)
                        and len(switch.cdrs) == 2)
    assert switch.cdrs[1].disposition.value == "cancelled"
    assert switch.calls.calls == {} and switch.driver.overload.inflight == 0
