"""signaling.refer: Refer-To, Replaces and sipfrag, from the RFC examples."""

from __future__ import annotations

import pytest

from signaling.refer import (
    SIPFRAG,
    ReferError,
    Replaces,
    notify_headers,
    parse_refer_to,
    parse_sipfrag,
    refer_target,
    sipfrag,
)


def test_rfc3515_blind_refer_to() -> None:
    # RFC 3515 §2.1 examples.
    target = parse_refer_to("sip:alice@atlanta.example.com")
    assert target.user == "alice" and target.uri.host == "atlanta.example.com"
    assert target.replaces is None and not target.attended
    named = parse_refer_to('"Bob" <sip:bob@biloxi.example.net>')
    assert named.display == "Bob" and named.user == "bob"


def test_rfc3891_refer_to_with_embedded_replaces() -> None:
    # RFC 3891 §7.3 example: the Replaces value is %-escaped inside the URI.
    value = ("<sips:bob@biloxi.example.com?Replaces=12345%40192.168.118.3%3B"
             "to-tag%3D12345%3Bfrom-tag%3D5FFE-3994>")
    target = parse_refer_to(value)
    assert target.attended and target.user == "bob"
    assert target.replaces == Replaces("12345@192.168.118.3", "12345", "5FFE-3994")
    assert target.uri.headers == ()  # the target itself carries no headers any more
    assert str(target.uri) == "sips:bob@biloxi.example.com"


def test_rfc3891_replaces_header_forms() -> None:
    # RFC 3891 §6.1 examples.
    r = Replaces.parse("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff")
    assert (r.call_id, r.from_tag, r.to_tag, r.early_only) == (
        "98732@sip.example.com", "r33th4x0r", "ff87ff", False)
    e = Replaces.parse("12adf2f34456gs5;to-tag=12345;from-tag=54321;early-only")
    assert e.early_only and e.to_tag == "12345"
    assert Replaces.parse(str(e)) == e


def test_replaces_escaped_round_trip() -> None:
    r = Replaces("abc@10.0.0.1", "t1", "f-2")
    target = parse_refer_to(f"<sip:1003@switch?Replaces={r.escaped()}>")
    assert target.replaces == r


@pytest.mark.parametrize("value", [
    "98732@sip.example.com;from-tag=r33th4x0r",           # no to-tag
    "98732@sip.example.com;to-tag=a",                      # no from-tag
    ";to-tag=a;from-tag=b",                                # no Call-ID
    "x;to-tag=;from-tag=b",                                # empty tag
    "x;to-tag=a;to-tag=c;from-tag=b",                      # repeated
    "x y;to-tag=a;from-tag=b",                             # space in Call-ID
])
def test_bad_replaces_is_a_400(value: str) -> None:
    with pytest.raises(ReferError) as info:
        Replaces.parse(value)
    assert info.value.status_code == 400


def test_refer_to_count_and_syntax() -> None:
    with pytest.raises(ReferError) as missing:
        refer_target([])
    assert missing.value.status_code == 400 and "Refer-To" in missing.value.reason
    with pytest.raises(ReferError):
        refer_target(["<sip:a@h>", "<sip:b@h>"])
    with pytest.raises(ReferError) as bad:
        refer_target(["<sip:a@h"])
    assert bad.value.status_code == 400
    with pytest.raises(ReferError) as scheme:
        refer_target(["<http://example.com/x>"])
    assert scheme.value.status_code in (400, 416)
    with pytest.raises(ReferError):
        refer_target(["<sip:b@h?Replaces=x%3Bto-tag%3Da>"])  # Replaces without from-tag
    assert refer_target(["<tel:+1-212-555-0101>"]).user == "+1-212-555-0101"


def test_sipfrag_bodies_rfc3515() -> None:
    # RFC 3515 §2.4.5: the minimal body is the status line.
    assert sipfrag(100) == b"SIP/2.0 100 Trying\r\n"
    assert sipfrag(200) == b"SIP/2.0 200 OK\r\n"
    assert sipfrag(486) == b"SIP/2.0 486 Busy Here\r\n"
    assert sipfrag(503, "No Route") == b"SIP/2.0 503 No Route\r\n"
    assert parse_sipfrag(b"SIP/2.0 603 Declined\r\n") == (603, "Declined")
    assert parse_sipfrag(sipfrag(180)) == (180, "Ringing")
    with pytest.raises(ReferError):
        parse_sipfrag(b"INVITE sip:x SIP/2.0\r\n")
    with pytest.raises(ValueError):
        sipfrag(42)
    assert SIPFRAG.startswith("message/sipfrag")


def test_notify_subscription_state() -> None:
    assert notify_headers(93809824, 100) == [
        ("Event", "refer;id=93809824"), ("Subscription-State", "active;expires=60")]
    assert notify_headers(7, 200)[1] == ("Subscription-State",
                                         "terminated;reason=noresource")
    assert notify_headers(7, 486)[1][1].startswith("terminated")
