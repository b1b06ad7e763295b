"""Transfers and music on hold through the call manager, with in-process phones (SipCores
on an in-memory network, ``_b2bua_harness``) and the real media engine on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from _b2bua_harness import NODE, Net, Phone, Switch, sdp

from signaling.dialog import DialogId
from signaling.refer import Replaces, parse_sipfrag
from switch.channel import Channel
from switch.events import CallTransferred
from switch.moh import MOH_NOTES_HZ, MusicOnHold, default_moh_pcm, load_moh


@pytest.fixture
async def net() -> Net:
    return Net()


@pytest.fixture
async def switch(net: Net, tmp_path: Path) -> AsyncIterator[Switch]:
    sw = Switch(net, tmp_path, no_answer_timeout_s=1.0)
    sw.core.allow |= {"REFER", "NOTIFY"}
    sw.core._supported = frozenset({"replaces"})  # as switch.app configures the node
    sw.calls.moh = MusicOnHold(sw.calls, default_moh_pcm())
    await sw.start()
    yield sw
    await sw.stop()


def refer(phone: Phone, dialog: DialogId, refer_to: str | None) -> str:
    extra = [("Refer-To", refer_to)] if refer_to is not None else []
    txn = phone.core.send_in_dialog(dialog, "REFER", phone.net.loop.time(), extra=extra)
    phone.net.pump()
    return txn


def notifies(phone: Phone, dialog: DialogId | None = None) -> list[int]:
    return [parse_sipfrag(e.request.body)[0] for e in phone.requests("NOTIFY")
            if dialog is None or e.dialog_id == dialog]


def bye_count(phone: Phone) -> int:
    return len(phone.requests("BYE"))


def legs(switch: Switch) -> dict[str, Channel]:
    """Live legs by user (the last one wins)."""
    out: dict[str, Channel] = {}
    for call in switch.calls.calls.values():
        for leg in call.legs():
            if not leg.ended:
                out[leg.peer] = leg
    return out


def bridged(switch: Switch, a: Channel, b: Channel) -> bool:
    host = switch.media.backends[0].host
    assert a.media_id is not None and b.media_id is not None
    return host.engine.mix.peer(host.slot(a.media_id)) == host.slot(b.media_id)


async def call_up(switch: Switch, caller: Phone, callee: str) -> str:
    txn = caller.call(callee)
    await switch.settle(lambda: 200 in caller.responses(txn))
    await switch.settle(lambda: any(not c.ending and c.b is not None and
                                    all(not leg.ended for leg in (c.a, c.b))
                                    for c in switch.calls.calls.values()))
    return txn


async def test_blind_transfer_by_the_callee(net: Net, switch: Switch) -> None:
    alice, bob, carol = Phone(net, "1001", 5071), Phone(net, "1002", 5072), \
        Phone(net, "1003", 5073)
    for phone in (bob, carol):
        switch.register(phone)
    await call_up(switch, alice, "1002")
    txn = refer(bob, bob.dialog(), "<sip:1003@softswitch>")
    await switch.settle(lambda: 202 in bob.responses(txn))
    await switch.settle(lambda: notifies(bob) == [100, 200] and bye_count(bob) == 1)
    assert bye_count(alice) == 0 and carol.requests("INVITE")
    live = legs(switch)
    assert set(live) == {"1001", "1003"} and bridged(switch, live["1001"], live["1003"])
    (moved,) = switch.of_type(CallTransferred)
    assert (moved.target, moved.mode) == ("1003", "blind")
    first = switch.cdrs[0]  # the original call ends as transferred, tagged
    assert (first.caller, first.callee, first.hangup_cause, first.hangup_side) == (
        "1001", "1002", "transferred", "callee")
    assert first.tags == {"transferred_to": "1003", "transfer_mode": "blind"}
    carol.send_in_dialog("BYE")
    await switch.settle(lambda: bye_count(alice) == 1 and len(switch.cdrs) == 2)
    second = switch.cdrs[1]
    assert (second.caller, second.callee, second.source, second.disposition.value) == (
        "1001", "1003", "transfer", "answered")
    assert second.hangup_side == "callee"
    assert switch.calls.calls == {} and switch.media.backends[0].load == 0


async def test_blind_transfer_to_a_busy_target_reconnects(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    carol = Phone(net, "1003", 5073, on_invite="busy")
    for phone in (bob, carol):
        switch.register(phone)
    await call_up(switch, alice, "1002")
    # The caller transfers this time, after putting the callee on hold.
    hold = alice.send_in_dialog("INVITE", sdp(6071, direction="sendonly"), "application/sdp")
    await switch.settle(lambda: 200 in alice.responses(hold))
    txn = refer(alice, alice.dialog(), "sip:1003@softswitch")
    await switch.settle(lambda: 202 in alice.responses(txn) and notifies(alice) == [100, 486])
    await switch.settle(lambda: switch.cdrs != [])
    live = legs(switch)
    assert set(live) == {"1001", "1002"} and bridged(switch, live["1001"], live["1002"])
    assert bye_count(alice) == 0 and bye_count(bob) == 0
    # Still on hold: the transferee hears the music again.
    moh = switch.calls.moh
    assert moh is not None
    await switch.settle(lambda: live["1002"].media_id in moh.playing)
    (attempt,) = switch.cdrs
    assert (attempt.caller, attempt.callee, attempt.source, attempt.disposition.value,
            attempt.sip_status) == ("1002", "1003", "transfer", "busy", 486)
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bye_count(bob) == 1 and len(switch.cdrs) == 2)
    assert switch.cdrs[1].hangup_cause == "normal_clearing"


async def test_bad_refers_are_refused_and_the_call_is_kept(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    switch.register(bob)
    await call_up(switch, alice, "1002")
    dialog = alice.dialog()
    missing = refer(alice, dialog, None)
    nowhere = refer(alice, dialog, "<sip:9999@softswitch>")  # no route: forbidden
    garbage = refer(alice, dialog, "<sip:1003@softswitch")
    replaced = refer(alice, dialog, "<sip:1003@softswitch?Replaces=nope%3Bto-tag%3Da"
                                    "%3Bfrom-tag%3Db>")
    await switch.settle(lambda: all(alice.responses(t) for t in
                                    (missing, nowhere, garbage, replaced)))
    assert alice.responses(missing) == [400]
    assert alice.responses(nowhere) == [403]
    assert alice.responses(garbage) == [400]
    assert alice.responses(replaced) == [403]
    unregistered = refer(alice, dialog, "<sip:1003@softswitch>")  # allowed but absent
    await switch.settle(lambda: notifies(alice) == [100, 480])
    assert alice.responses(unregistered) == [202]
    live = legs(switch)
    assert set(live) == {"1001", "1002"} and bridged(switch, live["1001"], live["1002"])
    assert bye_count(alice) == bye_count(bob) == 0
    assert switch.calls.transfers.stats["refused"] == 2  # the 400s never reach it


async def test_attended_transfer_with_replaces(net: Net, switch: Switch) -> None:
    alice, bob, carol = Phone(net, "1001", 5071), Phone(net, "1002", 5072), \
        Phone(net, "1003", 5073)
    for phone in (alice, carol):
        switch.register(phone)
    txn1 = await call_up(switch, bob, "1001")  # call 1: bob (the transferor) -> alice
    call1 = bob.dialog()
    hold = bob.core.send_in_dialog(call1, "INVITE", net.loop.time(),
                                   body=sdp(6072, direction="sendonly"),
                                   content_type="application/sdp")
    net.pump()
    moh = switch.calls.moh
    assert moh is not None
    await switch.settle(lambda: 200 in bob.responses(hold))
    await switch.settle(lambda: legs(switch)["1001"].media_id in moh.playing)
    txn2 = await call_up(switch, bob, "1003")  # call 2: bob -> carol
    assert txn1 != txn2
    call2 = bob.dialog()
    assert call2 != call1
    replaces = Replaces(call2.call_id, call2.remote_tag, call2.local_tag)
    txn = refer(bob, call1, f"<sip:1003@softswitch?Replaces={replaces.escaped()}>")
    await switch.settle(lambda: 202 in bob.responses(txn) and notifies(bob, call1) == [100, 200])
    await switch.settle(lambda: bye_count(bob) == 2 and len(switch.cdrs) == 2)
    assert bye_count(alice) == bye_count(carol) == 0
    live = legs(switch)
    assert set(live) == {"1001", "1003"} and bridged(switch, live["1001"], live["1003"])
    assert live["1001"].media_id not in moh.playing
    assert {c.hangup_cause for c in switch.cdrs} == {"transferred"}
    assert {c.tags["transfer_mode"] for c in switch.cdrs} == {"attended"}
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bye_count(carol) == 1 and len(switch.cdrs) == 3)
    joined = switch.cdrs[2]  # the transferee of the REFER's call is its caller
    assert (joined.caller, joined.callee, joined.source, joined.disposition.value) == (
        "1001", "1003", "transfer", "answered")
    assert switch.calls.calls == {} and switch.media.backends[0].load == 0


async def test_attended_transfer_of_another_users_call_is_refused(net: Net,
                                                                  switch: Switch) -> None:
    alice, bob, carol = Phone(net, "1001", 5071), Phone(net, "1002", 5072), \
        Phone(net, "1003", 5073)
    for phone in (bob, carol):
        switch.register(phone)
    await call_up(switch, alice, "1002")
    await call_up(switch, carol, "1002")
    # Alice names the carol -> bob dialog (learned somehow): not hers to take over.
    leg = next(c.a for c in switch.calls.calls.values() if c.a.peer == "1003")
    did = leg.sip.dialog_id
    replaces = Replaces(did.call_id, did.local_tag, did.remote_tag)
    txn = refer(alice, alice.dialog(), f"<sip:1003@x?Replaces={replaces.escaped()}>")
    await switch.settle(lambda: bool(alice.responses(txn)))
    assert alice.responses(txn) == [403]
    assert len(switch.calls.calls) == 2 and bye_count(alice) == bye_count(carol) == 0


async def test_music_on_hold_starts_on_hold_and_stops_on_resume(net: Net,
                                                              switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    switch.register(bob)
    await call_up(switch, alice, "1002")
    bob_leg = legs(switch)["1002"]
    moh = switch.calls.moh
    assert moh is not None
    hold = alice.send_in_dialog("INVITE", sdp(6071, direction="inactive"), "application/sdp")
    await switch.settle(lambda: 200 in alice.responses(hold) and bob_leg.media_id in moh.playing)
    host = switch.media.backends[0].host
    assert bob_leg.media_id is not None
    assert host.engine.players.playing[host.slot(bob_leg.media_id)]
    resume = alice.send_in_dialog("INVITE", sdp(6071), "application/sdp")
    await switch.settle(lambda: 200 in alice.responses(resume) and not moh.playing)
    await switch.settle(lambda: not host.engine.players.playing[host.slot(bob_leg.media_id)])
    assert bridged(switch, legs(switch)["1001"], bob_leg)  # the bridge was never torn down


def test_default_music_is_band_limited_and_loops_cleanly(tmp_path: Path) -> None:
    pcm = default_moh_pcm()
    assert pcm.dtype == np.int16 and pcm.size % 160 == 0 and 4 * 8000 <= pcm.size <= 30 * 8000
    assert 4000 < np.abs(pcm).max() < 8000
    assert abs(int(pcm[0])) < 50 and abs(int(pcm[-1])) < 50  # no click at the loop point
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / 8000)
    peak = freqs[int(spectrum.argmax())]
    assert min(abs(peak - f) for f in MOH_NOTES_HZ) < 2.0
    assert spectrum[freqs > 3400].sum() < 0.01 * spectrum.sum()
    # load_moh writes it for people to listen to, and reads a configured file back.
    loaded = load_moh("", tmp_path)
    assert (tmp_path / "moh" / "default.wav").exists() and np.array_equal(loaded, pcm)
    again = load_moh("moh/default.wav", tmp_path)
    assert np.array_equal(again, pcm)
    from switch.media.errors import MediaError
    with pytest.raises(MediaError):
        load_moh("missing.wav", tmp_path)


async def test_transferor_may_hang_up_after_the_202(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    carol = Phone(net, "1003", 5073, on_invite="ring")
    for phone in (bob, carol):
        switch.register(phone)
    await call_up(switch, alice, "1002")
    txn = refer(alice, alice.dialog(), "<sip:1003@softswitch>")
    await switch.settle(lambda: 202 in alice.responses(txn) and bool(carol.requests("INVITE")))
    alice.send_in_dialog("BYE")  # RFC 5589 §6.1: the transferor may leave at once
    await switch.settle(lambda: 200 in alice.responses())
    carol.accept()
    await switch.settle(lambda: len(switch.cdrs) == 1)
    live = legs(switch)
    assert set(live) == {"1002", "1003"} and bridged(switch, live["1002"], live["1003"])
    assert bye_count(bob) == 0
    assert switch.cdrs[0].hangup_cause == "transferred"
    bob.send_in_dialog("BYE")
    await switch.settle(lambda: bye_count(carol) == 1 and len(switch.cdrs) == 2)
    assert switch.calls.calls == {} and switch.media.backends[0].load == 0


async def test_transferee_hanging_up_while_the_target_rings(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    carol = Phone(net, "1003", 5073, on_invite="ring")
    for phone in (bob, carol):
        switch.register(phone)
    await call_up(switch, alice, "1002")
    txn = refer(bob, bob.dialog(), "<sip:1003@softswitch>")
    await switch.settle(lambda: 202 in bob.responses(txn) and bool(carol.requests("INVITE")))
    alice.send_in_dialog("BYE")  # the transferee gives up while hearing ringback
    await switch.settle(lambda: len(switch.cdrs) == 2 and bye_count(bob) == 1)
    assert notifies(bob) == [100, 487]
    attempt, original = sorted(switch.cdrs, key=lambda c: c.source != "transfer")
    assert (attempt.source, attempt.disposition.value) == ("transfer", "cancelled")
    assert (original.disposition.value, original.hangup_side) == ("answered", "caller")
    assert switch.calls.calls == {} and switch.media.backends[0].load == 0


async def test_shutdown_during_a_transfer_ends_every_leg(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    carol = Phone(net, "1003", 5073, on_invite="ring")
    for phone in (bob, carol):
        switch.register(phone)
    await call_up(switch, alice, "1002")
    txn = refer(bob, bob.dialog(), "<sip:1003@softswitch>")
    await switch.settle(lambda: 202 in bob.responses(txn) and bool(carol.requests("INVITE")))
    await switch.calls.stop()
    await switch.settle(lambda: bye_count(alice) == 1 and bye_count(bob) == 1)
    assert len(switch.cdrs) == 2 and switch.calls.calls == {}


def invite_replacing(phone: Phone, dial: str, replaces: str) -> str:
    """An authenticated INVITE carrying ``Replaces: <replaces>`` (RFC 3891)."""
    uri = f"sip:{dial}@127.0.0.1:5060"
    txn = ""
    for challenge in (None, "yes"):
        extra = [("Replaces", replaces), ("Require", "replaces")]
        if challenge is not None:
            header = phone.last_response(407).headers.get("Proxy-Authenticate")
            assert header is not None
            extra.append(("Proxy-Authorization", phone.client.authorize(
                header, "INVITE", uri, phone.user, "secret")))
        request = phone.core.create_request(
            "INVITE", uri, from_=f"<sip:{phone.user}@softswitch>",
            to=f"<sip:{dial}@softswitch>", body=sdp(phone.port + 1000),
            content_type="application/sdp", extra=extra)
        txn = phone.core.send_request(request, NODE, phone.net.loop.time())
        phone.net.pump()
    return txn


async def test_invite_with_replaces_takes_over_a_held_call(net: Net, switch: Switch) -> None:
    alice, desk = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    mobile, carol = Phone(net, "1002", 5074), Phone(net, "1003", 5073)
    switch.register(alice)
    await call_up(switch, desk, "1001")
    held = desk.dialog()
    hold = desk.core.send_in_dialog(held, "INVITE", net.loop.time(),
                                    body=sdp(6072, direction="sendonly"),
                                    content_type="application/sdp")
    net.pump()
    moh = switch.calls.moh
    assert moh is not None
    await switch.settle(lambda: 200 in desk.responses(hold) and len(moh.playing) == 1)
    # Someone else's phone may not pick the call up; an unknown dialog is 481.
    value = str(Replaces(held.call_id, held.remote_tag, held.local_tag))
    stolen = invite_replacing(carol, "1001", value)
    unknown = invite_replacing(mobile, "1001", "nope;to-tag=a;from-tag=b")
    await switch.settle(lambda: 403 in carol.responses(stolen) and
                        481 in mobile.responses(unknown))
    assert len(switch.calls.calls) == 1 and bye_count(desk) == 0
    # The same user's other phone takes the call over: 200 for it, BYE for the desk.
    txn = invite_replacing(mobile, "1001", value)
    await switch.settle(lambda: 200 in mobile.responses(txn) and bye_count(desk) == 1)
    await switch.settle(lambda: len(switch.cdrs) == 1)
    assert bye_count(alice) == 0 and not moh.playing
    live = legs(switch)
    assert live["1002"].sip.dialog_id.call_id != held.call_id
    assert bridged(switch, live["1001"], live["1002"])
    assert switch.cdrs[0].tags == {"transferred_to": "1002", "transfer_mode": "replaces"}
    mobile.send_in_dialog("BYE")
    await switch.settle(lambda: bye_count(alice) == 1 and len(switch.cdrs) == 2)
    picked = switch.cdrs[1]
    assert (picked.caller, picked.callee, picked.source, picked.disposition.value) == (
        "1002", "1001", "transfer", "answered")
    assert switch.calls.calls == {} and switch.media.backends[0].load == 0


async def test_refer_through_a_trunk_is_forbidden(net: Net, switch: Switch) -> None:
    """Rule 2: a transfer never reaches a trunk (no way around trunk permissions), even
    where the transferor itself may dial out; the call goes on."""
    import tomllib

    from switch.router import DialPlan
    from switch.routing_config import DEFAULT_ROUTING_TOML, parse_routing

    text = DEFAULT_ROUTING_TOML.replace("enabled = false", "enabled = true")
    switch.calls.dialplan = DialPlan.from_config(parse_routing(tomllib.loads(text)))
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    switch.register(bob)
    await call_up(switch, alice, "1002")
    txn = refer(alice, alice.dialog(), "<sip:90123456@softswitch>")
    queue = refer(alice, alice.dialog(), "<sip:0@softswitch>")  # a queue: not transferable
    await switch.settle(lambda: bool(alice.responses(txn)) and bool(alice.responses(queue)))
    assert alice.responses(txn) == alice.responses(queue) == [403]
    reasons = [e.response.reason for e in alice.events
               if getattr(e, "transaction_id", None) == txn and hasattr(e, "response")]
    assert reasons and "trunk" in reasons[0], reasons
    live = legs(switch)
    assert set(live) == {"1001", "1002"} and bridged(switch, live["1001"], live["1002"])


async def test_music_bookkeeping_forgets_closed_channels(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    switch.register(bob)
    moh = switch.calls.moh
    assert moh is not None
    for _ in range(2):  # a held call that simply ends, twice
        await call_up(switch, alice, "1002")
        hold = alice.send_in_dialog("INVITE", sdp(6071, direction="sendonly"),
                                    "application/sdp")
        await switch.settle(lambda h=hold: 200 in alice.responses(h) and len(moh.playing) >= 1)
        alice.send_in_dialog("BYE")
        await switch.settle(lambda: switch.calls.calls == {})
        alice.events.clear()
    assert len(moh.playing) == 1  # the first call's channel was pruned at the second hold


async def test_semi_attended_transfer_while_the_target_rings(net: Net, switch: Switch) -> None:
    """REFER with Replaces naming the transferor's call that still rings (RFC 5589 §7,
    the "transfer while ringing" button): the transferee gets ringback, then the target."""
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    carol = Phone(net, "1003", 5073, on_invite="ring")
    for phone in (alice, carol):
        switch.register(phone)
    await call_up(switch, bob, "1001")
    call1 = bob.dialog()
    txn2 = bob.call("1003")
    await switch.settle(lambda: 183 in bob.responses(txn2) and bool(carol.requests("INVITE")))
    early = next(d for d in bob.core.dialogs if d != call1)
    replaces = Replaces(early.call_id, early.remote_tag, early.local_tag)
    txn = refer(bob, call1, f"<sip:1003@softswitch?Replaces={replaces.escaped()}>")
    await switch.settle(lambda: 202 in bob.responses(txn) and notifies(bob, call1) == [100, 200])
    await switch.settle(lambda: bye_count(bob) == 1 and 487 in bob.responses(txn2))
    host = switch.media.backends[0].host
    alice_leg = legs(switch)["1001"]
    assert alice_leg.media_id is not None
    await switch.settle(lambda: host.slot(alice_leg.media_id) in host.engine._tones)
    carol.accept()
    await switch.settle(lambda: "1003" in legs(switch) and
                        bridged(switch, alice_leg, legs(switch)["1003"]))
    assert bye_count(alice) == 0
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bye_count(carol) == 1 and len(switch.cdrs) == 3)
    by_source = {(c.source, c.disposition.value) for c in switch.cdrs}
    assert ("transfer", "answered") in by_source
    assert switch.calls.calls == {} and switch.media.backends[0].load == 0


async def test_semi_attended_transfer_nobody_answers(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    carol = Phone(net, "1003", 5073, on_invite="ring")
    for phone in (alice, carol):
        switch.register(phone)
    await call_up(switch, bob, "1001")
    call1 = bob.dialog()
    txn2 = bob.call("1003")
    await switch.settle(lambda: 183 in bob.responses(txn2) and bool(carol.requests("INVITE")))
    early = next(d for d in bob.core.dialogs if d != call1)
    replaces = Replaces(early.call_id, early.remote_tag, early.local_tag)
    refer(bob, call1, f"<sip:1003@softswitch?Replaces={replaces.escaped()}>")
    # no_answer_timeout_s = 1 in this fixture: the transferee's call ends cleanly.
    await switch.settle(lambda: bye_count(alice) == 1 and switch.calls.calls == {},
                        timeout=4.0)
    assert switch.media.backends[0].load == 0
    attempt = next(c for c in switch.cdrs if c.source == "transfer")
    assert (attempt.disposition.value, attempt.hangup_cause) == ("no_answer", "no_answer")


async def test_refers_during_a_transfer_are_refused(net: Net, switch: Switch) -> None:
    alice, bob = Phone(net, "1001", 5071), Phone(net, "1002", 5072)
    carol = Phone(net, "1003", 5073, on_invite="ring")
    for phone in (bob, carol):
        switch.register(phone)
    await call_up(switch, alice, "1002")
    first = refer(bob, bob.dialog(), "<sip:1003@softswitch>")
    await switch.settle(lambda: 202 in bob.responses(first) and bool(carol.requests("INVITE")))
    again = refer(bob, bob.dialog(), "<sip:1003@softswitch>")  # same leg: one at a time
    other = refer(alice, alice.dialog(), "<sip:1002@softswitch>")  # the transferee's turn
    await switch.settle(lambda: bool(bob.responses(again)) and bool(alice.responses(other)))
    assert bob.responses(again) == [491] and alice.responses(other) == [403]
    carol.accept()
    await switch.settle(lambda: notifies(bob) == [100, 200] and bye_count(bob) == 1)
    assert bridged(switch, legs(switch)["1001"], legs(switch)["1003"])
