"""Dialogs (RFC 3261 §12): creation on both sides, route sets from Record-Route, loose and
strict routing in request construction (§12.2.1.1), CSeq rules, target refresh, glare."""

from __future__ import annotations

import pytest

from signaling.dialog import Dialog, DialogId, DialogState, next_hop_uri
from signaling.errors import LocalSipError
from signaling.message import Request, Response, make_response
from signaling.parser import parse_message

# RFC 3261 §24.2: Alice's INVITE as Bob receives it (F6), after ss1 and ss2 record-routed.
F6_INVITE = (
    "INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP ss2.biloxi.example.com:5060;branch=z9hG4bK721e418c4.1\r\n"
    "Via: SIP/2.0/UDP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1"
    ";received=192.0.2.111\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK74bf9"
    ";received=192.0.2.101\r\n"
    "Max-Forwards: 68\r\n"
    "Record-Route: <sip:ss2.biloxi.example.com;lr>\r\n"
    "Record-Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    "Content-Length: 0\r\n\r\n"
)
# F16-like 200 OK as Alice receives it: Record-Route copied back by both proxies.
F_200 = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK74bf9"
    ";received=192.0.2.101\r\n"
    "Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    "To: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:bob@192.0.2.4>\r\n"
    "Content-Length: 0\r\n\r\n"
)
ALICE_INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    "Max-Forwards: 70\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    "Content-Length: 0\r\n\r\n"
)
VIA_A = "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnew1"
VIA_B = "SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnew2"


def req(text: str) -> Request:
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def res(text: str) -> Response:
    msg = parse_message(text.encode())
    assert isinstance(msg, Response)
    return msg


def uac_dialog() -> Dialog:
    return Dialog.from_uac(req(ALICE_INVITE), res(F_200))


def uas_dialog() -> Dialog:
    invite = req(F6_INVITE)
    ok = make_response(invite, 200, to_tag="314159",
                       extra=[("Contact", "<sip:bob@192.0.2.4>")])
    return Dialog.from_uas(invite, ok)


def test_uac_dialog_reverses_record_route_rfc3261_24_2() -> None:
    d = uac_dialog()
    assert d.id == DialogId("3848276298220188511@atlanta.example.com", "9fxced76sl", "314159")
    assert d.state is DialogState.CONFIRMED
    assert d.route_set == ["<sip:ss1.atlanta.example.com;lr>", "<sip:ss2.biloxi.example.com;lr>"]
    assert d.remote_target == "sip:bob@192.0.2.4"
    ack = d.create_ack(1, VIA_A)
    # F9 of §24.2: ACK to Bob's Contact, routed through ss1 then ss2.
    assert ack.start_line() == "ACK sip:bob@192.0.2.4 SIP/2.0"
    assert ack.headers.get_all("Route") == d.route_set
    assert ack.headers.get("CSeq") == "1 ACK"
    assert ack.to_tag == "314159" and ack.from_tag == "9fxced76sl"
    assert str(next_hop_uri(ack)) == "sip:ss1.atlanta.example.com;lr"
    bye = d.create_request("BYE", VIA_A)
    assert bye.headers.get("CSeq") == "2 BYE"  # local CSeq incremented (§12.2.1.1)


def test_uas_dialog_keeps_record_route_order_rfc3261_24_2() -> None:
    d = uas_dialog()
    assert d.id == DialogId("3848276298220188511@atlanta.example.com", "314159", "9fxced76sl")
    assert d.route_set == ["<sip:ss2.biloxi.example.com;lr>", "<sip:ss1.atlanta.example.com;lr>"]
    assert d.remote_target == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert d.local_seq is None and d.remote_seq == 1
    bye = d.create_request("BYE", VIA_B)
    # F13 of §24.2: Bob's BYE goes to Alice's Contact via ss2 then ss1, CSeq starts fresh.
    assert bye.start_line() == "BYE sip:alice@client.atlanta.example.com;transport=tcp SIP/2.0"
    assert bye.headers.get_all("Route") == d.route_set
    assert bye.headers.get("CSeq") == "1 BYE"
    assert bye.from_tag == "314159" and bye.to_tag == "9fxced76sl"
    assert bye.headers.get("From") == "Bob <sip:bob@biloxi.example.com>;tag=314159"


def test_strict_route_rfc3261_12_2_1_1_example() -> None:
    d = uac_dialog()
    d.route_set = ["<sip:proxy1>", "<sip:proxy2>", "<sip:proxy3;lr>", "<sip:proxy4>"]
    d.remote_target = "sip:user@remoteua"
    r = d.create_request("INFO", VIA_A)
    assert r.uri == "sip:proxy1"
    assert r.headers.get_all("Route") == [
        "<sip:proxy2>", "<sip:proxy3;lr>", "<sip:proxy4>", "<sip:user@remoteua>"]
    assert str(next_hop_uri(r)) == "sip:proxy2"


def test_no_route_set_goes_to_remote_target() -> None:
    d = uac_dialog()
    d.route_set = []
    r = d.create_request("UPDATE", VIA_A)
    assert r.uri == "sip:bob@192.0.2.4" and "Route" not in r.headers
    assert r.headers.get("Contact") is not None  # target refresh carries our Contact


def test_cseq_out_of_order_is_500_and_equal_or_higher_accepted() -> None:
    d = uas_dialog()
    info = req(F6_INVITE.replace("INVITE", "INFO").replace("1 INFO", "5 INFO")
               .replace("To: Bob <sip:bob@biloxi.example.com>",
                        "To: Bob <sip:bob@biloxi.example.com>;tag=314159"))
    assert d.check_request(info) is None and d.remote_seq == 5
    older = req(F6_INVITE.replace("1 INVITE", "3 BYE").replace("INVITE sip", "BYE sip"))
    status = d.check_request(older)
    assert status is not None and status[0] == 500
    ack = req(F6_INVITE.replace("1 INVITE", "1 ACK").replace("INVITE sip", "ACK sip"))
    assert d.check_request(ack) is None  # ACK shares the INVITE's CSeq


def test_glare_491_and_overlapping_incoming_invite_500() -> None:
    d = uas_dialog()
    d.create_request("INVITE", VIA_B)  # our re-INVITE is pending
    reinvite = req(F6_INVITE.replace("1 INVITE", "2 INVITE"))
    assert d.check_request(reinvite) == (491, "Request Pending")
    d.request_finished("INVITE", d.local_seq or 0)
    assert d.check_request(reinvite) is None  # now accepted, and pending inbound
    third = req(F6_INVITE.replace("1 INVITE", "3 INVITE"))
    status = d.check_request(third)
    assert status is not None and status[0] == 500
    d.incoming_invite_finished(2)
    assert d.check_request(third) is None


def test_update_glare_491() -> None:
    d = uac_dialog()
    d.create_request("UPDATE", VIA_A)
    upd = req(ALICE_INVITE.replace("INVITE", "UPDATE").replace("1 UPDATE", "7 UPDATE"))
    assert d.check_request(upd) == (491, "Request Pending")


def test_target_refresh_from_2xx_and_from_request() -> None:
    d = uac_dialog()
    reinvite = d.create_request("INVITE", VIA_A)
    ok = make_response(reinvite, 200, extra=[("Contact", "<sip:bob@198.51.100.7:5062>")])
    d.update_from_response(reinvite, ok)
    assert d.remote_target == "sip:bob@198.51.100.7:5062"
    info = d.create_request("INFO", VIA_A)
    ok_info = make_response(info, 200, extra=[("Contact", "<sip:elsewhere@198.51.100.9>")])
    d.update_from_response(info, ok_info)  # INFO is not a target refresh
    assert d.remote_target == "sip:bob@198.51.100.7:5062"
    u = uas_dialog()
    upd = req(F6_INVITE.replace("INVITE", "UPDATE").replace(
        "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>",
        "Contact: <sip:alice@203.0.113.5>"))
    u.refresh_target_from_request(upd)
    assert u.remote_target == "sip:alice@203.0.113.5"


def test_early_dialog_from_1xx_then_confirmed_by_2xx_with_new_route_set() -> None:
    invite = req(ALICE_INVITE)
    ringing = res(F_200.replace("200 OK", "180 Ringing").replace(
        "Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>\r\n",
        ""))
    d = Dialog.from_uac(invite, ringing)
    assert d.state is DialogState.EARLY and d.route_set == []
    d.update_from_response(invite, res(F_200))
    assert d.state is DialogState.CONFIRMED
    assert d.route_set[0] == "<sip:ss1.atlanta.example.com;lr>"


def test_misuse_is_a_local_error() -> None:
    d = uac_dialog()
    with pytest.raises(LocalSipError):
        d.create_request("ACK", VIA_A)
    with pytest.raises(LocalSipError):
        d.create_request("CANCEL", VIA_A)
    with pytest.raises(LocalSipError):
        Dialog.from_uac(req(ALICE_INVITE), make_response(req(ALICE_INVITE), 180))
