"""SipCore receive-side rules (RFC 3261 §8.2, §18.2, RFC 3581): each case is a datagram
in and the exact automatic answer out."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.core import DEFAULT_ALLOW, CoreConfig, SipCore
from signaling.errors import LocalSipError
from signaling.events import Address, RequestReceived
from signaling.message import Response, make_response
from signaling.parser import parse_message
from signaling.timers import TimerConfig

ME = Address("udp", "192.0.2.1", 5060)
PHONE = Address("udp", "203.0.113.50", 40123)


def core(**kw: object) -> SipCore:
    return SipCore(CoreConfig(host=ME.host, port=ME.port, **kw),  # type: ignore[arg-type]
                   rng=Random(3))


def raw(method: str = "OPTIONS", *, uri: str = "sip:svc@192.0.2.1", branch: str = "z9hG4bKa1",
        via_host: str = "10.0.0.5:5060", via_params: str = "", to_tag: str = "",
        cseq: int = 1, extra: str = "", body: str = "", call_id: str = "c1@10.0.0.5",
        max_forwards: int = 70, more_vias: str = "") -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host};branch={branch}{via_params}\r\n"
        f"{more_vias}"
        f"Max-Forwards: {max_forwards}\r\n"
        f"To: <sip:svc@192.0.2.1>{tag}\r\n"
        "From: <sip:phone@example.com>;tag=ph1\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def answers(c: SipCore) -> list[tuple[Response, Address]]:
    out = []
    for data, dest in c.datagrams_to_send():
        msg = parse_message(data)
        assert isinstance(msg, Response)
        out.append((msg, dest))
    return out


def one_answer(c: SipCore, data: bytes, source: Address = PHONE) -> Response:
    c.handle_datagram(data, source, 1.0)
    got = answers(c)
    assert len(got) == 1, got
    assert c.events() == []  # answered by the core, never shown to the application
    return got[0][0]


def test_options_answered_with_capabilities() -> None:
    c = core(supported=("path",))
    r = one_answer(c, raw())
    assert r.status == 200 and r.to_tag
    assert "REGISTER" in (r.headers.get("Allow") or "")
    assert "application/sdp" in (r.headers.get("Accept") or "")
    assert r.headers.get("Supported") == "path"
    # Max-Forwards 0 does not stop an OPTIONS addressed to us (§11, §16.3 item 3).
    assert one_answer(c, raw(branch="z9hG4bKa2", max_forwards=0, cseq=2)).status == 200


def test_options_passed_up_when_the_application_wants_them() -> None:
    c = core(answer_options=False)
    c.handle_datagram(raw(), PHONE, 1.0)
    [ev] = c.events()
    assert isinstance(ev, RequestReceived) and ev.request.method == "OPTIONS"


def test_max_forwards_zero_is_483() -> None:
    assert one_answer(core(), raw("INFO", max_forwards=0)).status == 483


def test_unknown_method_501_and_known_not_allowed_405_with_allow() -> None:
    c = core()
    r = one_answer(c, raw("FOO"))
    assert r.status == 501 and "INVITE" in (r.headers.get("Allow") or "")
    r = one_answer(c, raw("SUBSCRIBE", branch="z9hG4bKs"))
    assert r.status == 405 and r.headers.get("Allow") == ", ".join(sorted(c.allow))
    c.allow = {"REGISTER"}  # the core still handles ACK, CANCEL and OPTIONS itself
    r = one_answer(c, raw("INFO", branch="z9hG4bKi"))
    assert r.status == 405 and r.headers.get("Allow") == "ACK, CANCEL, OPTIONS, REGISTER"
    assert one_answer(c, raw(branch="z9hG4bKo")).status == 200
    c.allow = set(DEFAULT_ALLOW)
    c.allow.add("SUBSCRIBE")
    c.handle_datagram(raw("SUBSCRIBE", branch="z9hG4bKs2", cseq=9), PHONE, 1.0)
    assert [type(e) for e in c.events()] == [RequestReceived]


def test_unsupported_uri_scheme_416() -> None:
    assert one_answer(core(), raw("MESSAGE", uri="urn:service:sos")).status == 416


def test_require_unknown_option_420_with_unsupported() -> None:
    r = one_answer(core(supported=("timer",)),
                   raw("INFO", extra="Require: timer, 100rel, foo\r\n"))
    assert r.status == 420 and r.headers.get("Unsupported") == "100rel, foo"


def test_unsupported_body_415_with_accept_and_accept_encoding() -> None:
    c = core()
    r = one_answer(c, raw("INFO", extra="Content-Type: application/xml\r\n", body="<x/>"))
    assert r.status == 415 and "application/sdp" in (r.headers.get("Accept") or "")
    r = one_answer(c, raw("INFO", branch="z9hG4bKe", cseq=2, body="v=0\r\n",
                          extra="Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n"))
    assert r.status == 415 and r.headers.get("Accept-Encoding") == "identity"


def test_unknown_dialog_481() -> None:
    assert one_answer(core(), raw("BYE", to_tag="nope")).status == 481


def test_merged_request_482() -> None:
    c = core()
    c.handle_datagram(raw("INFO", branch="z9hG4bKfirst"), PHONE, 1.0)
    assert len(c.events()) == 1
    # Same From tag, Call-ID and CSeq, new branch: it forked and came back (§8.2.2.2).
    r = one_answer(c, raw("INFO", branch="z9hG4bKsecond"), Address("udp", "198.51.100.2", 5060))
    assert r.status == 482


def test_our_own_branch_in_a_via_is_a_loop_482() -> None:
    c = core()
    out = c.create_request("INFO", "sip:x@198.51.100.9", from_="<sip:me@192.0.2.1>",
                           to="<sip:x@198.51.100.9>")
    c.send_request(out, Address("udp", "198.51.100.9", 5060), 0.0)
    c.datagrams_to_send()
    looped = bytes(out).replace(b"Via: ", b"Via: SIP/2.0/UDP 198.51.100.9;branch=z9hG4bKpx, ", 1)
    r = one_answer(c, looped, Address("udp", "198.51.100.9", 5060))
    assert r.status == 482


def test_malformed_header_gets_400_with_a_reason_naming_it() -> None:
    r = one_answer(core(), raw("INFO", call_id="bad call id"))
    assert r.status == 400 and r.reason.startswith("Bad Request")
    assert "Call-ID" in r.reason


def test_unparsable_datagram_answered_when_possible_else_dropped() -> None:
    c = core()
    bad_length = raw("INFO").replace(b"Content-Length: 0", b"Content-Length: 99")
    c.handle_datagram(bad_length, PHONE, 1.0)
    [(r, dest)] = answers(c)
    assert r.status == 400 and dest == PHONE and r.headers.get("Warning")
    c.handle_datagram(b"\x00\xffgarbage\r\n\r\n", PHONE, 1.0)
    c.handle_datagram(raw("ACK").replace(b"Content-Length: 0", b"Content-Length: 99"), PHONE, 1)
    assert answers(c) == [] and c.stats["parse_errors"] == 3


def test_received_and_rport_route_the_response_to_the_source() -> None:
    c = core()
    r_dest = None
    c.handle_datagram(raw("INFO", via_params=";rport"), PHONE, 1.0)
    [ev] = c.events()
    assert isinstance(ev, RequestReceived)
    via = ev.request.top_via
    assert via.received == "203.0.113.50" and via.rport == 40123
    c.send_response(make_response(ev.request, 200, to_tag="t"), ev.transaction_id, 1.1)
    [(resp, r_dest)] = answers(c)
    assert r_dest == Address("udp", "203.0.113.50", 40123)
    assert resp.top_via.received == "203.0.113.50"
    # Without rport: the received address at the sent-by port (§18.2.2).
    c.handle_datagram(raw("INFO", branch="z9hG4bKb2", cseq=2), PHONE, 2.0)
    [ev] = c.events()
    c.send_response(make_response(ev.request, 200, to_tag="t"), ev.transaction_id, 2.1)
    [(_, dest)] = answers(c)
    assert dest == Address("udp", "203.0.113.50", 5060)


def test_retransmission_absorbed_and_answered_from_the_transaction() -> None:
    c = core()
    c.handle_datagram(raw("INFO"), PHONE, 1.0)
    c.handle_datagram(raw("INFO"), PHONE, 1.2)
    [ev] = c.events()
    assert answers(c) == []
    c.send_response(make_response(ev.request, 202, to_tag="t"), ev.transaction_id, 1.3)
    c.handle_datagram(raw("INFO"), PHONE, 1.5)
    assert [r.status for r, _ in answers(c)] == [202, 202] and c.events() == []
    with pytest.raises(LocalSipError):
        c.send_response(make_response(ev.request, 200), ev.transaction_id, 1.6)
    with pytest.raises(LocalSipError):
        c.send_response(make_response(ev.request, 200), "no-such-transaction", 1.6)
    # Timer J (32 s) later the transaction is gone.
    c.handle_timer(1.3 + 32.0)
    assert c.layer.live_count() == 0 and c.next_deadline() is None


def test_reliable_transport_forgets_server_transaction_at_once() -> None:
    c = core()
    tcp = Address("tcp", "203.0.113.50", 40999, connection_id=12)
    c.handle_datagram(raw("INFO").replace(b"UDP", b"TCP"), tcp, 1.0)
    [ev] = c.events()
    c.send_response(make_response(ev.request, 200, to_tag="t"), ev.transaction_id, 1.1)
    [(_, dest)] = answers(c)
    assert dest == tcp  # same connection (§18.2.2)
    assert c.layer.live_count() == 0


def test_stray_ack_cancel_and_response() -> None:
    c = core()
    c.handle_datagram(raw("ACK", to_tag="zz"), PHONE, 1.0)
    assert answers(c) == [] and c.events() == [] and c.stats["stray_acks"] == 1
    assert one_answer(c, raw("CANCEL", branch="z9hG4bKnothing")).status == 481
    stray = make_response(parse_message(raw("INFO")), 200)  # type: ignore[arg-type]
    c.handle_datagram(bytes(stray), PHONE, 1.0)
    assert c.events() == [] and c.stats["stray_responses"] == 1


def test_invite_answered_by_application_with_dialog_and_cancel() -> None:
    c = core(timers=TimerConfig(trying_delay=0.0))
    invite = raw("INVITE", extra="Contact: <sip:phone@10.0.0.5>\r\n")
    c.handle_datagram(invite, PHONE, 1.0)
    assert [r.status for r, _ in answers(c)] == [100]  # 100 Trying at once
    [ev] = c.events()
    c.send_response(make_response(ev.request, 180, to_tag="abc"), ev.transaction_id, 1.1)
    assert len(c.dialogs) == 1  # early dialog from the 180 with a To tag
    cancel = raw("CANCEL", extra="")
    c.handle_datagram(cancel, PHONE, 1.2)
    statuses = sorted(r.status for r, _ in answers(c))
    assert statuses == [180, 200, 487]
    kinds = [type(e).__name__ for e in c.events()]
    assert kinds == ["DialogTerminated", "CancelReceived"]
    assert c.dialogs == {}


def test_2xx_is_retransmitted_even_over_tcp_until_the_ack() -> None:
    c = core()
    tcp = Address("tcp", "203.0.113.50", 40999, connection_id=5)
    invite = raw("INVITE", extra="Contact: <sip:phone@10.0.0.5;transport=tcp>\r\n")
    c.handle_datagram(invite.replace(b"UDP", b"TCP"), tcp, 1.0)
    [ev] = c.events()
    ok = make_response(ev.request, 200, to_tag="dlg", extra=[("Contact", "<sip:svc@192.0.2.1>")])
    c.send_response(ok, ev.transaction_id, 1.0)
    c.handle_timer(1.5)  # §13.3.1.4: end to end, so also over a reliable first hop
    assert [r.status for r, _ in answers(c)] == [200, 200]
    ack = raw("ACK", branch="z9hG4bKack", to_tag="dlg").replace(b"UDP", b"TCP")
    c.handle_datagram(ack, tcp, 1.6)
    assert [type(e).__name__ for e in c.events()] == ["AckReceived"]
    c.handle_datagram(ack, tcp, 1.7)  # a duplicate ACK is not reported twice
    assert c.events() == []
    c.handle_timer(40.0)
    assert answers(c) == [] and c.events() == []


# -- robustness: no input makes the core raise (the driver must never crash) ---------------
_SEEDS = [
    raw("INVITE", extra="Contact: <sip:phone@10.0.0.5>\r\n", body="v=0\r\n",
        via_params=";rport").replace(b"Content-Length", b"Content-Type: application/sdp\r\n"
                                     b"Content-Length"),
    raw("ACK", to_tag="x"), raw("CANCEL"), raw("BYE", to_tag="y"), raw("REGISTER"),
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\nTo: <sip:a@b>;tag=1"
    b"\r\nFrom: <sip:a@b>;tag=2\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
]


@settings(max_examples=400, deadline=None)
@given(seed=st.sampled_from(_SEEDS), cuts=st.lists(
    st.tuples(st.integers(0, 400), st.integers(0, 20), st.binary(max_size=8)), max_size=4))
def test_mutated_datagrams_never_raise(seed: bytes, cuts: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(seed)
    for pos, length, insert in cuts:
        pos %= len(data) + 1
        data[pos:pos + length] = insert
    c = core()
    for t in (1.0, 1.1):  # twice: the second copy exercises the retransmission path
        c.handle_datagram(bytes(data), PHONE, t)
    for ev in c.events():
        if isinstance(ev, RequestReceived) and ev.request.method != "ACK":
            c.send_response(make_response(ev.request, 200, to_tag="t"), ev.transaction_id, 1.2)
    c.handle_timer(100.0)
    for resp, _ in answers(c):
        assert 100 <= resp.status < 700


def test_rfc2543_peer_without_magic_cookie_is_matched_by_the_fallback() -> None:
    c = core()
    invite = raw("INVITE", branch="12345", extra="Contact: <sip:old@10.0.0.5>\r\n")
    c.handle_datagram(invite, PHONE, 1.0)
    c.handle_datagram(invite, PHONE, 1.1)  # retransmission: same URI, tags, Call-ID, CSeq, Via
    [ev] = c.events()
    c.send_response(make_response(ev.request, 486, to_tag="busy"), ev.transaction_id, 1.2)
    ack = raw("ACK", branch="12345", to_tag="busy")
    c.handle_datagram(ack, PHONE, 1.3)  # ACK for the 486 matches the INVITE transaction
    assert [r.status for r, _ in answers(c)] == [486] and c.events() == []
    txn = c.layer.server[ev.transaction_id]
    assert txn.state.value == "Confirmed"


def test_stream_messages_go_through_handle_message() -> None:
    c = core()
    tcp = Address("tcp", "198.51.100.4", 50000, connection_id=77)
    msg = parse_message(raw("INFO").replace(b"UDP", b"TCP"), datagram=False)
    c.handle_message(msg, tcp, 1.0)
    [ev] = c.events()
    assert ev.source == tcp
    c.send_response(make_response(ev.request, 200, to_tag="t"), ev.transaction_id, 1.0)
    [(_, dest)] = answers(c)
    assert dest.connection_id == 77


def test_dialog_creating_response_gets_our_contact_when_the_application_omits_it() -> None:
    c = core()
    c.handle_datagram(raw("INVITE", extra="Contact: <sip:phone@10.0.0.5>\r\n"), PHONE, 1.0)
    [ev] = c.events()
    c.send_response(make_response(ev.request, 200, to_tag="d1"), ev.transaction_id, 1.0)
    [(ok, _)] = answers(c)
    assert ok.headers.get("Contact") == "<sip:192.0.2.1:5060>"
    [dialog] = c.dialogs.values()
    assert dialog.remote_target == "sip:phone@10.0.0.5" and dialog.role == "uas"


# -- UAC side driven by hand-made responses ---------------------------------------------
def _uac_invite(c: SipCore) -> tuple[str, bytes]:
    req = c.create_request("INVITE", "sip:bob@198.51.100.9", from_="<sip:me@192.0.2.1>",
                           to="<sip:bob@198.51.100.9>")
    tid = c.send_request(req, Address("udp", "198.51.100.9", 5060), 0.0)
    [(data, _)] = c.datagrams_to_send()
    return tid, data


def _reply(data: bytes, status: int, tag: str, contact: str = "<sip:bob@198.51.100.9>") -> bytes:
    req = parse_message(data)
    return bytes(make_response(req, status, to_tag=tag,  # type: ignore[arg-type]
                               extra=[("Contact", contact)]))


def test_forked_2xx_make_two_dialogs_each_acked_once() -> None:
    c = core()
    _tid, invite = _uac_invite(c)
    peer = Address("udp", "198.51.100.9", 5060)
    c.handle_datagram(_reply(invite, 200, "fork1"), peer, 0.1)
    c.handle_datagram(_reply(invite, 200, "fork2", "<sip:bob@198.51.100.10>"), peer, 0.2)
    c.handle_datagram(_reply(invite, 200, "fork1"), peer, 0.6)  # retransmission
    acks = [parse_message(d) for d, _ in c.datagrams_to_send()]
    assert [a.to_tag for a in acks] == ["fork1", "fork2", "fork1"]
    assert acks[0].branch != acks[1].branch  # each ACK for a 2xx is its own transaction
    assert bytes(acks[0]) == bytes(acks[2])  # the same ACK again for the retransmission
    oks = [e for e in c.events() if type(e).__name__ == "ResponseReceived"]
    assert [e.dialog_id.remote_tag for e in oks] == ["fork1", "fork2"]
    assert len(c.dialogs) == 2


def test_manual_ack_carries_the_answer_and_is_resent_for_retransmissions() -> None:
    c = core(auto_ack=False)
    _tid, invite = _uac_invite(c)
    peer = Address("udp", "198.51.100.9", 5060)
    c.handle_datagram(_reply(invite, 200, "t1"), peer, 0.1)
    assert c.datagrams_to_send() == []  # the application ACKs
    [ok] = [e for e in c.events() if type(e).__name__ == "ResponseReceived"]
    c.send_ack(ok.dialog_id, 1, 0.2, body=b"v=0\r\n", content_type="application/sdp")
    [(ack, dest)] = c.datagrams_to_send()
    assert ack.startswith(b"ACK sip:bob@198.51.100.9 SIP/2.0") and ack.endswith(b"v=0\r\n")
    assert dest == peer
    c.handle_datagram(_reply(invite, 200, "t1"), peer, 0.7)
    assert [d for d, _ in c.datagrams_to_send()] == [ack]
    assert c.events() == []


def test_transport_error_reported_for_the_transaction() -> None:
    c = core()
    tid, _ = _uac_invite(c)
    c.transport_error(tid, 0.1)
    [ev] = c.events()
    assert type(ev).__name__ == "TransportError" and ev.transaction_id == tid
    assert c.layer.live_count() == 0


def test_spiral_with_a_retargeted_request_uri_is_not_a_loop() -> None:
    c = core()
    out = c.create_request("INFO", "sip:x@198.51.100.9", from_="<sip:me@192.0.2.1>",
                           to="<sip:x@198.51.100.9>")
    c.send_request(out, Address("udp", "198.51.100.9", 5060), 0.0)
    c.datagrams_to_send()
    spiral = bytes(out).replace(b"Via: ", b"Via: SIP/2.0/UDP 198.51.100.9;branch=z9hG4bKpx, ", 1)
    spiral = spiral.replace(b"INFO sip:x@198.51.100.9", b"INFO sip:local-ext@192.0.2.1", 1)
    c.handle_datagram(spiral, Address("udp", "198.51.100.9", 5060), 1.0)
    assert [type(e).__name__ for e in c.events()] == ["RequestReceived"]
