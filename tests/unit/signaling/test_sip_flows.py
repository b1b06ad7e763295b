"""RFC 3665 call flows driven through two SipCores on a fake link (UacUasPair), including
lost, duplicated, delayed and reordered datagrams, with explicit time."""

from __future__ import annotations

from _sip_harness import UAS_ADDR, UacUasPair
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.events import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    DialogTerminated,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
)
from signaling.message import make_response
from signaling.timers import TimerConfig


def statuses(events: list) -> list[int]:
    return [e.response.status for e in events if isinstance(e, ResponseReceived)]


def establish(p: UacUasPair, *, ring: bool = True) -> tuple[str, RequestReceived]:
    _, tid = p.invite()
    p.run()
    [inv] = p.take("uas", RequestReceived)
    if ring:
        p.answer(inv, 180)
        p.run()
    p.answer(inv, 200, body=b"v=0\r\n")
    p.run()
    return tid, inv


# -- RFC 3665 §2.1: successful new registration ------------------------------------------
def test_rfc3665_registration_with_challenge() -> None:
    p = UacUasPair()
    _, tid = p.request("REGISTER", contact="<sip:alice@192.0.2.1:5060>",
                       extra=[("Expires", "7200")])
    p.run()
    [reg] = p.take("uas", RequestReceived)
    p.answer(reg, 401, extra=[("WWW-Authenticate", 'Digest realm="atlanta.example.com", '
                                                    'nonce="ea9c8e88df84f1cec4341ae6cbe5a359"')])
    p.run()
    [r401] = p.take("uac", ResponseReceived)
    assert r401.response.status == 401 and r401.transaction_id == tid
    _, _tid2 = p.request("REGISTER", contact="<sip:alice@192.0.2.1:5060>",
                        cseq=2, extra=[("Authorization", 'Digest username="alice"')])
    p.run()
    [reg2] = p.take("uas", RequestReceived)
    assert reg2.request.headers.get("Authorization")
    p.answer(reg2, 200, extra=[("Contact", "<sip:alice@192.0.2.1:5060>;expires=7200")])
    p.run()
    assert statuses(p.take("uac", ResponseReceived)) == [200]
    assert p.lines() == ["REGISTER sip:bob@192.0.2.2:5070 SIP/2.0", "SIP/2.0 401 Unauthorized",
                         "REGISTER sip:bob@192.0.2.2:5070 SIP/2.0", "SIP/2.0 200 OK"]
    p.advance(40.0)  # Timers K (UAC) and J (UAS) clear both tables
    assert p.uac.layer.live_count() == 0 and p.uas.layer.live_count() == 0


# -- RFC 3665 §3.1: successful session establishment, then BYE ---------------------------
def test_rfc3665_successful_session_and_bye() -> None:
    p = UacUasPair()
    _, _tid = p.invite()
    p.run()
    [inv] = p.take("uas", RequestReceived)
    p.advance(0.25)  # the TU is slow: the transaction sends 100 Trying at 200 ms
    p.answer(inv, 180)
    p.advance(1.0)
    p.answer(inv, 200, body=b"v=0\r\n")
    p.run()
    assert p.lines() == [
        "INVITE sip:bob@192.0.2.2:5070 SIP/2.0", "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing",
        "SIP/2.0 200 OK", "ACK sip:bob@192.0.2.2:5070 SIP/2.0"]
    assert statuses(p.uac_events) == [100, 180, 200]
    [ack] = p.take("uas", AckReceived)
    assert ack.request.headers.get("CSeq") == "1 ACK"
    [uac_dialog] = p.uac.dialogs.values()
    [uas_dialog] = p.uas.dialogs.values()
    assert uac_dialog.id.local_tag == uas_dialog.id.remote_tag
    assert uac_dialog.remote_target == f"sip:bob@{UAS_ADDR.host}:{UAS_ADDR.port}"
    p.advance(5.0)
    assert p.lines().count("SIP/2.0 200 OK") == 1  # the ACK stopped 2xx retransmission
    # Bob hangs up (UAS sends BYE in its dialog).
    bye_tid = p.uas.send_in_dialog(uas_dialog.id, "BYE", p.now)
    p.run()
    [bye] = p.take("uac", RequestReceived)
    assert bye.dialog_id == uac_dialog.id and bye.request.headers.get("CSeq") == "1 BYE"
    p.uac.send_response(make_response(bye.request, 200), bye.transaction_id, p.now)
    p.run()
    assert [e.dialog_id for e in p.take("uac", DialogTerminated)] == [uac_dialog.id]
    assert [e.transaction_id for e in p.take("uas", ResponseReceived)] == [bye_tid]
    assert [e.reason for e in p.take("uas", DialogTerminated)] == ["bye"]
    assert p.uac.dialogs == {} and p.uas.dialogs == {}
    p.advance(64.0)
    assert p.uac.next_deadline() is None and p.uas.next_deadline() is None


# -- RFC 3665 §3.x unsuccessful: busy, no answer (CANCEL), timeout -------------------------
def test_rfc3665_busy_non2xx_acked_by_the_transaction() -> None:
    p = UacUasPair()
    _, _tid = p.invite()
    p.run()
    [inv] = p.take("uas", RequestReceived)
    p.answer(inv, 486)
    p.run()
    assert p.lines()[-2:] == ["SIP/2.0 486 Busy Here", "ACK sip:bob@192.0.2.2:5070 SIP/2.0"]
    assert statuses(p.uac_events) == [486]
    assert p.uas_events == []  # the ACK for a non-2xx stays in the transaction
    p.advance(40.0)
    assert p.uac.layer.live_count() == 0 and p.uas.layer.live_count() == 0


def test_rfc3665_no_answer_cancel() -> None:
    p = UacUasPair()
    _, tid = p.invite()
    p.run()
    [inv] = p.take("uas", RequestReceived)
    p.answer(inv, 180)
    p.advance(3.0)
    cancel_tid = p.uac.cancel(tid, p.now)
    assert cancel_tid is not None
    p.run()
    assert p.lines()[-4:] == ["CANCEL sip:bob@192.0.2.2:5070 SIP/2.0", "SIP/2.0 200 OK",
                              "SIP/2.0 487 Request Terminated",
                              "ACK sip:bob@192.0.2.2:5070 SIP/2.0"]
    [c] = p.take("uas", CancelReceived)
    assert c.transaction_id == inv.transaction_id
    got = {(e.transaction_id, e.response.status) for e in p.take("uac", ResponseReceived)}
    assert (cancel_tid, 200) in got and (tid, 487) in got
    assert p.uac.dialogs == {} and p.uas.dialogs == {}  # early dialogs ended


def test_cancel_waits_for_a_provisional_response() -> None:
    p = UacUasPair(timers=TimerConfig(trying_delay=None))
    _, tid = p.invite()
    p.run()
    [inv] = p.take("uas", RequestReceived)
    assert p.uac.cancel(tid, p.now) is not None
    p.run()
    assert not any(line.startswith("CANCEL") for line in p.lines())  # §9.1
    p.answer(inv, 180)
    p.run()
    assert "CANCEL sip:bob@192.0.2.2:5070 SIP/2.0" in p.lines()
    assert "SIP/2.0 487 Request Terminated" in p.lines()


def test_invite_to_nowhere_times_out_after_64_t1() -> None:
    p = UacUasPair()
    p.link.add("INVITE", "drop", times=100)
    _, tid = p.invite()
    p.advance(100.0)
    assert p.lines().count("INVITE sip:bob@192.0.2.2:5070 SIP/2.0") == 7  # A: 0.5..31.5
    [t] = p.take("uac", TransactionTimedOut)
    assert t.transaction_id == tid and t.method == "INVITE"


# -- lost, duplicated, reordered ---------------------------------------------------------
def test_lost_invite_is_retransmitted_and_duplicates_reach_the_tu_once() -> None:
    p = UacUasPair()
    p.link.add("INVITE", "drop")
    p.link.add("INVITE", "dup")
    p.invite()
    p.advance(0.6)
    assert len(p.take("uas", RequestReceived)) == 1
    assert p.lines().count("INVITE sip:bob@192.0.2.2:5070 SIP/2.0") == 2


def test_lost_2xx_is_retransmitted_by_the_uas_core_and_reacked() -> None:
    p = UacUasPair()
    p.link.add("SIP/2.0 200", "drop")
    _tid, _inv = establish(p)
    assert p.take("uas", AckReceived) == []
    p.advance(0.6)  # 2xx retransmitted at T1 (§13.3.1.4)
    assert p.lines().count("SIP/2.0 200 OK") == 2
    assert len(p.take("uas", AckReceived)) == 1
    assert statuses(p.uac_events).count(200) == 1


def test_lost_ack_makes_the_2xx_repeat_and_the_uac_re_acks_without_new_events() -> None:
    p = UacUasPair()
    p.link.add("ACK", "drop", times=2)
    establish(p)
    p.advance(2.0)  # 2xx at 0.5 and 1.5 after the first: ACK #2 lost, ACK #3 arrives
    assert p.lines().count("SIP/2.0 200 OK") == 3
    assert p.lines().count("ACK sip:bob@192.0.2.2:5070 SIP/2.0") == 3
    assert len(p.take("uas", AckReceived)) == 1
    assert statuses(p.uac_events).count(200) == 1


def test_2xx_never_acked_gives_up_after_64_t1() -> None:
    p = UacUasPair()
    p.link.add("ACK", "drop", times=1000)
    establish(p)
    p.advance(40.0)
    # sent at 0 and then T1, 2T1, 4T1, T2, T2, ... until 64*T1
    assert p.lines().count("SIP/2.0 200 OK") == 11
    [timeout] = p.take("uas", AckTimedOut)
    assert timeout.dialog_id in p.uas.dialogs  # confirmed; the application sends BYE


def test_reordered_180_after_200_is_absorbed() -> None:
    p = UacUasPair()
    p.link.add("SIP/2.0 180", "delay", delay=0.05)
    _, _tid = p.invite()
    p.run()
    [inv] = p.take("uas", RequestReceived)
    p.answer(inv, 180)
    p.answer(inv, 200, body=b"v=0\r\n")
    p.advance(0.1)
    assert statuses(p.uac_events) == [200]
    assert len(p.uac.dialogs) == 1


def test_retransmitted_bye_after_dialog_end_is_answered_by_the_transaction() -> None:
    p = UacUasPair()
    establish(p)
    [d] = p.uac.dialogs
    p.link.add("SIP/2.0 200", "drop")  # the 200 to BYE is lost once
    p.uac.send_in_dialog(d, "BYE", p.now)
    p.run()
    [bye] = p.take("uas", RequestReceived)
    p.answer(bye, 200)
    p.advance(0.6)  # Timer E retransmits the BYE; the UAS transaction answers it
    assert p.lines().count("BYE sip:bob@192.0.2.2:5070 SIP/2.0") == 2
    assert p.take("uas", RequestReceived) == []
    assert p.uac.dialogs == {} and p.uas.dialogs == {}


# -- dialogs in use: re-INVITE target refresh, UPDATE, glare, 481 --------------------------
def test_reinvite_refreshes_the_target_and_acks_with_its_cseq() -> None:
    p = UacUasPair()
    establish(p)
    p.take("uac", ResponseReceived)
    p.take("uas", AckReceived)
    [did] = p.uac.dialogs
    p.uac.send_in_dialog(did, "INVITE", p.now, body=b"v=0\r\n", content_type="application/sdp")
    p.run()
    [re] = p.take("uas", RequestReceived)
    assert re.dialog_id is not None and re.request.headers.get("CSeq") == "2 INVITE"
    p.answer(re, 200, extra=[("Contact", f"<sip:bob@{UAS_ADDR.host}:{UAS_ADDR.port};ob>")])
    p.run()
    assert p.uac.dialogs[did].remote_target == f"sip:bob@{UAS_ADDR.host}:{UAS_ADDR.port};ob"
    [ack] = p.take("uas", AckReceived)
    assert ack.request.headers.get("CSeq") == "2 ACK"


def test_update_in_dialog() -> None:
    p = UacUasPair()
    establish(p)
    [did] = p.uas.dialogs
    p.uas.send_in_dialog(did, "UPDATE", p.now, body=b"v=0\r\n", content_type="application/sdp")
    p.run()
    [upd] = p.take("uac", RequestReceived)
    p.uac.send_response(make_response(upd.request, 200), upd.transaction_id, p.now)
    p.run()
    assert statuses(p.take("uas", ResponseReceived)) == [200]


def test_reinvite_glare_gets_491_on_both_sides() -> None:
    p = UacUasPair()
    establish(p)
    [a] = p.uac.dialogs
    [b] = p.uas.dialogs
    p.uac.send_in_dialog(a, "INVITE", p.now)
    p.uas.send_in_dialog(b, "INVITE", p.now)
    p.run()
    assert statuses(p.take("uac", ResponseReceived)).count(491) == 1
    assert statuses(p.take("uas", ResponseReceived)).count(491) == 1


def test_request_in_unknown_dialog_gets_481() -> None:
    p = UacUasPair()
    establish(p)
    [did] = p.uac.dialogs
    p.uas.dialogs.clear()  # Bob forgot the call (restart)
    p.uac.send_in_dialog(did, "INFO", p.now)
    p.run()
    assert statuses(p.take("uac", ResponseReceived))[-1:] == [481]
    assert p.uac.dialogs == {}  # §12.2.1.2: a 481 ends the dialog


def test_delayed_original_invite_arrives_after_its_retransmission() -> None:
    p = UacUasPair()
    p.link.add("INVITE", "delay", delay=5.0)  # the first copy is stuck in the network
    p.invite()
    p.advance(6.0)
    # Timer A's copy at 0.5 s reached Bob first; the late original is absorbed (§17.2.3)
    # and answered with the last provisional response.
    assert len(p.take("uas", RequestReceived)) == 1
    assert p.lines().count("SIP/2.0 100 Trying") == 2
    assert p.lines().count("INVITE sip:bob@192.0.2.2:5070 SIP/2.0") == 2  # A stopped by 100


def test_cancelled_invite_without_final_response_is_given_up_after_64_t1() -> None:
    p = UacUasPair()
    p.link.add("SIP/2.0 487", "drop", times=1000)  # the 487 never arrives
    _, tid = p.invite()
    p.run()
    [inv] = p.take("uas", RequestReceived)
    p.answer(inv, 180)
    p.run()
    p.uac.cancel(tid, p.now)
    start = p.now
    p.advance(31.0)
    assert p.take("uac", TransactionTimedOut) == []
    p.advance(2.0)
    [t] = p.take("uac", TransactionTimedOut)
    assert t.transaction_id == tid and start + 32.0 <= p.now
    assert p.uac.dialogs == {}


# -- property: a whole call over a lossy, duplicating, reordering link -------------------
@settings(max_examples=200, deadline=None)
@given(fates=st.lists(st.sampled_from(["ok", "ok", "ok", "drop", "dup", "late"]),
                      min_size=1, max_size=40))
def test_call_over_a_chaotic_link_never_duplicates_events_or_leaks(fates: list[str]) -> None:
    p = UacUasPair()
    queue = list(fates)

    def chaos(line: str) -> list[float]:
        fate = queue.pop(0) if queue else "ok"
        return {"ok": [0.0], "drop": [], "dup": [0.0, 0.01], "late": [0.7]}[fate]

    p.link.chaos = chaos
    _, tid = p.invite()
    seen: dict[tuple[str, str], int] = {}
    bye_sent = False
    for _ in range(400):
        p.advance(0.25)
        for ev in p.take("uas", RequestReceived):
            key = (ev.request.method, ev.request.headers.get("CSeq") or "")
            seen[key] = seen.get(key, 0) + 1
            if ev.request.method == "INVITE":
                p.answer(ev, 180)
                p.answer(ev, 200, body=b"v=0\r\n")
            else:
                p.answer(ev, 200)
        oks = [e for e in p.take("uac", ResponseReceived)
               if e.response.status == 200 and e.transaction_id == tid]
        assert len(oks) <= 1  # 2xx retransmissions are absorbed by the UAC core
        if oks and not bye_sent:
            [did] = p.uac.dialogs
            p.uac.send_in_dialog(did, "BYE", p.now)
            bye_sent = True
        if p.now > 90.0:
            break
    assert all(count == 1 for count in seen.values()), seen
    acks = p.take("uas", AckReceived)
    assert len(acks) <= 1
    # Everything has timed out or completed: no transaction or timer is left behind.
    assert p.uac.layer.live_count() == 0 and p.uas.layer.live_count() == 0
    assert p.uac.next_deadline() is None and p.uas.next_deadline() is None
    assert p.uac.dialogs == {}  # BYE answered or timed out ends the UAC's dialog


def test_rejected_reinvite_does_not_leave_the_dialog_stuck() -> None:
    p = UacUasPair()
    establish(p)
    [did] = p.uac.dialogs
    p.uac.send_in_dialog(did, "INVITE", p.now, extra=[("Require", "nosuchext")])
    p.run()
    assert statuses(p.take("uac", ResponseReceived))[-1] == 420
    p.uac.send_in_dialog(did, "INVITE", p.now)  # the next re-INVITE is processed normally
    p.run()
    [re] = p.take("uas", RequestReceived)
    assert re.request.headers.get("CSeq") == "3 INVITE"
    overlapping = p.uac.dialogs[did].create_request("INVITE", p.uac.via())
    p.uac.send_request(overlapping, UAS_ADDR, p.now)
    p.run()
    # §14.2: a second INVITE while the first is unanswered: 500 with Retry-After 0-10 s.
    [r500] = [e for e in p.take("uac", ResponseReceived) if e.response.status == 500]
    assert 0 <= int(r500.response.headers.get("Retry-After") or "-1") <= 10


def test_call_over_tcp_needs_no_hop_by_hop_retransmission() -> None:
    p = UacUasPair(transport="tcp")
    p.invite()
    p.advance(5.0)  # over UDP Timer A would have re-sent the INVITE 3 times by now
    assert p.lines().count("INVITE sip:bob@192.0.2.2:5070 SIP/2.0") == 1
    [inv] = p.take("uas", RequestReceived)
    assert inv.source.transport == "tcp" and inv.source.connection_id == 1
    p.link.add("ACK", "drop")  # a lost ACK: possible end to end even if this hop is TCP
    p.answer(inv, 200, body=b"v=0\r\n")
    p.advance(1.0)
    # §13.3.1.4: the UAS core re-sends its 2xx over TCP too, and the UAC re-ACKs.
    assert p.lines().count("SIP/2.0 200 OK") == 2
    assert len(p.take("uas", AckReceived)) == 1
    [did] = p.uac.dialogs
    p.uac.send_in_dialog(did, "BYE", p.now)
    p.run()
    [bye] = p.take("uas", RequestReceived)
    p.answer(bye, 200)
    p.run()
    # Timers J and K are zero over TCP: only the INVITE transactions (Timers L, M) remain.
    assert {t.method for t in p.uas.layer.server.values()} == {"INVITE"}
    assert {t.method for t in p.uac.layer.client.values()} == {"INVITE"}
    p.advance(40.0)
    assert p.uac.layer.live_count() == 0 and p.uas.layer.live_count() == 0


def test_uas_side_reinvite_with_the_peers_cseq_is_acked() -> None:
    """The UAS of a dialog re-INVITEs with its own first CSeq (1), equal to the CSeq of the
    ACK it received for the initial INVITE: the two sequence spaces are separate (§12.2.1.1),
    so the 200 is a new response that must be ACKed, not a retransmission."""
    p = UacUasPair()
    establish(p)
    p.take("uac", ResponseReceived)
    [ack] = p.take("uas", AckReceived)
    assert ack.request.headers.get("CSeq") == "1 ACK"
    [did] = p.uas.dialogs
    p.uas.send_in_dialog(did, "INVITE", p.now, body=b"v=0\r\n", content_type="application/sdp")
    p.run()
    [re] = p.take("uac", RequestReceived)
    assert re.request.headers.get("CSeq") == "1 INVITE"
    answer = make_response(re.request, 200, body=b"v=0\r\n",
                           extra=[("Contact", "<sip:alice@192.0.2.1:5060>"),
                                  ("Content-Type", "application/sdp")])
    p.uac.send_response(answer, re.transaction_id, p.now)
    p.run()
    assert statuses(p.take("uas", ResponseReceived)) == [200]
    assert p.lines()[-1].startswith("ACK ")
    [ack2] = p.take("uac", AckReceived)
    assert ack2.request.headers.get("CSeq") == "1 ACK"
