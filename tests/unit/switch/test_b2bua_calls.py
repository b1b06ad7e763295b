"""The call manager and SIP channel driver with in-process phones (SipCores on an in-memory
network) and the real media service on loopback: routing, forking, busy, no answer,
CANCEL, BYE, hold re-INVITEs, INFO digits, codec switch, authentication, CDRs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _b2bua_harness import Net, Phone, Switch, sdp

from signaling.events import CancelReceived
from signaling.sdp import parse as parse_sdp
from switch.events import (
    CallAnswered,
    CallBridged,
    CallHeld,
    CallHungUp,
    CallOffered,
    CallResumed,
    CallRinging,
    CallRouted,
    DigitReceived,
    LegMediaStats,
)


@pytest.fixture
async def net() -> Net:
    return Net()


@pytest.fixture
async def switch(net: Net, tmp_path: Path) -> AsyncIterator[Switch]:
    sw = Switch(net, tmp_path, no_answer_timeout_s=0.6, max_failures=3)
    await sw.start()
    yield sw
    await sw.stop()


async def test_call_forks_first_answer_wins_and_bye_ends_both_legs(net: Net,
                                                                   switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob_desk = Phone(net, "1002", 5072, on_invite="ring")
    bob_soft = Phone(net, "1002", 5073, on_invite="ring")
    switch.register(bob_desk)
    switch.register(bob_soft)
    txn = alice.call("1002")
    await switch.settle(lambda: bool(bob_desk.requests("INVITE") and bob_soft.requests("INVITE")))
    await switch.settle(lambda: 183 in alice.responses(txn))
    bob_desk.accept()
    await switch.settle(lambda: 200 in alice.responses(txn))
    assert alice.responses(txn)[-2:] == [183, 200]  # ringback with our SDP, then answer
    await switch.settle(lambda: any(isinstance(e, CancelReceived) for e in bob_soft.events))
    answer = parse_sdp(alice.last_response(200).body)
    assert answer.media[0].port >= 31000  # anchored: the switch's own RTP port
    assert [type(e).__name__ for e in switch.published[:2]] == ["CallOffered", "CallRouted"]
    assert len(switch.of_type(CallOffered)) == 3  # the caller leg and two forks
    assert len(switch.of_type(CallRinging)) == 1
    assert len(switch.of_type(CallAnswered)) == 2 and len(switch.of_type(CallBridged)) == 2
    bob_desk.send_in_dialog("BYE")
    await switch.settle(lambda: bool(alice.requests("BYE")) and bool(switch.cdrs))
    cdr = switch.cdrs[0]
    assert (cdr.caller, cdr.callee, cdr.disposition.value) == ("1001", "1002", "answered")
    assert (cdr.hangup_side, cdr.hangup_cause, cdr.route) == ("callee", "normal_clearing",
                                                               "extensions")
    assert cdr.answer_at is not None and cdr.start_at <= cdr.answer_at <= cdr.end_at
    # Stats of every leg are published before the caller leg's hang-up closes the CDR.
    order = [type(e) for e in switch.published]
    last_hangup = max(i for i, t in enumerate(order) if t is CallHungUp)
    assert all(i < last_hangup for i, t in enumerate(order) if t is LegMediaStats)
    assert {leg.role for leg in cdr.legs} == {"caller", "callee"}
    assert switch.calls.calls == {} and switch.media.backends[0].load == 0


async def test_busy_callee_gives_486_and_a_busy_cdr(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="busy")
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 486 in alice.responses(txn) and bool(switch.cdrs))
    cdr = switch.cdrs[0]
    assert (cdr.disposition.value, cdr.sip_status, cdr.hangup_cause) == ("busy", 486,
                                                                         "user_busy")


async def test_no_answer_gives_480_and_cancels_the_fork(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 480 in alice.responses(txn) and bool(switch.cdrs), timeout=3)
    assert any(isinstance(e, CancelReceived) for e in bob.events)
    cdr = switch.cdrs[0]
    assert (cdr.disposition.value, cdr.hangup_cause, cdr.hangup_side) == (
        "no_answer", "no_answer", "system")


async def test_caller_cancel_cancels_every_fork(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bobs = [Phone(net, "1002", 5072, on_invite="ring"), Phone(net, "1002", 5073,
                                                               on_invite="ring")]
    for bob in bobs:
        switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 183 in alice.responses(txn))
    alice.cancel(txn)
    await switch.settle(lambda: all(any(isinstance(e, CancelReceived) for e in b.events)
                                    for b in bobs) and bool(switch.cdrs))
    assert 487 in alice.responses(txn)
    cdr = switch.cdrs[0]
    assert (cdr.disposition.value, cdr.sip_status, cdr.hangup_side) == ("cancelled", 487,
                                                                        "caller")


async def test_unregistered_unknown_and_unauthenticated(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    txn = alice.call("1003")  # a user, not registered
    await switch.settle(lambda: 480 in alice.responses(txn))
    txn = alice.call("777")  # no dial-plan rule
    await switch.settle(lambda: 404 in alice.responses(txn) and len(switch.cdrs) == 2)
    assert [c.hangup_cause for c in switch.cdrs] == ["subscriber_absent", "unallocated_number"]
    routed = len(switch.of_type(CallRouted))
    txn = alice.invite("1002")  # no credentials: challenged, never routed
    assert alice.responses(txn) == [407]
    assert "Proxy-Authenticate" in alice.last_response(407).headers
    challenge = alice.last_response(407).headers.get("Proxy-Authenticate")
    for _ in range(3):  # wrong password until the shared lockout (3 failures here)
        alice.invite("1002", challenge=challenge, password="wrong")
    txn = alice.invite("1002", challenge=challenge)
    assert alice.responses(txn) == [403]
    assert alice.last_response(403).headers.get("Retry-After")
    assert len(switch.of_type(CallRouted)) == routed


async def test_hold_reinvite_bad_sdp_and_info_digit(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))
    hold = alice.send_in_dialog("INVITE", sdp(6071, direction="sendonly"), "application/sdp")
    await switch.settle(lambda: 200 in alice.responses(hold))
    answer = parse_sdp(alice.last_response(200).body)
    assert answer.media_direction(answer.media[0]) == "recvonly"
    assert len(switch.of_type(CallHeld)) == 1
    resume = alice.send_in_dialog("INVITE", sdp(6071), "application/sdp")
    await switch.settle(lambda: 200 in alice.responses(resume))
    assert len(switch.of_type(CallResumed)) == 1
    bad = alice.send_in_dialog("INVITE", b"v=0\r\nthis is not SDP\r\n", "application/sdp")
    await switch.settle(lambda: 488 in alice.responses(bad))
    info = alice.send_in_dialog("INFO", b"Signal=5\r\nDuration=160\r\n",
                                "application/dtmf-relay")
    await switch.settle(lambda: bool(switch.of_type(DigitReceived)))
    assert 200 in alice.responses(info)
    digit = switch.of_type(DigitReceived)[0]
    assert digit.digit == "5" and digit.channel.startswith("sip/1001-")
    assert switch.calls.calls  # the call survived the bad re-INVITE
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bool(bob.requests("BYE")) and bool(switch.cdrs))
    assert switch.cdrs[0].hangup_side == "caller"


async def test_callee_picking_the_other_law_gets_a_reinvite(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, answer_codecs="0")  # PCMU only
    switch.register(bob)
    txn = alice.call("1002", body=sdp(6071, "8"))  # the caller offers PCMA only
    await switch.settle(lambda: 200 in alice.responses(txn) and len(bob.requests("INVITE")) == 2)
    first, reinvite = (parse_sdp(r.request.body) for r in bob.requests("INVITE"))
    assert first.media[0].formats[:2] == ["8", "0"]  # the caller's law first
    assert reinvite.media[0].formats[0] == "0"  # re-offer: PCMU alone, new port
    assert reinvite.media[0].port != first.media[0].port
    assert {e.codec for e in switch.of_type(CallAnswered)} == {"PCMA", "PCMU"}


async def test_shutdown_ends_calls_with_bye(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))
    await switch.calls.stop()
    net.pump()
    assert alice.requests("BYE") and bob.requests("BYE")
    assert switch.cdrs[0].hangup_cause == "shutdown"


@pytest.mark.parametrize(("kw", "cause"), [
    ({"max_call_duration_s": 0.4}, "max_duration"),
    ({"inactivity_timeout_s": 0.5}, "media_timeout"),  # the phones here send no RTP
])
async def test_calls_end_on_max_duration_and_rtp_inactivity(
        net: Net, tmp_path: Path, kw: dict[str, float], cause: str) -> None:
    sw = Switch(net, tmp_path, **kw)  # type: ignore[arg-type]
    await sw.start()
    try:
        alice = Phone(net, "1001", 5071)
        bob = Phone(net, "1002", 5072)
        sw.register(bob)
        txn = alice.call("1002")
        await sw.settle(lambda: 200 in alice.responses(txn))
        await sw.settle(lambda: bool(sw.cdrs), timeout=4)
        assert alice.requests("BYE") and bob.requests("BYE")
        cdr = sw.cdrs[0]
        assert (cdr.disposition.value, cdr.hangup_cause, cdr.hangup_side) == (
            "answered", cause, "system")
    finally:
        await sw.stop()


def _byes_to(net: Net, port: int) -> int:
    return sum(1 for _, dest, line in net.trace if dest == port and line.startswith("BYE "))


async def test_a_second_2xx_of_a_forking_proxy_gets_a_bye(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))
    bob.forged_200("another-fork")
    await switch.settle(lambda: _byes_to(net, 5072) == 1)
    assert switch.calls.calls  # the first answer's call goes on
    assert not bob.requests("BYE")  # the forged dialog's BYE got 481 from bob's core


async def test_a_200_crossing_our_cancel_gets_ack_and_bye(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 183 in alice.responses(txn))
    # Bob never sees the node's CANCEL: his 200 crosses it.
    net.drop = lambda src, dest, line: dest == 5072 and line.startswith("CANCEL ")
    alice.cancel(txn)
    await switch.settle(lambda: 487 in alice.responses(txn) and bool(switch.cdrs))
    assert switch.calls.calls == {}  # the call is over and its legs released
    bob.forged_200("t5072")
    await switch.settle(lambda: _byes_to(net, 5072) == 1)
    assert any(dest == 5072 and line.startswith("ACK ") for _, dest, line in net.trace)
    assert switch.cdrs[0].disposition.value == "cancelled"


async def test_offers_we_cannot_answer_get_488_and_odd_info_415(net: Net,
                                                                 switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    g729 = sdp(6071).replace(b"RTP/AVP 0 8 101", b"RTP/AVP 18 101")
    for body in (g729, b"v=0\r\nnot sdp\r\n"):
        txn = alice.call("1002", body=body)
        assert alice.responses(txn) == [488]
        assert alice.last_response(488).headers.get("Warning")
    assert not bob.requests("INVITE") and not switch.of_type(CallOffered)
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))
    info = alice.send_in_dialog("INFO", b"<xml/>", "text/plain")
    await switch.settle(lambda: 415 in alice.responses(info))
    assert not switch.of_type(DigitReceived)
